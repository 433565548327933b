"""genometracks' own CPU attention kernel (band_attention.cpp), compiled once per machine on first use.

`compiled()` returns the loaded extension, or None where it cannot be had: no C++ compiler or ninja,
a failed build (one warning says why), or GENOMETRACKS_KERNEL=torch in the environment. Callers then
use PyTorch's flash-attention tiles, which compute the same function (attention.band_attention).

The build goes to torch's extension cache (TORCH_EXTENSIONS_DIR, default ~/.cache/torch_extensions)
under a name that carries torch's version and this CPU's instruction-set flags, since it is compiled
with -march=native against torch's headers: nodes of a cluster that share a home directory but not a
CPU each build their own, and a torch upgrade builds anew. The name also carries the source's location,
so two checkouts (or a checkout and an installed wheel) each keep their own build.
`build_now()` builds it ahead of time (scripts/install.sh calls it).
"""

from __future__ import annotations

import hashlib
import os
import platform
import warnings
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

SOURCE = Path(__file__).with_name("band_attention.cpp")
SWITCH = "GENOMETRACKS_KERNEL"  # "torch": never use the compiled kernel
# -ffast-math lets the compiler vectorise the softmax's max and sum (reordered sums, ~1e-7 relative)
# -fopenmp: at::parallel_for shares (stream, head) pairs out over torch's OpenMP threads
FLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-ffast-math", "-fopenmp"]


def cpu_fingerprint() -> str:
    """8 hex digits from torch's version, the machine type and the CPU's flags line (/proc/cpuinfo; the
    machine alone elsewhere): a build is only reused by the same torch on the same instruction set."""
    import torch

    flags = torch.__version__ + platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags += line
                break
    except OSError:
        pass
    return hashlib.sha1(flags.encode()).hexdigest()[:8]


def build_name() -> str:
    """The extension's name in torch's cache: this CPU and torch (`cpu_fingerprint`) and where the source
    lies, so that two checkouts or installs on one machine keep a build each instead of replacing each
    other's (torch would otherwise rebuild, ~20 s, whenever the other one ran last)."""
    where = hashlib.sha1(str(SOURCE.resolve()).encode()).hexdigest()[:6]
    return f"genometracks_band_{cpu_fingerprint()}_{where}"


def wanted() -> bool:
    """False when GENOMETRACKS_KERNEL=torch asks for PyTorch's kernels only."""
    return os.environ.get(SWITCH, "").strip().lower() != "torch"


@lru_cache(maxsize=1)
def _build() -> ModuleType | None:
    try:
        from torch.utils.cpp_extension import load

        module: ModuleType = load(build_name(), [str(SOURCE)], extra_cflags=FLAGS, extra_ldflags=["-fopenmp"], verbose=False)
        return module
    except Exception as error:  # no compiler, no ninja, a failed build: fall back, once, with the reason
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        warnings.warn(
            f"genometracks: the compiled attention kernel is not available ({reason}); using PyTorch's "
            f"flash-attention tiles instead (same results, slower). Install g++ and ninja, or set {SWITCH}=torch "
            "to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def compiled() -> Any:
    """The compiled kernel module (its `forward` and `backward`, see band_attention.cpp), or None (see the
    module docstring). Typed Any: the module's functions are defined in C++."""
    return _build() if wanted() else None


def build_now() -> str:
    """Build (or find) the kernel now; one line saying where it is, or that PyTorch's kernels will be used."""
    module = compiled()
    if module is None:
        return "genometracks: compiled attention kernel not available; the fast path uses PyTorch's flash-attention tiles"
    return f"genometracks: compiled attention kernel ready ({module.__file__})"
