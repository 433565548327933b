"""Many genomes, one command (issue #17): `genometracks predict manifest=... run_dir=COLL` and
`genometracks predict -m data.fasta=a.fa,b.fa run_dir=COLL` run one Hydra job per genome with the
shipped model, write a summary and one hubCheck-clean hub; a failing genome does not stop the
others; a rerun skips finished genomes. The tracks are read back with pyBigWig and py2bit and must
equal each genome's own single-genome predict.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import py2bit
import pyBigWig
import pytest

from genometracks.collection.manifest import ManifestError, from_fastas, read_manifest
from genometracks.formats.bigwig import read_bigwig
from genometracks.io.run_config import DEFAULT_MODEL, ConfigError
from tests.collection_run import GENOMES, stub_env, summary_rows, write_fasta
from tests.conftest import ECOLI, cli, compose, run_dir_held
from tests.kent import assert_hub_clean


# ---------------------------------------------------------------------------------------- manifest
def _manifest(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "genomes.tsv"
    path.write_text(text)
    return path


def test_manifest_rows_read_with_paths_against_the_manifest_folder(tmp_path):
    path = _manifest(
        tmp_path,
        "name\tfasta\taccession\ttss\n# a comment\n\niso_a\ta.fa\n"
        "ecoli\t/data/ecoli.fa\tGCF_000005845.2\ttss.bed\tgenes/ecoli.gff3\ndraft\tsub/d.fa.gz\t\t\n",
    )
    genomes = read_manifest(path)
    assert [g.name for g in genomes] == ["iso_a", "ecoli", "draft"]
    assert genomes[0].fasta == tmp_path / "a.fa" and genomes[0].accession is None and genomes[0].tss is None
    assert genomes[1].fasta == Path("/data/ecoli.fa") and genomes[1].accession == "GCF_000005845.2"
    assert genomes[1].tss == tmp_path / "tss.bed" and genomes[2].fasta == tmp_path / "sub" / "d.fa.gz"
    assert genomes[1].annotation == tmp_path / "genes" / "ecoli.gff3" and genomes[0].annotation is genomes[2].annotation is None


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("iso_a a.fa\n", 1, "columns are separated by tabs"),
        ("iso_a\ta.fa\nisolate 2\tb.fa\n", 2, "genome name 'isolate 2' must be letters"),
        ("iso_a\ta.fa\nISO_A\tb.fa\n", 2, "is used again (first at"),
        ("iso_a\ta.fa\tGCF_5\n", 1, "is not a GenArk accession"),
        ("hub\ta.fa\n", 1, "is reserved"),
        ("a\tx.fa\tGCF_000005845.2\nb\ty.fa\tGCF_000005845.2\n", 2, "is already genome 'a'"),
        ("a\tx.fa\t\tt.bed\tg.gff3\textra\n", 1, "6 column(s)"),
    ],
)
def test_bad_manifest_rows_name_file_line_and_fix(tmp_path, text, line, message):
    path = _manifest(tmp_path, text)
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path} line {line}: ") and message in str(err.value)


def test_fasta_list_names_each_genome_after_its_file(tmp_path):
    genomes = from_fastas(["a.fa", "/x/isolate-2.fasta.gz", "hub.fna"], tmp_path)
    assert [g.name for g in genomes] == ["a", "isolate_2", "hub_1"]
    with pytest.raises(ManifestError, match="is used again .*rename one of the files, or list the genomes in manifest=FILE.tsv"):
        from_fastas(["x/a.fa", "y/A.fa"], tmp_path)


def test_manifest_with_a_bom_and_a_genome_named_name(tmp_path):
    # a spreadsheet's "UTF-8" export starts with a BOM (its header was refused as a genome name); a header-less
    # manifest whose first genome is called 'name' lost that genome silently
    bom = tmp_path / "bom.tsv"
    bom.write_bytes("name\tfasta\nalpha\ta.fa\n".encode("utf-8-sig"))
    assert [g.name for g in read_manifest(bom)] == ["alpha"]
    plain = _manifest(tmp_path, "name\tg.fa\nbeta\tb.fa\n")
    assert [g.name for g in read_manifest(plain)] == ["name", "beta"]


def test_quoted_fasta_paths_with_spaces_in_a_fasta_list(tmp_path):
    from genometracks.collection.launch import _sweep_values

    assert _sweep_values("data.fasta='other/my genome.fa',b.fa") == ["other/my genome.fa", "b.fa"]  # was "'other/my genome.fa'"
    assert _sweep_values("data.fasta=other/my\\ genome.fa,b.fa") == ["other/my genome.fa", "b.fa"]
    assert [g.name for g in from_fastas(_sweep_values("data.fasta='other/my genome.fa',b.fa"), tmp_path)] == ["my_genome", "b"]


def test_a_genome_whose_job_still_holds_its_lock_is_running_not_failed(tmp_path):

    from genometracks.collection.manifest import Genome
    from genometracks.collection.summary import genome_record
    from genometracks.io.run_lock import LOCK_NAME
    from genometracks.io.rundir import CollectionDir

    coll = CollectionDir(tmp_path / "coll")
    folder = coll.genome("beta").root
    folder.mkdir(parents=True)
    (folder / "collection_job.json").write_text(json.dumps({"status": "running"}))
    assert genome_record(coll, Genome("beta", tmp_path / "b.fa"))["status"] == "failed"  # nobody at work: killed
    (folder / LOCK_NAME).write_text("predict (collection genome beta) pid 4242 on node7 since 2026-12-02 08:00:00\n")
    probe = (
        "import fcntl, os, sys, time; h = os.open(sys.argv[1], os.O_RDWR); fcntl.flock(h, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", probe, str(folder / LOCK_NAME)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        shown = genome_record(coll, Genome("beta", tmp_path / "b.fa"))
        assert (
            shown["status"] == "running"
            and shown["error"] == "still running: predict (collection genome beta) pid 4242 on node7 since 2026-12-02 08:00:00"
        )
    finally:
        holder.kill()
        holder.wait()


def test_a_second_job_of_a_busy_genome_leaves_the_running_jobs_record_alone(tmp_path, monkeypatch):
    # a duplicate job (a requeued SLURM task) found the genome locked, wrote "failed" over the running
    # job's record, and the next command launched it a third time
    from genometracks.collection import job
    from genometracks.collection.manifest import Genome
    from genometracks.collection.summary import genome_record
    from genometracks.io.rundir import CollectionDir

    fasta = write_fasta(tmp_path / "g.fa", GENOMES["iso_b"], 5)
    manifest = _manifest(tmp_path, f"g\t{fasta}\n")
    coll = tmp_path / "coll"
    folder = coll / "g"
    folder.mkdir(parents=True)
    running = json.dumps({"name": "g", "status": "running"})
    (folder / "collection_job.json").write_text(running)
    monkeypatch.setattr(job, "run_pipeline", lambda *a, **k: pytest.fail("a busy genome's pipeline ran twice"))
    with run_dir_held(folder, "predict (collection genome g)") as holder:
        cfg = compose("data=custom", f"manifest={manifest}", "genome=g", f"run_dir={folder}", f"model={DEFAULT_MODEL}")
        record = job.collection_job(cfg, "predict")
        assert record["status"] == "running" and f"in use by genometracks predict (collection genome g) pid {holder.pid}" in record["error"]
        assert (folder / "collection_job.json").read_text() == running  # untouched
        shown = genome_record(CollectionDir(coll), Genome("g", fasta))
        assert shown["status"] == "running" and shown["error"].startswith(f"still running: predict (collection genome g) pid {holder.pid}")
        # a finished genome being run again is running too, whatever its last record says
        (folder / "collection_job.json").write_text(json.dumps({"name": "g", "status": "ok", "positions": 1, "peaks": 0}))
        assert genome_record(CollectionDir(coll), Genome("g", fasta))["status"] == "running"
    assert genome_record(CollectionDir(coll), Genome("g", fasta))["status"] == "ok"


def test_a_genomes_job_writes_its_record_while_it_holds_the_lock(tmp_path, monkeypatch):
    # the lock was let go before the GenArk check and the final record: a status check in between saw
    # "running" with nobody holding the lock, i.e. a failed job
    from genometracks.collection import job
    from genometracks.io.run_lock import lock_holder

    fasta = write_fasta(tmp_path / "g.fa", GENOMES["iso_b"], 5)
    manifest = _manifest(tmp_path, f"g\t{fasta}\n")
    folder = tmp_path / "coll" / "g"
    held_at_write = []
    real_write = job.write_text_atomic
    monkeypatch.setattr(
        job, "write_text_atomic", lambda path, text: (held_at_write.append(lock_holder(folder) is not None), real_write(path, text))[1]
    )
    monkeypatch.setattr(job, "run_pipeline", lambda *a, **k: None)
    monkeypatch.setattr(job, "_outcome", lambda run: {"positions": 10, "peaks": 2})
    cfg = compose("data=custom", f"manifest={manifest}", "genome=g", f"run_dir={folder}", f"model={DEFAULT_MODEL}")
    record = job.collection_job(cfg, "predict")
    assert record["status"] == "ok" and held_at_write == [True, True]  # "running", then the final record
    assert json.loads((folder / "collection_job.json").read_text())["status"] == "ok"


def test_bad_manifest_is_one_error_line_before_any_job(tmp_path):
    path = _manifest(tmp_path, "iso_a\ta.fa\niso_a\tb.fa\n")
    done = cli("predict", f"manifest={path}", f"run_dir={tmp_path / 'coll'}", timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"genometracks: error: {path} line 2: genome name 'iso_a' is used again (first at {path} line 1); give every genome its own name"
    )
    assert not (tmp_path / "coll" / "iso_a").exists()


def test_a_collection_needs_its_run_dir_and_custom_data(tmp_path):
    path = _manifest(tmp_path, "iso_a\ta.fa\n")
    done = cli("predict", f"manifest={path}", timeout=120)
    assert done.returncode == 2 and "needs run_dir=DIR" in done.stderr
    done = cli("predict", f"manifest={path}", "data=synthetic", f"run_dir={tmp_path / 'c'}", timeout=120)
    assert done.returncode == 2 and "data=synthetic" in done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("flags", [["--cfg", "job"], ["--help"], ["--info"]])
def test_hydra_flags_on_a_collection_are_refused_and_write_nothing(tmp_path, flags):
    # they went into COLL/settings.txt, and the next real command was refused as 'made with other settings'
    path = _manifest(tmp_path, "iso_a\ta.fa\n")
    done = cli("predict", f"manifest={path}", f"run_dir={tmp_path / 'coll'}", *flags, timeout=120)
    assert done.returncode == 2 and not (tmp_path / "coll").exists(), done.stderr
    assert done.stderr.strip().splitlines() == [
        f"genometracks: error: {' '.join(flags)} with a collection: ask it of one genome (genometracks predict data=custom "
        f"data.fasta=GENOME.fa ... {' '.join(flags)}); nothing was written"
    ]


def test_run_of_genomes_without_tss_files_is_refused_before_any_job(tmp_path):
    for name in ("a", "b"):
        write_fasta(tmp_path / f"{name}.fa", {name: (name, 500)}, seed=0)
    done = cli("run", "-m", f"data.fasta={tmp_path / 'a.fa'},{tmp_path / 'b.fa'}", f"run_dir={tmp_path / 'c'}", timeout=120)
    assert done.returncode == 2 and not (tmp_path / "c").exists()
    assert "`genometracks run` needs each genome's TSS BED" in done.stderr and "genometracks predict -m data.fasta=" in done.stderr


def test_collect_of_a_folder_that_is_no_collection_is_one_error_line(tmp_path):
    done = cli("collect", str(tmp_path), timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"genometracks: error: {tmp_path / 'manifest.tsv'}: not found; {tmp_path} is not a "
        "collection directory (make one with `genometracks predict manifest=genomes.tsv "
        "run_dir=DIR`)"
    )
    for wrong in ("export.foo=1", "hub_name=x", "export.hub_name"):  # an option collect does not take: refused, not ignored
        done = cli("collect", str(tmp_path), wrong, timeout=120)
        assert done.returncode == 2 and f"'{wrong}' is not an option of collect; give export.KEY=VALUE" in done.stderr


# ---------------------------------------------------------------------------------------- one command
@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("collection")
    fastas = {name: write_fasta(root / f"{name}.fa", contigs, seed) for seed, (name, contigs) in enumerate(GENOMES.items())}
    manifest = root / "genomes.tsv"
    # iso_b's genes (column 5): its calls get their gene context, the others none
    (root / "iso_b.gff3").write_text(
        "##gff-version 3\ncontig_b\tx\tgene\t1001\t3000\t.\t+\t.\tID=g1;Name=geneB1\n"
        "contig_b\tx\tgene\t3501\t5000\t.\t-\t.\tID=g2;Name=geneB2\nplasmid_b\tx\tCDS\t101\t900\t.\t+\t0\tID=c1\n"
    )
    rows = [f"{n}\t{n}.fa" + ("\t\t\tiso_b.gff3" if n == "iso_b" else "") + "\n" for n in GENOMES]
    manifest.write_text("name\tfasta\taccession\ttss\tannotation\n" + "".join(rows))
    coll = root / "coll"
    env = stub_env(root)
    done = cli("predict", f"manifest={manifest}", f"run_dir={coll}", env=env)
    return root, coll, fastas, env, done


slow = pytest.mark.slow  # CLI subprocesses with the shipped model


@slow
def test_one_command_writes_one_hubcheck_clean_hub(collection):
    root, coll, fastas, _, done = collection
    assert done.returncode == 0, done.stderr[-3000:]
    assert_hub_clean(coll / "hub")
    stanzas = (coll / "hub" / "genomes.txt").read_text().split("\n\n")
    assert [re.search(r"^genome (\S+)$", s, re.M).group(1) for s in stanzas] == list(GENOMES)
    trackdbs = {}
    for name, contigs in GENOMES.items():
        gdir = coll / "hub" / name
        with py2bit.open(str(gdir / f"{name}.2bit")) as tb:
            assert tb.chroms() == {c: n for c, (_, n) in contigs.items()}
        trackdbs[name] = re.findall(r"^\s*track (\S+)$", (gdir / "trackDb.txt").read_text(), re.M)
    assert trackdbs["iso_a"] == trackdbs["draft"] == ["tss_signal", "tss_plus", "tss_minus", "tss_peaks"]
    # iso_b was given its genes (manifest column 5): they are a track of its genome, below the TSS probability
    assert trackdbs["iso_b"] == ["tss_signal", "tss_plus", "tss_minus", "genes", "tss_peaks"]
    with pyBigWig.open(str(coll / "hub" / "iso_b" / "genes.bb")) as bb:
        assert [(s, e, rest.split("\t")[0]) for s, e, rest in bb.entries("contig_b", 0, bb.chroms("contig_b"))] == [
            (1000, 3000, "geneB1"),
            (3500, 5000, "geneB2"),
        ]
    alias = (coll / "hub" / "draft" / "chromAlias.txt").read_text()
    for contig, (header, _) in GENOMES["draft"].items():  # NCBI-style names: accessions, originals as aliases
        assert re.search(rf"^{re.escape(contig)}\t.*{re.escape(header.split()[0])}", alias, re.M)


@slow
def test_every_genome_reads_back_as_its_own_single_genome_predict(collection, tmp_path):
    from genometracks.inference.predict import predict_command

    root, coll, fastas, env, done = collection
    assert done.returncode == 0, done.stderr[-3000:]
    for name, contigs in GENOMES.items():
        single = predict_command(
            compose(
                f"model={DEFAULT_MODEL}",  # what a collection predicts with
                "data=custom",
                f"data.fasta={fastas[name]}",
                f"paths.cache={root / 'cache'}",
                f"run_dir={tmp_path / name}",
            )
        )
        for strand in ("plus", "minus"):
            hub_copy = coll / "hub" / name / f"tss_{strand}.bw"
            with pyBigWig.open(str(hub_copy)) as bw:
                assert dict(bw.chroms()) == {c: n for c, (_, n) in contigs.items()}
                for contig, (_, n) in contigs.items():
                    values = np.asarray(bw.values(contig, 0, n), dtype=np.float32)
                    own = read_bigwig(tmp_path / name / "tracks" / f"tss.{strand}.bw", contig)
                    np.testing.assert_allclose(values, own, rtol=0, atol=1e-6)
                    assert np.isfinite(values).all() and values.max() > 0.0
        assert summary_rows(coll)[name]["peaks"] == str(single["peaks"]["peaks"])


@slow
def test_summary_and_index_list_every_genome(collection):
    root, coll, fastas, _, done = collection
    rows = summary_rows(coll)
    assert list(rows) == list(GENOMES)
    for name, contigs in GENOMES.items():
        row = rows[name]
        assert row["status"] == "ok" and row["error"] == ""
        assert int(row["positions"]) == 2 * sum(n for _, n in contigs.values())
        peaks = (coll / name / "tracks" / "tss_peaks.bed").read_text().splitlines()
        assert int(row["peaks"]) == len(peaks) > 0
        assert float(row["seconds"]) > 0
        assert re.search(rf"^{name}\s+ok\s+{int(row['positions']):,}\s+{len(peaks):,}\s", done.stdout, re.M)
    assert "3 of 3 genome(s) ok" in done.stdout
    page = (coll / "index.html").read_text()
    links = re.findall(r'href="([^"]+)"', page)
    for name in GENOMES:
        for target in (f"{name}/igv/session.xml", f"{name}/igv/index.html", f"{name}/jbrowse/index.html"):
            assert target in links
    assert "hub/hub.txt" in links and all((coll / link).is_file() for link in links)
    session = (coll / "draft" / "igv" / "session.xml").read_text()
    assert "../tracks/tss.plus.bw" in session
    config = json.loads((coll / "draft" / "jbrowse" / "config.json").read_text())
    assert [t["adapter"]["bigWigLocation"]["uri"] for t in config["tracks"][:2]] == ["../tracks/tss.plus.bw", "../tracks/tss.minus.bw"]


@slow
def test_a_genome_with_genes_gets_its_calls_gene_context(collection):
    """Column 5's GFF3 reaches iso_b's job: each of its calls has its classes (recomputed here from the genes
    and the call's own probability) in tss_context.tsv and in a valid tss_calls.gff3; iso_a has none."""
    from genometracks.inference.gene_context import classify_calls
    from genometracks.labels.genes import read_genes
    from tests.test_gene_context import validate_with_genometools

    root, coll, _, _, done = collection
    assert done.returncode == 0, done.stderr[-3000:]
    sizes = {c: n for c, (_, n) in GENOMES["iso_b"].items()}
    calls = pd.read_csv(coll / "iso_b" / "tracks" / "tss_peaks.bed", sep="\t", header=None, usecols=[0, 1, 3, 5])
    table = pd.read_csv(coll / "iso_b" / "tracks" / "tss_context.tsv", sep="\t", keep_default_na=False)
    assert len(table) == len(calls) > 0 and (table["position"] - 1).tolist() == calls[1].tolist()
    frame = table.assign(pos=table["position"] - 1)[["chrom", "pos", "strand", "name", "probability"]]
    again = classify_calls(frame, read_genes(root / "iso_b.gff3", sizes), sizes, frozenset())
    assert table["classes"].tolist() == again["classes"].tolist() and table["gene"].tolist() == again["gene"].tolist()
    gff3 = (coll / "iso_b" / "tracks" / "tss_calls.gff3").read_text()
    assert gff3.count("\tTSS\t") == len(calls) and gff3.count("tss_class=") == len(calls)
    validate_with_genometools(coll / "iso_b" / "tracks" / "tss_calls.gff3")
    assert not (coll / "iso_a" / "tracks" / "tss_context.tsv").exists()
    assert "tss_class=" not in (coll / "iso_a" / "tracks" / "tss_calls.gff3").read_text()


@slow
def test_rerun_skips_finished_genomes(collection):
    root, coll, fastas, env, done = collection
    assert done.returncode == 0, done.stderr[-3000:]
    before = {n: (coll / n / "tracks" / "tss.plus.bw").stat().st_mtime_ns for n in GENOMES}
    again = cli("predict", f"manifest={root / 'genomes.tsv'}", f"run_dir={coll}", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    for name in GENOMES:
        assert f"genome {name}: finished earlier, skipped" in again.stdout
    assert "predict ..." not in again.stdout
    assert {n: (coll / n / "tracks" / "tss.plus.bw").stat().st_mtime_ns for n in GENOMES} == before
    assert_hub_clean(coll / "hub")


@slow
def test_a_failing_genome_is_reported_while_the_others_finish(tmp_path):
    good = write_fasta(tmp_path / "good.fa", GENOMES["iso_b"], 5)
    (tmp_path / "empty.fa").write_text("")
    coll = tmp_path / "coll"
    env = stub_env(tmp_path)
    args = ("predict", "-m", f"data.fasta={good},{tmp_path / 'missing.fa'},{tmp_path / 'empty.fa'}", f"run_dir={coll}")
    done = cli(*args, env=env)
    rows = summary_rows(coll)
    assert done.returncode == 1, done.stderr[-3000:]
    assert list(rows) == ["good", "missing", "empty"]
    assert rows["good"]["status"] == "ok" and int(rows["good"]["peaks"]) > 0
    assert rows["missing"]["status"] == "failed"
    assert rows["missing"]["error"] == (
        f"genometracks: error: genome 'missing': {tmp_path / 'missing.fa'}: FASTA file not found; set data.fasta to an existing file"
    )
    assert rows["empty"]["status"] == "failed" and "genome 'empty': " in rows["empty"]["error"]
    assert "empty.fa: file is empty" in rows["empty"]["error"]
    stanzas = (coll / "hub" / "genomes.txt").read_text()
    assert re.findall(r"^genome (\S+)$", stanzas, re.M) == ["good"]
    assert_hub_clean(coll / "hub")
    assert "failed" in (coll / "index.html").read_text()
    # every genome failing: the earlier hub goes, and the index page no longer shows genomes as finished
    nothing = (
        "predict",
        "-m",
        f"data.fasta={tmp_path / 'missing.fa'},{tmp_path / 'empty.fa'},{tmp_path / 'good_gone.fa'}",
        f"run_dir={tmp_path / 'coll2'}",
    )
    shutil.copytree(coll, tmp_path / "coll2")
    none_ok = cli(*nothing, env=env)
    assert none_ok.returncode == 1 and "no genome of the collection finished" in none_ok.stdout, none_ok.stdout[-2000:]
    assert not (tmp_path / "coll2" / "hub").exists() and not list((tmp_path / "coll2").glob(".hub.*"))
    assert "0 of 3 genome(s) finished. No hub" in (tmp_path / "coll2" / "index.html").read_text()
    # the missing genome appears: only it runs again (the good one is skipped, the empty one fails again)
    write_fasta(tmp_path / "missing.fa", GENOMES["iso_a"], 6)
    again = cli(*args, env=env)
    assert again.returncode == 1, again.stderr[-3000:]
    assert "genome good: finished earlier, skipped" in again.stdout
    rows = summary_rows(coll)
    assert [rows[n]["status"] for n in ("good", "missing", "empty")] == ["ok", "ok", "failed"]
    assert re.findall(r"^genome (\S+)$", (coll / "hub" / "genomes.txt").read_text(), re.M) == ["good", "missing"]
    assert_hub_clean(coll / "hub")


@slow
def test_a_fasta_changed_in_place_or_a_job_killed_mid_rerun_runs_again(tmp_path, monkeypatch):
    # a genome whose FASTA keeps its path but not its bytes was skipped as "finished earlier" with the old
    # sequence's tracks; one killed while running again kept its earlier "ok" and was skipped for good
    fasta = write_fasta(tmp_path / "g.fa", GENOMES["iso_b"], 5)
    manifest = _manifest(tmp_path, f"g\t{fasta}\n")
    coll = tmp_path / "coll"
    env = stub_env(tmp_path)
    args = ("predict", f"manifest={manifest}", f"run_dir={coll}")
    assert cli(*args, env=env).returncode == 0
    plus = coll / "g" / "tracks" / "tss.plus.bw"
    first = read_bigwig(plus, "contig_b")
    write_fasta(fasta, GENOMES["iso_b"], 9)  # the same names and lengths, another sequence
    again = cli(*args, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "finished earlier" not in again.stdout and "predict ..." in again.stdout
    assert not np.array_equal(read_bigwig(plus, "contig_b"), first)  # the new sequence's tracks
    # a job killed while it runs leaves the genome "running", not its earlier "ok"
    from genometracks.collection import job

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt  # what SIGTERM/SIGKILL leave: no record written at the end

    monkeypatch.setattr(job, "run_pipeline", killed)
    cfg = compose("data=custom", f"manifest={coll / 'manifest.tsv'}", "genome=g", f"run_dir={coll / 'g'}", f"model={DEFAULT_MODEL}")
    with pytest.raises(KeyboardInterrupt):
        job.collection_job(cfg, "predict")
    assert json.loads((coll / "g" / "collection_job.json").read_text())["status"] == "running"
    from genometracks.collection.manifest import Genome
    from genometracks.collection.summary import genome_record
    from genometracks.io.rundir import CollectionDir

    shown = genome_record(CollectionDir(coll), Genome("g", fasta))  # what summary.tsv tells the user
    assert shown["status"] == "failed" and "the job did not finish (killed" in shown["error"]
    third = cli(*args, env=env)
    assert third.returncode == 0 and "finished earlier" not in third.stdout, third.stdout[-3000:]
    assert summary_rows(coll)["g"]["status"] == "ok"


# ---------------------------------------------------------------------------------------- collect, GenArk
@pytest.mark.skipif(not (ECOLI / "genome" / "NC_000913.3.fa").is_file(), reason=f"shared E. coli data not found at {ECOLI}")
def test_collect_puts_a_genome_with_an_accession_on_genark(tmp_path, monkeypatch):
    """`genometracks collect COLL` on two finished genomes: E. coli with its GenArk accession (tracks are
    stand-ins of the right contig) and an assembly of its own (.2bit); hubCheck-clean, one stanza each."""
    from genometracks.collection.collect import main_collect
    from genometracks.formats.bigwig import write_bigwig
    from genometracks.genome.sequence import Genome
    from tests import browser_run as br

    for key, value in stub_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    coll = tmp_path / "coll"
    fasta = ECOLI / "genome" / "NC_000913.3.fa"
    sizes = Genome.open(fasta).chrom_sizes()
    values = np.zeros(sizes["NC_000913.3"], np.float32)
    values[1000:1010] = 0.5
    for strand in ("plus", "minus"):
        write_bigwig(coll / "ecoli" / "tracks" / f"tss.{strand}.bw", sizes, {"NC_000913.3": values})
    other_fasta, _ = br.make_run(coll / "other")
    (coll / "manifest.tsv").write_text(f"name\tfasta\taccession\ttss\necoli\t{fasta}\tGCF_000005845.2\t\nother\t{other_fasta}\t\t\n")
    for name in ("ecoli", "other"):
        (coll / name / "collection_job.json").write_text(
            json.dumps({"name": name, "status": "ok", "positions": 10, "peaks": 1, "seconds": 1.0, "error": ""})
        )
    assert main_collect([str(coll), "export.hub_name=my_isolates"]) == 0
    assert_hub_clean(coll / "hub")
    genomes = (coll / "hub" / "genomes.txt").read_text()
    assert re.findall(r"^genome (\S+)$", genomes, re.M) == ["GCF_000005845.2", "other"]
    ecoli_stanza, other_stanza = genomes.split("\n\n")
    assert "twoBitPath" not in ecoli_stanza and "twoBitPath other/other.2bit" in other_stanza
    assert "hub my_isolates" in (coll / "hub" / "hub.txt").read_text()
    # each genome's hub shows the tracks it has: ecoli only its strands, other its calls, sigma classes,
    # motif hits and attribution too (a genome without calls must not hide the others')
    tracks = {
        g: re.findall(r"^\s*track (\S+)$", (coll / "hub" / g / "trackDb.txt").read_text(), re.M) for g in ("GCF_000005845.2", "other")
    }
    assert tracks["GCF_000005845.2"] == ["tss_signal", "tss_plus", "tss_minus"]
    assert tracks["other"][:3] == ["tss_signal", "tss_plus", "tss_minus"] and {"tss_peaks", "motif_hits"} <= set(tracks["other"])
    assert "tss_peaks: not written for ecoli" in (coll / "index.html").read_text()
    assert (coll / "ecoli" / "igv" / "session.xml").is_file() and (coll / "ecoli" / "jbrowse" / "config.json").is_file()


@slow
def test_run_of_a_collection_runs_the_pipeline_per_genome(tmp_path):
    """`genometracks run manifest=...`: the pipeline's stages in each genome's run directory (here the
    data and predict stages); `run` needs each genome's TSS BED, and a row without one fails alone, as
    does a genome placed on a GenArk assembly whose contigs it does not have."""
    rng = np.random.default_rng(3)
    write_fasta(tmp_path / "a.fa", GENOMES["iso_a"], 0)
    write_fasta(tmp_path / "d.fa", GENOMES["draft"], 2)
    sites = sorted({int(p) for p in rng.integers(100, 8_900, 30)})
    (tmp_path / "a_tss.bed").write_text("".join(f"chr1\t{p}\t{p + 1}\tt{p}\t0\t{'+-'[p % 2]}\n" for p in sites))
    # a genome on a GenArk assembly whose contigs it lacks: refused before any job (each job found it
    # only after predicting and exporting in full)
    manifest = _manifest(tmp_path, "with_tss\ta.fa\t\ta_tss.bed\nno_tss\td.fa\nnot_k12\ta.fa\tGCF_000005845.2\ta_tss.bed\n")
    coll = tmp_path / "coll"
    done = cli("run", f"manifest={manifest}", "stages=[data,predict]", f"run_dir={coll}", env=stub_env(tmp_path))
    assert done.returncode == 2 and not (coll / "summary.tsv").exists(), done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f"genometracks: error: {manifest}: genome 'not_k12' ({tmp_path / 'a.fa'}) has contigs chr1 (9,000 nt), GenArk "
        "GCF_000005845.2 has NC_000913.3 (4,641,652 nt); leave its accession column empty to give it a hub assembly of "
        "its own FASTA"
    )
    # the user corrects their manifest as the error says (another FASTA for not_k12, no accession): it runs
    write_fasta(tmp_path / "b.fa", GENOMES["iso_a"], 5)
    manifest = _manifest(tmp_path, "with_tss\ta.fa\t\ta_tss.bed\nno_tss\td.fa\nnot_k12\tb.fa\t\ta_tss.bed\n")
    done = cli("run", f"manifest={manifest}", "stages=[data,predict]", f"run_dir={coll}", env=stub_env(tmp_path))
    assert done.returncode == 1, done.stderr[-3000:]
    rows = summary_rows(coll)
    assert rows["with_tss"]["status"] == "ok" and int(rows["with_tss"]["positions"]) == 18_000
    summary = json.loads((coll / "with_tss" / "data_summary.json").read_text())
    assert summary["total_length"] == 9_000 and (coll / "with_tss" / "stages" / "data.json").is_file()
    assert rows["no_tss"]["status"] == "failed"
    assert rows["no_tss"]["error"] == (
        f"genometracks: error: {manifest}: genome 'no_tss' has no TSS BED "  # the user's manifest, which they correct
        "(column 4), which `genometracks run` needs for its data and interpret "
        "stages; add one, or predict only with `genometracks predict manifest=...`"
    )
    assert rows["not_k12"]["status"] == "ok"
    assert json.loads((coll / "not_k12" / "tracks" / "predict.json").read_text())["fasta"] == str(tmp_path / "b.fa")
    assert re.findall(r"^genome (\S+)$", (coll / "hub" / "genomes.txt").read_text(), re.M) == ["with_tss", "not_k12"]
    assert_hub_clean(coll / "hub")
    # a genome that succeeded, whose FASTA the manifest then replaces, runs again (not "finished earlier")
    write_fasta(tmp_path / "c.fa", GENOMES["iso_a"], 7)
    manifest = _manifest(tmp_path, "with_tss\tc.fa\t\ta_tss.bed\nno_tss\td.fa\nnot_k12\tb.fa\t\ta_tss.bed\n")
    done = cli("run", f"manifest={manifest}", "stages=[data,predict]", f"run_dir={coll}", env=stub_env(tmp_path))
    assert "genome not_k12: finished earlier, skipped" in done.stdout and "genome with_tss: finished earlier" not in done.stdout
    assert json.loads((coll / "with_tss" / "tracks" / "predict.json").read_text())["fasta"] == str(tmp_path / "c.fa")
    assert summary_rows(coll)["with_tss"]["status"] == "ok"


def test_slurm_jobs_of_a_collection_are_sized_for_one_genome_unless_the_command_line_sizes_them():
    from genometracks.collection.launch import slurm_job_overrides

    assert slurm_job_overrides("predict", ["model=ecoli_k12"]) == []  # not SLURM: nothing
    assert slurm_job_overrides("predict", ["hydra/launcher=slurm"]) == [
        "hydra.launcher.cpus_per_task=2",
        "hydra.launcher.mem_gb=4",
        "hydra.launcher.timeout_min=60",
        "hydra.launcher.name=genometracks_predict",
    ]
    mine = slurm_job_overrides("run", ["hydra/launcher=slurm", "hydra.launcher.mem_gb=16", "hydra.launcher.name=iso"])
    assert mine == ["hydra.launcher.cpus_per_task=2", "hydra.launcher.timeout_min=120"]


def test_a_genark_accession_added_to_a_finished_row_runs_its_genome_again(tmp_path):
    # its job checks the contigs against the assembly at its end; a finished genome given an accession
    # later was skipped, and the hub then failed for every genome
    from genometracks.collection.launch import accession_changed
    from genometracks.collection.manifest import Genome
    from genometracks.io.rundir import CollectionDir

    coll = CollectionDir(tmp_path)
    (tmp_path / "g").mkdir()
    status = tmp_path / "g" / "collection_job.json"
    plain, on_genark = Genome("g", tmp_path / "g.fa"), Genome("g", tmp_path / "g.fa", "GCF_000005845.2")
    status.write_text(json.dumps({"name": "g", "status": "ok", "accession": None}))
    assert not accession_changed(coll, plain) and accession_changed(coll, on_genark)
    status.write_text(json.dumps({"name": "g", "status": "ok", "accession": "GCF_000005845.2"}))
    assert accession_changed(coll, plain) and not accession_changed(coll, on_genark)
    status.write_text(json.dumps({"name": "g", "status": "ok"}))  # a record from before: not compared
    assert not accession_changed(coll, on_genark)


def test_a_rerun_with_other_settings_is_refused_but_launcher_and_labels_may_change(tmp_path):
    # a genome added later ran with the new command's settings (say another peak threshold) beside
    # genomes made with the old ones, and nothing said so
    from genometracks.collection.launch import Collection, check_same_settings
    from genometracks.io.rundir import CollectionDir

    coll = CollectionDir(tmp_path)

    def request(*overrides: str) -> Collection:
        return Collection("predict", coll, [], ["data=custom", "model=ecoli_k12", *overrides, f"run_dir='{tmp_path}'"])

    check_same_settings(request("predict.peaks.threshold=0.3"))
    assert coll.settings.read_text() == "data=custom\nmodel=ecoli_k12\npredict.peaks.threshold=0.3\n"
    check_same_settings(request("predict.peaks.threshold=0.3", "hydra/launcher=slurm", "hydra.launcher.mem_gb=8", "export.hub_name=x"))
    message = r"settings.txt: this collection was made with other settings \(then: predict.peaks.threshold=0.3; now: "
    with pytest.raises(ConfigError, match=message + r"predict.peaks.threshold=0.5\)"):
        check_same_settings(request("predict.peaks.threshold=0.5"))


def test_a_genomes_error_names_the_manifest_and_the_genome():
    # an empty FASTA in a manifest row said only '.../empty.fa: file is empty': not which manifest or row
    from genometracks.collection.job import in_collection

    line = "genometracks: error: /g/empty.fa: file is empty; give a FASTA with one '>' record per contig"
    assert in_collection(line, "/c/manifest.tsv", "iso4") == (
        "genometracks: error: /c/manifest.tsv: genome 'iso4': /g/empty.fa: file is empty; give a FASTA with one '>' record per contig"
    )
    missing = "genometracks: error: /g/x.fa: FASTA file not found; set data.fasta to an existing file"
    assert in_collection(missing, "/c/manifest.tsv", "x").endswith("FASTA file not found; correct its FASTA column (column 2)")
    assert in_collection(missing, "data.fasta=/g/x.fa,/g/y.fa", "x") == (
        "genometracks: error: genome 'x': /g/x.fa: FASTA file not found; set data.fasta to an existing file"
    )
    named = "genometracks: error: /c/manifest.tsv: genome 'x' has no TSS BED (column 4)"
    assert in_collection(named, "/c/manifest.tsv", "x") == named  # already says where
