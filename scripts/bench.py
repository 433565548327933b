#!/usr/bin/env python3
"""Textbook vs fast Transformer-XL throughput as one JSON object; the same as `genometracks bench`
(options: --help). Runs from a checkout without installing: the repository root goes on sys.path."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genometracks.bench import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
