"""Exact PWMs of the sigma CNN's first convolution layer, written as MEME + logos, and matched
against the shared motif databases (RegulonDB, PRODORIC, DPInteract sigma70 boxes).

Kernel c (weight [4, K], bias b) scores a window w as b + Σ_m W[w_m, m] = constant_c + log_base P_c(w)
(genometracks.interpret.kernel_pwm); the PWM P_c [K, 4] is what is written and drawn. The identity
holds for any base; by default each kernel's base is exp(|gamma|/sigma) of the batch norm behind it,
so P_c is sharp in the units the network uses (base 2 would give ~0.02-bit, flat logos).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genometracks.interpret.kernel_pwm import kernels_to_motifs
from genometracks.interpret.matching import best_matches, match_label
from genometracks.interpret.motifs import information_matrix, load_reference_motifs, write_meme
from genometracks.io.atomic import write_text_atomic
from genometracks.io.figures import new_figure, save_figure
from genometracks.io.run_config import group_defaults
from genometracks.io.rundir import RunDir
from genometracks.sigma.model import SigmaCNN


def kernel_bases(model: SigmaCNN) -> np.ndarray:
    """Per first-layer channel c: exp(|gamma_c| / sqrt(running_var_c + eps)) — the log base in which a
    kernel score is counted in the units the next layer sees after batch norm (float64 [C])."""
    norm = model.norms[0]
    scale = norm.weight.detach().double().abs() / torch.sqrt(norm.running_var.detach().double() + norm.eps)
    return np.exp(scale.numpy())


def kernel_motifs(model: SigmaCNN, base: float | str = "bn", prefix: str = "sigma_cnn_k") -> list:
    """One Motif per first-layer channel (PWM [K, 4], meta constant/base); names prefix + channel.

    base: a number > 1 for every kernel, or "bn" for each kernel's batch-norm base (`kernel_bases`)."""
    conv = model.convs[0]
    weight = conv.weight.detach().double().numpy()  # [C, 4, K]
    bias = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(weight.shape[0])
    names = [f"{prefix}{c}" for c in range(weight.shape[0])]
    if base != "bn":
        return kernels_to_motifs(weight, bias, base=float(base), names=names, source="sigma_cnn conv1")
    return [
        kernels_to_motifs(weight[c : c + 1], bias[c : c + 1], base=float(b), names=[names[c]], source="sigma_cnn conv1")[0]
        for c, b in enumerate(kernel_bases(model))
    ]


def match_kernels(motifs: list, refs: list, min_information: float | None = None, match_qvalue: float | None = None) -> list[dict]:
    """Nearest Tomtom reference per kernel motif (genometracks.interpret.matching; q-values over the kernels
    of at least `min_information` bits x references, NaN for the others): rows {kernel, consensus, bits,
    match, nearest_motif, p_value, e_value, q_value, offset, orientation}. `match` names the nearest only
    for a kernel of at least `min_information` bits whose q-value is at most `match_qvalue` (the attention
    heads' rule; defaults: conf/interpret), else '.'; `nearest_motif` always. A kernel's bits depend on
    the base of its transformation (sigma.kernel_base)."""
    defaults = group_defaults("interpret")
    min_information = float(defaults.min_information if min_information is None else min_information)
    match_qvalue = float(defaults.match_qvalue if match_qvalue is None else match_qvalue)
    bits_of = [motif.information_content()[1] for motif in motifs]
    rows = []
    for motif, bits, best in zip(motifs, bits_of, best_matches(motifs, refs, [b >= min_information for b in bits_of])[0]):
        nearest = match_label(best) or "."
        significant = best is not None and bits >= min_information and best.q_value <= match_qvalue
        rows.append(
            {
                "kernel": motif.name,
                "consensus": motif.consensus(),
                "bits": round(bits, 3),
                "match": nearest if significant else ".",
                "nearest_motif": nearest,
                "p_value": best.p_value if best else float("nan"),
                "e_value": best.e_value if best else float("nan"),
                "q_value": best.q_value if best else float("nan"),
                "offset": best.offset if best else 0,
                "orientation": best.orientation if best else "",
            }
        )
    return rows


def draw_kernel_logos(motifs: list, path: str | Path, ncols: int = 4) -> Path:
    """Information-content logos of the kernel PWMs in one PNG grid."""
    import logomaker  # slow to import; only the kernel logos need it here
    import pandas as pd

    nrows = max(1, -(-len(motifs) // ncols))
    fig = new_figure(3.2 * ncols, 1.8 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, motif in zip(axes.ravel(), motifs):
        ax.axis("on")
        frame = pd.DataFrame(information_matrix(motif.probabilities), columns=list("ACGT"))
        logomaker.Logo(frame, ax=ax, color_scheme="classic")
        ax.set_ylim(0, 2)
        ax.set_title(motif.name, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def export_kernels(model: SigmaCNN, out_dir: str | Path, motif_dir: str | Path | None = None, base: float | str = "bn") -> dict:
    """Write motifs/sigma_cnn_kernels.meme, .png (logos) and _matches.tsv under out_dir; returns paths + rows."""
    out = RunDir(Path(out_dir)).motifs
    motifs = kernel_motifs(model, base)
    meme = write_meme(motifs, out / "sigma_cnn_kernels.meme")
    logos = draw_kernel_logos(motifs, out / "sigma_cnn_kernels.png")
    refs = load_reference_motifs(motif_dir)
    rows = match_kernels(motifs, refs)
    header = list(rows[0]) if rows else ["kernel"]
    text = "\t".join(header) + "\n" + "".join("\t".join(str(r[h]) for h in header) + "\n" for r in rows)
    table = write_text_atomic(out / "sigma_cnn_kernel_matches.tsv", text)
    return {"meme": str(meme), "logos": str(logos), "matches": str(table), "rows": rows}
