"""Where things live: the shared data folder beside the checkout, and the repository's conf/ and hub/."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGED = Path(__file__).resolve().parents[1] / "_data"  # conf/ and hub/ inside a wheel (setup.py build hook)
SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "models"  # genometracks/models/<name>/ (package data)


def _source_checkout() -> bool:
    """Running from the repository (editable install or PYTHONPATH), not from an installed wheel."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "conf").is_dir()


def shared_data() -> Path:
    """Folder holding `ecoli_k12/` etc.: $GENOMETRACKS_DATA, else ../shared/data beside the checkout."""
    env = os.environ.get("GENOMETRACKS_DATA")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


def shared_data_hint(path: str | Path) -> str | None:
    """For a missing file inside the shared data folder, the fix: where that folder is looked for and how
    to point at it (None for a file elsewhere)."""
    if not str(Path(path).absolute()).startswith(str(shared_data().absolute())):
        return None
    return (
        f"it lies in the shared data folder {shared_data()} ($GENOMETRACKS_DATA, else ../shared/data beside the checkout): "
        "point GENOMETRACKS_DATA at the folder that holds ecoli_k12/"
    )


def conf_dir() -> Path:
    """The Hydra config tree: `conf/` at the repository root, or its copy shipped in the wheel."""
    return REPO_ROOT / "conf" if _source_checkout() else PACKAGED / "conf"


def hub_static_dir() -> Path:
    """Static hub parts, track description pages and templates: `hub/` at the repository root, or its
    copy shipped in the wheel."""
    return REPO_ROOT / "hub" if _source_checkout() else PACKAGED / "hub"


def safe_name(text: str, prefix: str = "t") -> str:
    """A file/track name from a user string: letters, digits and '_' only (no dots, no '/'), starts
    with a letter, at most 64 characters; so a name can never point outside its folder."""
    name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", text)).strip("_")[:64]
    return name if name[:1].isalpha() else f"{prefix}_{name}".rstrip("_")


def output_dir_problem(path: str | Path) -> str | None:
    """Why `path` cannot be (or become) a writable folder, or None: checks the path itself if it
    exists, else its nearest existing ancestor (a file in the way, no write permission)."""
    path = Path(path).expanduser().absolute()
    if path.exists():
        if not path.is_dir():
            return f"{path} exists and is not a folder"
        return None if os.access(path, os.W_OK | os.X_OK) else f"{path} is not writable"
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, so {path} cannot be created"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable, so {path} cannot be created"
    try:  # permissions can say yes where the file system says no (/proc, a read-only mount as root)
        import tempfile

        os.rmdir(tempfile.mkdtemp(prefix=".gt-write-check-", dir=parent))
    except OSError as err:
        return f"{path} cannot be created in {parent} ({err.strerror})"
    return None
