"""The one-line form of an error, as the CLI prints it and a collection's summary records it."""

from __future__ import annotations

import re


def error_line(err: BaseException) -> str:
    """`genometracks: error: ...` on one line. Advice to load a checkpoint with `weights_only=False`
    (from torch or Lightning) is cut: that runs arbitrary code from the file."""
    text = " ".join(str(err).split()) or type(err).__name__
    sentences = re.split(r"(?<=[.!?])\s+", text)
    text = " ".join(s for s in sentences if "weights_only" not in s) or type(err).__name__
    return f"genometracks: error: {text}"
