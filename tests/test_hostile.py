"""The hostile-input suite: the whole pipeline on a bring-your-own genome written the way real files
come (lower case, N runs, IUPAC letters, Windows line ends, descriptions, unsorted and duplicated TSS
records), and one clear error, naming the file, record and fix, for inputs that cannot be used.

Also covered elsewhere (same invariants, unit level): FASTA readers (test_genome.py), TSS readers
with aliases, zero-length, unsorted and duplicate records (test_annotations.py), impossible and
unknown config values (test_train.py), atomic writes (test_export_atomic.py), kills and a full disk
(test_faults.py), the server's root (test_export_serve.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import py2bit
import pyBigWig
import pytest
import torch

from genometracks.io.paths import safe_name
from tests.conftest import TINY_INTERPRET, TINY_MODEL, cli
from tests.kent import assert_hub_clean

# the smoke experiment's tiny model, on data=custom
TINY_CUSTOM = [
    "data=custom",
    "model=small",
    *TINY_MODEL,
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "task.warmup_steps=5",
    *TINY_INTERPRET,
    "predict.peaks.threshold=0.05",
]


def hostile_genome(folder):
    """Two contigs as a user might hand them over; returns (fasta, bed, {name: expected letters})."""
    rng = np.random.default_rng(7)
    a = "".join(rng.choice(list("ACGT"), 12_000))
    a = a[:3000] + a[3000:4000].lower() + "N" * 700 + a[4700:9000] + "RYKMSWbdhvn" + a[9011:]
    b = "".join(rng.choice(list("acgtACGT"), 9_001))  # soft-masked throughout, odd length
    fasta = folder / "my genome (v2).fa"
    with open(fasta, "w", newline="") as handle:  # Windows line ends, uneven lines, blank lines, descriptions
        handle.write(">chrA assembled 2026 | plasmid-free\r\n")
        handle.write("\r\n".join(a[i : i + 70] for i in range(0, 7000, 70)) + "\r\n")
        handle.write("\r\n".join(a[i : i + 80] for i in range(7000, len(a), 80)) + "\r\n\r\n")
        handle.write(">chrB\r\n" + "\r\n".join(b[i : i + 61] for i in range(0, len(b), 61)) + "\r\n\r\n")
    sites = sorted(set(int(x) for x in rng.integers(100, 8_900, 60)))
    rows = [f"chrB\t{p}\t{p + 1}\tb{p}\t0\t{'+-'[p % 2]}" for p in sites]
    rows += [f"chrA\t{p}\t{p + 1}\ta{p}\t5\t{'+-'[p % 2]}" for p in (s + 2000 for s in sites)]
    rows = rows[::-1] + rows[:5]  # unsorted, five duplicates
    bed = folder / "tss.bed"
    bed.write_text("track name=tss\n# exported from a spreadsheet\n" + "\n".join(rows) + "\n")
    return fasta, bed, {"chrA": a, "chrB": b}


pytestmark = pytest.mark.slow  # end-to-end runs and CLI subprocesses


@pytest.fixture(scope="module")
def byo_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("byo")
    fasta, bed, expected = hostile_genome(folder)
    run_dir = folder / "run"
    # a path with spaces and brackets must be quoted for Hydra's override grammar, as in a shell
    done = cli("run", *TINY_CUSTOM, f"data.fasta='{fasta}'", f"data.tss={bed}", f"run_dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir, expected


def test_hostile_fasta_runs_end_to_end_with_exact_lengths(byo_run):
    run_dir, expected = byo_run
    sizes = {name: len(seq) for name, seq in expected.items()}
    for strand in ("plus", "minus"):
        bw = pyBigWig.open(str(run_dir / "tracks" / f"tss.{strand}.bw"))
        assert bw.chroms() == sizes
        for name, size in sizes.items():  # every base covered, N runs and IUPAC letters included
            values = np.asarray(bw.values(name, 0, size))
            assert np.isfinite(values).all() and ((values >= 0) & (values <= 1)).all()
        bw.close()
    assert_hub_clean(run_dir / "hub")
    assert (run_dir / "report.html").is_file() and (run_dir / "igv" / "session.xml").is_file()
    import pysam  # IGV gets an indexable copy of the uneven FASTA, letters and case kept

    igv_fasta = pysam.FastaFile(str(run_dir / "igv" / "genome" / "my_genome_v2.fa"))
    assert {name: igv_fasta.fetch(name) for name in igv_fasta.references} == expected


def test_hostile_fasta_two_bit_keeps_letters_masks_and_ns(byo_run):
    run_dir, expected = byo_run
    genome = safe_name("my genome (v2)", prefix="g")
    assert genome == "my_genome_v2"  # the hub's genome folder: no spaces or brackets
    tb = py2bit.open(str(run_dir / "hub" / genome / f"{genome}.2bit"), True)  # True: keep soft-mask blocks
    for name, seq in expected.items():
        # 2bit holds ACGT, N blocks and soft-mask blocks: IUPAC letters become N; case is in the mask blocks
        assert tb.sequence(name).upper() == "".join(c if c in "ACGT" else "N" for c in seq.upper())
        lower = np.frombuffer(seq.encode(), np.uint8) >= ord("a")
        got = np.zeros(len(seq), bool)
        for start, end in tb.softMaskedBlocks(name):
            got[start:end] = True
        assert np.array_equal(got, lower) and lower.sum() > 1000
    tb.close()


def test_hostile_bed_records_loaded_once_each(byo_run):
    import json

    run_dir, _ = byo_run
    records = (run_dir.parent / "tss.bed").read_text().splitlines()[2:]  # after the track and comment lines
    summary = json.loads((run_dir / "data_summary.json").read_text())
    assert summary["label_sets"]["custom"]["total"] == len(set(records)) < len(records)  # duplicates merged
    assert summary["total_length"] == 12_000 + 9_001


@pytest.mark.parametrize(
    "fasta_text, message",
    [
        (">c1\nACGT\n>c1\nACGT\n", "unique"),
        (">c1\nACGTACGT\n>empty\n>c3\nACGT\n", "empty"),
        ("ACGT\n", "no FASTA records"),
        ("", "empty"),
    ],
)
def test_unusable_fasta_names_the_file(tmp_path, fasta_text, message):
    fasta = tmp_path / "user.fa"
    fasta.write_text(fasta_text)
    (tmp_path / "t.bed").write_text("c1\t1\t2\tx\t0\t+\n")
    done = cli("data", "summary", "data=custom", f"data.fasta={fasta}", f"data.tss={tmp_path / 't.bed'}")
    assert done.returncode != 0 and message in done.stderr and "user.fa" in done.stderr


@pytest.mark.parametrize(
    "bed_line, message",
    [
        ("chrZ\t10\t11\tx\t0\t+", "chrZ"),
        ("chrA\t50000\t50001\tx\t0\t+", "50000"),
        ("chrA\t10\t11\tx\t0\t*", "strand"),
        ("chrA\tten\t11\tx\t0\t+", "ten"),
    ],
)
def test_unusable_tss_record_names_file_and_line(tmp_path, bed_line, message):
    fasta, _, _ = hostile_genome(tmp_path)
    bed = tmp_path / "user.bed"
    bed.write_text("chrA\t100\t101\tok\t0\t+\n" + bed_line + "\n")
    done = cli("data", "summary", "data=custom", f"data.fasta='{fasta}'", f"data.tss={bed}")
    assert done.returncode != 0
    assert message in done.stderr and "user.bed" in done.stderr and "line 2" in done.stderr


def _checkpoint_error(tmp_path, ckpt):
    run_dir = tmp_path / "run"
    done = cli("predict", "data=synthetic", "data.generator.length=5000", f"ckpt={ckpt}", f"run_dir={run_dir}")
    assert done.returncode != 0
    assert not (run_dir / "tracks").exists()  # nothing half-written
    return done.stderr


def test_truncated_checkpoint(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(1000)}, "hyper_parameters": {}}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:500])
    err = _checkpoint_error(tmp_path, ckpt)
    assert "model.ckpt: not a readable genometracks checkpoint" in err and "re-train" in err


def test_foreign_checkpoint(tmp_path):
    ckpt = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"layer.weight": torch.zeros(3)}, "hyper_parameters": {"lr": 1}}, ckpt)
    assert "other.ckpt: no genometracks model config" in _checkpoint_error(tmp_path, ckpt)


def test_run_dir_that_cannot_be_a_folder(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the run directory should go")
    done = cli("predict", f"run_dir={blocker}/run1")
    assert done.returncode != 0
    assert f"{blocker} is a file, so {blocker}/run1 cannot be created" in done.stderr
    assert blocker.read_text() == "a file where the run directory should go"
    for quoted in (f"run_dir='{blocker}/run 1'", f'run_dir="{blocker}/run 1"'):  # as the README quotes paths with spaces
        done = cli("predict", quoted)
        assert done.returncode == 2 and f"{blocker} is a file, so {blocker}/run 1 cannot be created" in done.stderr


def test_a_run_dir_the_file_system_refuses_is_one_line():
    # /proc looks writable to root, but nothing can be made there: a bare '[Errno 2]' before
    from genometracks.io.paths import output_dir_problem

    problem = output_dir_problem("/proc/genometracks-x")  # as root: the trial folder fails; else: not writable
    assert problem in (
        "/proc/genometracks-x cannot be created in /proc (No such file or directory)",
        "/proc is not writable, so /proc/genometracks-x cannot be created",
    )
    done = cli("predict", "run_dir=/proc/genometracks-x")
    assert done.returncode == 2 and "choose a writable run_dir=DIR" in done.stderr and "[Errno" not in done.stderr


@pytest.mark.ci_may_skip  # CI containers run as root
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_read_only_run_dir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    done = cli("predict", f"run_dir={locked}")
    assert done.returncode != 0 and f"{locked} is not writable" in done.stderr


def test_read_only_run_dir_is_refused_in_one_line_also_as_root(tmp_path, monkeypatch, capsys):
    # root writes through permissions (the test above skips there): the folder's permission check is made
    # to say no, as it does for any other user, and the command must stop before Hydra makes a folder
    import genometracks.io.paths as paths
    from genometracks.cli import main

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    real_access = os.access
    monkeypatch.setattr(paths.os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    with pytest.raises(SystemExit) as stopped:
        main(["predict", f"run_dir={locked}"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"genometracks: error: run_dir: {locked} is not writable; choose a writable run_dir=DIR"], err
    assert list(locked.iterdir()) == []
    assert paths.output_dir_problem(locked / "new") == f"{locked} is not writable, so {locked / 'new'} cannot be created"


def test_user_names_never_leave_their_folder(tmp_path):
    from genometracks.sigma.gradcam import draw_class_logos

    for hostile in ("../../etc/passwd", "/abs/path", "a/../../b", "..", ".hidden", "con:colon", "x" * 300):
        name = safe_name(hostile)
        assert "/" not in name and "." not in name and 0 < len(name) <= 66
        assert (tmp_path / name).resolve().parent == tmp_path.resolve()
    # sigma class names come from the config and become logo file names
    mats = {"hirescam": np.full((10, 4), 0.25), "frequency": np.full((10, 4), 0.25), "n": 3}
    out = tmp_path / "logos" / "sigma"
    written = draw_class_logos({"../../escaped": mats, "sigma70": mats}, 10, out)
    assert all(path.resolve().parent == out.resolve() for path in written)
    assert {p.name for p in out.iterdir()} >= {"escaped.png", "sigma70.png"}
    assert not (tmp_path / "escaped.png").exists()


def test_an_output_path_that_is_a_folder_and_a_negative_shift_are_one_line(tmp_path, capsys):
    """`labels out=DIR` named the writer's temporary file; data.shift=-5 was counted and refused only later."""
    from genometracks.cli import main

    fasta = tmp_path / "g.fa"
    fasta.write_text(">chrA\n" + "ACGT" * 30 + "\n")
    bed = tmp_path / "t.bed"
    bed.write_text("chrA\t10\t11\tt1\t0\t+\n")
    (tmp_path / "out").mkdir()
    custom = ["data=custom", f"data.fasta={fasta}", f"data.tss={bed}"]
    for args, needle in (
        (["labels", *custom, f"out={tmp_path / 'out'}"], f"{tmp_path / 'out'}: is a folder"),
        (["data", "summary", *custom, "data.shift=-5"], "data.shift=-5 must be 0 or more"),
    ):
        with pytest.raises(SystemExit):
            main(args)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0] and ".tmp" not in err[0]
    assert list((tmp_path / "out").iterdir()) == []
