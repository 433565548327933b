"""What made an output: the command line and the git commit of the code (for metrics.json and model cards)."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from pathlib import Path

from genometracks.io.paths import REPO_ROOT


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """HEAD of the checkout the package runs from, '+dirty' when tracked files differ; None outside git,
    and None when `root` is not the top of its repository (an installed wheel in site-packages, inside
    a user's own project: that project's commit says nothing about genometracks)."""
    try:
        top = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=20, check=True
        ).stdout.strip()
        if not top or Path(top).resolve() != Path(root).resolve():
            return None
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=20, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=20
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head or None


COMMAND_ENV = "GENOMETRACKS_COMMAND"  # the running genometracks command (cli.run_hydra sets it)


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed: `genometracks <command> key=value ...` (the command from $GENOMETRACKS_COMMAND,
    which cli.run_hydra sets, or an argv[0] of 'genometracks <command>'; Hydra's internal overrides such
    as hydra.run.dir are dropped)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    command = os.environ.get(COMMAND_ENV)
    if argv[0].startswith("genometracks"):
        head = argv[0]
    elif command and Path(argv[0]).name in ("genometracks", "cli.py"):  # the console script, python -m genometracks.cli
        head = f"genometracks {command}"
    else:
        head = f"python {argv[0]}"
    rest = [a for a in argv[1:] if not a.startswith(("hydra.run.dir=.", "hydra.output_subdir=", "hydra/"))]
    return " ".join([head, *(shlex.quote(a) for a in rest)])


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (which weights a model card or a fine-tuning run used)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
