"""Draft assemblies as they come, on hand-made FASTAs with known answers: thousands of contigs, contigs
shorter than the model's window and than its 7-wide convolution, all-N contigs, soft-masked lower
case, duplicate names (one error line), NCBI-style names on a many-contig draft (accessions in every
output, the originals in chromAlias).

The layout invariant: a multi-contig genome's tracks equal each contig predicted alone through the
segment streams (the layout every contig had before short linear contigs were read whole), to 1e-6.
"""

from __future__ import annotations

import numpy as np
import py2bit
import pyBigWig
import pytest
import torch

from genometracks.formats.twobit import write_twobit
from genometracks.genome.sequence import Genome, GenomeError
from genometracks.inference.predict import predict_genome, whole_rows, write_tracks
from genometracks.model import TransformerXL
from tests.conftest import cli
from tests.kent import assert_hub_clean

SHIFT, SEG_LEN = 5, 64  # the tiny model's window is 16, its convolutions 7 wide
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors


def _write_fasta(path, records: dict[str, str], width: int = 60):
    with open(path, "w") as handle:
        for header, seq in records.items():
            handle.write(f">{header}\n" + "".join(seq[i : i + width] + "\n" for i in range(0, len(seq), width)))
    return path


def _random(rng, n: int, letters: str = "ACGT") -> str:
    return "".join(rng.choice(list(letters), n))


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return TransformerXL(n_layer=2, n_head=2, d_model=8, d_head=4, window=16).eval()


@pytest.fixture(scope="module")
def odd_genome():
    """Contigs of every awkward length around the conv width (7), the window (16), a segment (64) and
    the whole-read limit (4 segments), one all-N, one soft-masked, one circular."""
    rng = np.random.default_rng(11)
    lengths = [1, 2, 3, 6, 7, 8, 15, 16, 17, 63, 64, 65, 200, 255, 256, 257, 1000, 2500]
    seqs = {f"ctg{i}": _random(rng, n) for i, n in enumerate(lengths)}
    seqs["allN"] = "N" * 150
    seqs["allN_short"] = "NNNN"
    seqs["masked"] = _random(rng, 300, "acgtACGTn")
    seqs["plasmid"] = _random(rng, 180)
    return seqs


def _alone(model, name, seq, circular=False):
    """One contig predicted on its own through the segment streams (no contig read whole)."""
    genome = Genome.from_sequences({name: seq}, circular=[name] if circular else [])
    return predict_genome(model, genome, SHIFT, SEG_LEN, n_streams=1, progress=False, whole_max=0)


def test_tracks_equal_each_contig_predicted_alone(tiny_model, odd_genome):
    genome = Genome.from_sequences(odd_genome, circular=["plasmid"])
    probs, logits = predict_genome(tiny_model, genome, SHIFT, SEG_LEN, n_streams=3, progress=False)
    for name, seq in odd_genome.items():
        alone_p, alone_l = _alone(tiny_model, name, seq, circular=name == "plasmid")
        for strand in "+-":
            assert probs.values[name][strand].shape == (len(seq),)
            np.testing.assert_allclose(probs.values[name][strand], alone_p.values[name][strand], rtol=0, atol=1e-6)
            np.testing.assert_allclose(logits.values[name][strand], alone_l.values[name][strand], rtol=0, atol=1e-5)
    # short linear contigs: the last SHIFT strand-local positions have no output and hold 0
    assert probs.values["ctg0"]["+"].tolist() == [0.0] and probs.values["ctg3"]["+"][1:].tolist() == [0.0] * 5
    assert probs.values["ctg3"]["-"][:5].tolist() == [0.0] * 5 and probs.values["ctg3"]["-"][5] > 0


def test_all_n_contigs_get_defined_probabilities_and_bigwig_coverage(tiny_model, odd_genome, tmp_path):
    genome = Genome.from_sequences(odd_genome, circular=["plasmid"])
    probs, _ = predict_genome(tiny_model, genome, SHIFT, SEG_LEN, n_streams=2, progress=False)
    paths = write_tracks(probs, genome.chrom_sizes(), tmp_path)
    for strand, path in paths.items():
        bw = pyBigWig.open(str(path))
        assert bw.chroms() == genome.chrom_sizes()
        for name, size in genome.chrom_sizes().items():
            got = np.asarray(bw.values(name, 0, size), dtype=np.float32)
            assert np.isfinite(got).all() and ((got >= 0) & (got <= 1)).all()
            np.testing.assert_array_equal(got, probs.values[name][strand])
        bw.close()
    # all N: every scored position reads the same N context, so the track is flat away from the ends
    inner = probs.values["allN"]["+"][40:100]
    assert inner.min() == inner.max() > 0


