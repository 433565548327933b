"""Where things live: the shared data folder beside the checkout, and the repository's conf/ and hub/."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data() -> Path:
    """Folder holding `ecoli_k12/` etc.: $GENOMETRACKS_DATA, else ../shared/data beside the checkout."""
    env = os.environ.get("GENOMETRACKS_DATA")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


def conf_dir() -> Path:
    """The Hydra config tree (`conf/` at the repository root)."""
    return REPO_ROOT / "conf"


def hub_static_dir() -> Path:
    """Static hub parts: track description pages and templates (`hub/`)."""
    return REPO_ROOT / "hub"
