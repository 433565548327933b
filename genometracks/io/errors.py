"""The one-line form of an error, as the CLI prints it and a collection's summary records it."""

from __future__ import annotations

import re

# settings a command needs that have no default (`???` in conf/), and how to give them
REQUIRED = {
    "data.fasta": "data.fasta=GENOME.fa (with data=custom): the genome to read",
    "data.tss": "data.tss=TSS.bed (with data=custom): the TSS positions that training and evaluation need",
}


def error_line(err: BaseException) -> str:
    """`genometracks: error: ...` on one line. Advice to load a checkpoint with `weights_only=False`
    (from torch or Lightning) is cut: that runs arbitrary code from the file. A missing required
    setting (OmegaConf's MissingMandatoryValue) is named with how to give it."""
    key = getattr(err, "full_key", None)
    if type(err).__name__ == "MissingMandatoryValue" and key:
        how = REQUIRED.get(str(key), f"{key}=VALUE")
        return f"genometracks: error: {key} is not set; pass {how}"
    text = " ".join(str(err).split()) or type(err).__name__
    sentences = re.split(r"(?<=[.!?])\s+", text)
    text = " ".join(s for s in sentences if "weights_only" not in s) or type(err).__name__
    return f"genometracks: error: {text}"