def test_soft_masked_lower_case_predicts_as_upper_case_and_stays_in_the_two_bit(tiny_model, odd_genome, tmp_path):
    mixed = {name: seq for name, seq in odd_genome.items()}
    mixed["ctg16"] = mixed["ctg16"][:300] + mixed["ctg16"][300:700].lower() + mixed["ctg16"][700:]
    lower = _write_fasta(tmp_path / "masked.fa", mixed)
    upper = _write_fasta(tmp_path / "upper.fa", {n: s.upper() for n, s in mixed.items()})
    tracks = [predict_genome(tiny_model, Genome.open(f), SHIFT, SEG_LEN, n_streams=2, progress=False)[1] for f in (lower, upper)]
    for name in mixed:
        for strand in "+-":
            np.testing.assert_array_equal(tracks[0].values[name][strand], tracks[1].values[name][strand])
    write_twobit(tmp_path / "masked.2bit", lower)
    tb = py2bit.open(str(tmp_path / "masked.2bit"), True)
    for name, seq in mixed.items():
        assert tb.sequence(name) == seq.replace("n", "N")  # letters and case kept; py2bit writes N runs as N
        got = np.zeros(len(seq), bool)
        for start, end in tb.softMaskedBlocks(name):
            got[start:end] = True
        np.testing.assert_array_equal(got, np.frombuffer(seq.encode(), np.uint8) >= ord("a"))
    tb.close()


@pytest.mark.slow
def test_thousands_of_contigs(tiny_model, tmp_path):
    rng = np.random.default_rng(5)
    lengths = np.maximum(1, rng.lognormal(np.log(40), 1.0, 2000).astype(int))
    lengths[:3] = (1, 6, 5000)  # shorter than the conv width, and one longer than 4 segments
    seqs = {f"NODE_{i + 1}_length_{n}": _random(rng, int(n), "ACGTacgtN") for i, n in enumerate(lengths)}
    fasta = _write_fasta(tmp_path / "spades.fa", seqs, width=80)
    genome = Genome.open(fasta)
    assert genome.chrom_sizes() == {name: len(seq) for name, seq in seqs.items()}
    probs, logits = predict_genome(tiny_model, genome, SHIFT, SEG_LEN, n_streams=16, progress=False)
    paths = write_tracks(probs, genome.chrom_sizes(), tmp_path / "tracks")
    bw = pyBigWig.open(str(paths["-"]))
    assert bw.chroms() == genome.chrom_sizes()
    for name in list(seqs)[::97]:
        np.testing.assert_array_equal(np.asarray(bw.values(name, 0, len(seqs[name])), np.float32), probs.values[name]["-"])
    bw.close()
    for name in list(seqs)[:3] + list(seqs)[500::400]:
        _, alone = _alone(tiny_model, name, seqs[name].upper())
        for strand in "+-":
            np.testing.assert_allclose(logits.values[name][strand], alone.values[name][strand], rtol=0, atol=1e-5)


def test_whole_rows_are_length_sorted_batches_within_the_budget(odd_genome):
    genome = Genome.from_sequences(odd_genome)
    names = [n for n, c in genome.contigs.items() if c.length <= 256]
    batches = whole_rows(genome, names, budget=600)
    keys = [key for batch in batches for key in batch]
    assert sorted(keys) == sorted((n, s) for n in names for s in "+-")  # every row once
    lengths = [genome.contigs[name].length for name, _ in keys]
    assert lengths == sorted(lengths, reverse=True)
    for batch in batches:
        longest = genome.contigs[batch[0][0]].length
        assert len(batch) == max(1, 600 // longest) or batch is batches[-1]


@pytest.mark.parametrize(
    "headers, name, records",
    [
        (["c1", "c2", "c3", "c1"], "'c1'", "records 1 and 4"),
        (
            ["gi|1000|ref|NZ_DRAFT0001.1|", "gi|1001|ref|NZ_DRAFT0002.1|", "gi|1002|ref|NZ_DRAFT0001.1|"],
            "'NZ_DRAFT0001.1'",
            "records 1 and 3",
        ),
    ],
)
def test_duplicate_contig_names_one_error_line(tmp_path, headers, name, records):
    fasta = _write_fasta(tmp_path / "dup.fa", {h: "ACGT" * 10 for h in headers[:-1]})
    with open(fasta, "a") as handle:  # a dict cannot hold the duplicate header: append it
        handle.write(f">{headers[-1]}\nTTTT\n")
    with pytest.raises(GenomeError) as err:
        Genome.open(fasta)
    message = str(err.value)
    assert str(fasta) in message and name in message and records in message and "rename" in message
    if "|" in headers[0]:
        assert headers[0] in message and headers[-1] in message  # two headers, one accession


@pytest.mark.slow
def test_duplicate_contig_names_from_the_command_line(tmp_path):
    fasta = tmp_path / "assembly.fa"
    fasta.write_text(">a\nACGTACGT\n>b\nACGT\n>a desc\nGGGG\n")
    done = cli("predict", "model=ecoli_k12", "data=custom", f"data.fasta={fasta}", f"run_dir={tmp_path / 'run'}")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("genometracks: error:")]
    assert errors == [
        f"genometracks: error: {fasta}: records 1 and 3 are both named 'a'; contig names must "
        "be unique: rename or remove one of the two records"
    ]
    assert not (tmp_path / "run" / "tracks").exists()


