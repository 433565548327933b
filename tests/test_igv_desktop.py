"""IGV desktop (Debian's `igv` 2.16) as a tested client: the run's batch file offline under Xvfb, and
the session loaded with IGV started from another folder; each track's pixels checked in the snapshots.

Needs `apt-get install -y igv xvfb` (scripts/install.sh --test). IGV's preferences go to a temporary
user.home, so the user's ~/igv is never read or written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests import browser_run as br

IGV, XVFB = shutil.which("igv"), shutil.which("xvfb-run")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        IGV is None or XVFB is None,
        reason="IGV desktop or Xvfb is not installed: `apt-get install -y igv xvfb` (scripts/install.sh --test installs them)",
    ),
]
ARTEFACTS = Path(__file__).parent / "artefacts"
PLUS, MINUS = (200, 30, 30), (30, 60, 200)
SIGMA70, SIGMA38 = (213, 94, 0), (204, 121, 167)
PEAKS = (120, 0, 120)
GENES = (12, 12, 120)  # the genes track's colour
MOTIFS = [tuple(int(v) for v in rgb.split(",")) for rgb in br.motif_hit_records()["itemRgb"]]  # drawn in itemRgb
ALIASED = (0, 190, 190)  # a user's BED feature on an alias of the contig name
BASES = {"A": (0, 150, 0), "C": (0, 0, 255), "G": (209, 113, 5), "T": (255, 0, 0)}  # IGV's sequence colours


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("igvdesk")
    br.exported_run(root, "IGV desktop needs none")
    return root, root / "run"


def igv(args: list[str], cwd: Path, home: Path, program: str | None = None) -> subprocess.CompletedProcess:
    """IGV (or `program`, a script that starts it) under Xvfb, with its preferences in `home`."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "JAVA_TOOL_OPTIONS": f"-Duser.home={home} -Djava.awt.headless=false"}
    return subprocess.run(
        [XVFB, "-a", "-s", "-screen 0 1400x1000x24", program or IGV, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def pixels(path: Path) -> np.ndarray:
    import matplotlib.image

    return np.round(matplotlib.image.imread(str(path))[..., :3] * 255).astype(int)


def mask(image: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.abs(image - np.array(colour)).sum(axis=-1) <= 6


def rows_of(image: np.ndarray, colour) -> np.ndarray:
    return np.flatnonzero(mask(image, colour).any(axis=1))


def assert_strands_and_features(image: np.ndarray) -> None:
    # one merged track: both strands on one zero line (the longest row of either colour: the member
    # drawn last draws it), the plus strand above it and the minus strand below it
    strands = mask(image, PLUS) | mask(image, MINUS)
    zero = int(np.argmax(strands.sum(axis=1)))
    assert strands[zero].sum() > 500, "no zero line across the TSS track"
    plus, minus = rows_of(image, PLUS), rows_of(image, MINUS)
    assert plus.size and minus.size, "a strand is missing from the TSS track"
    assert plus.min() <= zero - 3 and plus.max() <= zero + 1, ("plus strand not above the zero line", zero, plus)
    assert minus.max() >= zero + 3 and minus.min() >= zero - 1, ("minus strand not below the zero line", zero, minus)
    assert plus.max() >= zero - 2 and minus.min() <= zero + 1, ("the strands do not meet at one zero line", zero, plus, minus)
    assert mask(image, SIGMA70).sum() > 0 and mask(image, SIGMA38).sum() > 0, "sigma classes not in their colours"
    assert mask(image, PEAKS).sum() > 0, "no TSS peaks drawn"
    assert all(mask(image, colour).sum() > 0 for colour in MOTIFS), ("motif hits not in their colours", MOTIFS)
    assert mask(image, GENES).sum() > 500, "the annotation's genes are not drawn"


def test_shipped_batch_runs_offline(run):
    """igv/snapshot.sh, started from another folder: IGV read its default-genome preference against the
    working directory, so `igv -o DIR/igv/prefs.properties -b DIR/igv/batch.txt` from elsewhere waited."""
    root, out = run
    igv_dir = out / "igv"
    elsewhere = root / "elsewhere_batch"
    elsewhere.mkdir(exist_ok=True)
    result = igv([], cwd=elsewhere, home=root / "home1", program=str(igv_dir / "snapshot.sh"))
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "hg19" not in log  # no network genome was asked for
    shots = list((igv_dir / "snapshots").glob("*.png"))
    assert len(shots) == 1, log[-3000:]
    assert_strands_and_features(pixels(shots[0]))


def test_session_loads_from_any_folder_with_every_track_drawn(run):
    root, out = run
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    session, shots = (out / "igv" / "session.xml").resolve(), elsewhere / "shots"
    seq_start = br.PLUS_PEAKS[0] + 1
    # a user's own BED keyed by the FASTA's original name for the contig: IGV maps it through the genome's
    # alias table (igv/genome/genome.json's aliasURL), else it would draw nothing
    aliased = elsewhere / "aliased.bed"
    aliased.write_text(f"track itemRgb=On\n{br.HEADERS[br.CHROM]}\t1200\t2400\tmine\t0\t+\t1200\t2400\t{','.join(map(str, ALIASED))}\n")
    (elsewhere / "batch.txt").write_text(
        f"load {session}\nload {aliased}\nsnapshotDirectory {shots}\ngoto {br.LOCUS}\nsnapshot locus.png\n"
        f"goto {br.CHROM}:{seq_start}-{seq_start + 79}\nsnapshot sequence.png\n"
        # a TSS call found by its name (IGV indexes the names of the plain BED it reads whole), from a
        # view with no call in it: the view stays there when the search fails
        f"goto {br.PLASMID}:1-1500\nsnapshot plasmid.png\ngoto TSS_{br.PLUS_PEAKS[-1] + 1}+\nsnapshot search.png\n"
        # a gene by its name (the genes bigBed's name index), again from the plasmid where nothing is drawn
        f"goto {br.PLASMID}:1-1500\ngoto {br.GENES[2][3]}\nsnapshot gene.png\nexit\n"
    )
    prefs = elsewhere / "prefs.properties"  # IGV started anywhere: only its default genome is ours
    prefs.write_text(f"DEFAULT_GENOME_KEY={(out / 'igv' / 'genome' / 'run_genome.fa').resolve()}\n")
    result = igv(["-o", str(prefs), "-b", str(elsewhere / "batch.txt")], cwd=elsewhere, home=root / "home2")
    log = result.stdout + result.stderr
    assert result.returncode == 0 and (shots / "sequence.png").is_file(), log[-3000:]
    assert "index is required" not in log.lower() and "error loading" not in log.lower(), log[-3000:]
    image = pixels(shots / "locus.png")
    assert_strands_and_features(image)
    assert mask(image, ALIASED).sum() > 200, "the BED keyed by an alias of the contig is not drawn"
    sequence = pixels(shots / "sequence.png")
    expected = br.sequences()[br.CHROM][seq_start - 1 : seq_start + 79]
    for base, colour in BASES.items():  # the reference sequence track is drawn, in IGV's base colours
        assert (mask(sequence, colour).sum() > 0) == (base in expected.upper()), base
    assert mask(pixels(shots / "plasmid.png"), PEAKS).sum() == 0
    assert mask(pixels(shots / "search.png"), PEAKS).sum() > 0, "the TSS call's name was not found"
    assert mask(pixels(shots / "plasmid.png"), GENES).sum() == 0
    assert mask(pixels(shots / "gene.png"), GENES).sum() > 500, "the gene's name was not found"
    ARTEFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shots / "locus.png", ARTEFACTS / "igv_desktop.png")