@pytest.mark.slow
def test_ncbi_named_draft_predicts_and_exports_under_accessions(tmp_path):
    rng = np.random.default_rng(3)
    records, sizes = {}, {}
    for i in range(60):
        n = 120 if i == 5 else int(rng.lognormal(6, 1)) + 1
        seq = "N" * n if i == 5 else _random(rng, n, "ACGTacgt")
        records[f"gi|{1000 + i}|ref|NZ_DRAFT{i}.1| contig {i}"] = seq  # FASTA order is not byte order
        sizes[f"NZ_DRAFT{i}.1"] = n
    fasta = _write_fasta(tmp_path / "draft.fa", records)
    run = tmp_path / "run"
    for command in ("predict", "export"):
        done = cli(command, "model=ecoli_k12", "data=custom", f"data.fasta={fasta}", f"run_dir={run}")
        assert done.returncode == 0, done.stderr[-3000:]
    for strand in ("plus", "minus"):
        bw = pyBigWig.open(str(run / "tracks" / f"tss.{strand}.bw"))
        assert bw.chroms() == sizes
        values = np.asarray(bw.values("NZ_DRAFT5.1", 0, 120))  # the all-N contig is covered
        assert np.isfinite(values).all() and (values >= 0).all()
        bw.close()
    peaks = [line.split("\t") for line in (run / "tracks" / "tss_peaks.bed").read_text().splitlines()]
    assert len(peaks) > 10 and {row[0] for row in peaks} <= set(sizes)
    assert [(row[0].encode(), int(row[1])) for row in peaks] == sorted((row[0].encode(), int(row[1])) for row in peaks)
    bb = pyBigWig.open(str(run / "tracks" / "tss_peaks.bb"))
    assert set(bb.chroms()) <= set(sizes)  # a bigBed lists the contigs that have entries
    assert sum(len(bb.entries(name, 0, size) or []) for name, size in bb.chroms().items()) == len(peaks)
    bb.close()
    gdir = run / "hub" / "draft"
    tb = py2bit.open(str(gdir / "draft.2bit"))
    assert tb.chroms() == sizes
    tb.close()
    rows = [line.split("\t") for line in (gdir / "chromAlias.txt").read_text().splitlines()[1:]]
    fasta_column = (gdir / "chromAlias.txt").read_text().split("\n")[0].split("\t").index("fasta")
    assert {row[0]: row[fasta_column] for row in rows} == {name: f"gi|{1000 + i}|ref|{name}|" for i, name in enumerate(sizes)}
    assert_hub_clean(run / "hub")


# --- the scaling and throughput benches (no timing thresholds: speed is measured by the bench) ------


def test_draft_lengths_cut_the_sequence_exactly(tmp_path):
    from genometracks.bench import draft_lengths, write_draft

    for total, n in ((2_000_000, 10_000), (5_000, 1), (1_000, 1_000), (4_641_652, 200)):
        lengths = draft_lengths(total, n, seed=3)
        assert lengths.size == n and lengths.sum() == total and lengths.min() >= 1
    lengths = draft_lengths(2_000_000, 10_000, seed=0)
    assert (lengths < 128).sum() > 1_000 and lengths.max() > 10 * np.median(lengths)  # a draft's shape
    tokens = np.random.default_rng(0).integers(0, 4, 3_000).astype(np.uint8)
    genome = Genome.open(write_draft(tmp_path / "d.fa", tokens, draft_lengths(3_000, 40, seed=1)))
    assert len(genome.contigs) == 40
    assert np.array_equal(np.concatenate([genome.tokens(name) for name in genome.contigs]), tokens)


def test_bench_argument_errors(capsys):
    from genometracks.bench import main as bench_main

    assert bench_main(["--only", "scaling", "--contigs", "1,x"]) == 2
    assert "--contigs" in capsys.readouterr().err
    assert bench_main(["--only", "scaling", "--total", "100", "--contigs", "1,500"]) == 2
    assert "500 contigs" in capsys.readouterr().err


@pytest.mark.slow
def test_scaling_bench_runs_each_case_in_its_own_process(capsys):
    import json

    from genometracks.bench import main as bench_main

    assert bench_main(["--only", "scaling", "--total", "6000", "--contigs", "1,40", "--case-repeats", "1", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [case["contigs"] for case in result["cases"]] == [1, 40] and result["positions"] == 12_000
    for case in result["cases"]:
        assert case["peak_rss_mib"]["median"] > 50 and case["total_s"]["median"] > 0
        assert case["positions_per_s"] > 0 and case["seg_len"] == 256
    assert result["cases"][1]["length_min"] >= 1 and "time_vs_first" in result["cases"][1]
