"""Exact CNN-kernel ↔ PWM transformation (after Ding et al., "An exact transformation for CNN
kernel enables accurate sequence motif identification"; re-derived here, no code reused).

A convolution channel on one-hot DNA scores a width-K window w = (a_0 .. a_{K-1}) as
    out = bias + Σ_m W[a_m, m].
With column normalisers Z_m = Σ_a base^W[a, m] and PWM P[m, a] = base^W[a, m] / Z_m,
    out = (bias + Σ_m log_base Z_m) + log_base P(w | PWM)
exactly, for any base > 1. The inverse sets W[a, m] = log_base P[m, a] (bias = the constant).

Orientation. PyTorch's conv1d is a cross-correlation: out[j] = bias + Σ_m W[:, m] · x[:, j - pad + m],
so kernel column m reads window position m (5'→3') and no flip is needed (convention="torch").
A true convolution out[j] = Σ_m W[:, m] · x[:, j - m] reads window position K-1-m with kernel
column m, so the kernel is flipped along positions first (convention="convolution").
"""

from __future__ import annotations

import numpy as np

from genometracks.interpret.motifs import Motif, MotifError

CONVENTIONS = ("torch", "convolution")


def _check(base: float, convention: str) -> None:
    if not base > 1:
        raise MotifError(f"kernel/PWM base must be > 1, got {base}")
    if convention not in CONVENTIONS:
        raise MotifError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def kernel_to_pwm(weight: np.ndarray, bias: float = 0.0, base: float = np.e, convention: str = "torch") -> tuple[np.ndarray, float]:
    """Kernel [4, K] (rows A, C, G, T) + bias → (PWM [K, 4] rows summing to 1, constant) with
    conv_out(window) = constant + log_base P(window | PWM), window read 5'→3'."""
    _check(base, convention)
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != 4:
        raise MotifError(f"kernel_to_pwm: weight must be [4, K] (A, C, G, T rows), got {w.shape}")
    columns = w.T if convention == "torch" else w.T[::-1]  # [K, 4], window order
    scaled = columns * np.log(base)  # natural-log exponent
    shift = scaled.max(axis=1, keepdims=True)  # for a stable log-sum-exp
    log_z = shift[:, 0] + np.log(np.exp(scaled - shift).sum(axis=1))
    pwm = np.exp(scaled - log_z[:, None])
    constant = float(bias) + float(log_z.sum() / np.log(base))
    return pwm, constant


def pwm_to_kernel(
    pwm: np.ndarray, base: float = np.e, constant: float = 0.0, convention: str = "torch", pseudocount: float = 0.0
) -> tuple[np.ndarray, float]:
    """PWM [K, 4] → (kernel [4, K], bias) with conv_out = constant + log_base P(window | PWM).

    Any per-column additive constant could be moved between the kernel and the bias; this one puts
    it all in `bias` (= constant). Zero probabilities need `pseudocount` > 0 (added, rows renormalised).
    """
    _check(base, convention)
    p = np.asarray(pwm, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 4 or (p < 0).any():
        raise MotifError(f"pwm_to_kernel: pwm must be non-negative [K, 4], got shape {p.shape}")
    p = p + pseudocount
    if (p <= 0).any():
        raise MotifError("pwm_to_kernel: the PWM has zero probabilities (log = -inf); pass pseudocount > 0")
    p = p / p.sum(axis=1, keepdims=True)
    kernel = (np.log(p) / np.log(base)).T  # [4, K] in window order
    return (kernel if convention == "torch" else kernel[:, ::-1]).copy(), float(constant)


def collapse_tokenwise_conv(
    token_features: np.ndarray, conv_weight: np.ndarray, conv_bias: np.ndarray | None = None, groups: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Fold a per-position map followed by a Conv1d into one exact kernel per output channel.

    token_features: [4, C_in] the conv input produced at a position holding A, C, G, T (e.g.
    `proj(norm(embedding(tokens)))` evaluated on tokens 0..3; any per-position map is exact).
    conv_weight: [C_out, C_in / groups, K] (PyTorch layout); conv_bias: [C_out] or None.
    Returns (kernels [C_out, 4, K] in PyTorch's orientation, biases [C_out]) with
    conv_out[c, j] = biases[c] + Σ_m kernels[c, a_{j-pad+m}, m] for A/C/G/T inputs.
    """
    t = np.asarray(token_features, dtype=np.float64)
    w = np.asarray(conv_weight, dtype=np.float64)
    c_out, c_per_group, k = w.shape
    if t.shape[0] != 4 or t.shape[1] != c_per_group * groups or c_out % groups:
        raise MotifError(
            f"collapse_tokenwise_conv: token_features {t.shape}, conv weight {w.shape} and "
            f"groups={groups} do not fit (need [4, C_in], [C_out, C_in/groups, K])"
        )
    group_of_out = np.arange(c_out) // (c_out // groups)  # [C_out]
    in_channels = group_of_out[:, None] * c_per_group + np.arange(c_per_group)[None, :]
    features = t[:, in_channels]  # [4, C_out, C_in/groups]
    kernels = np.einsum("aod,odk->oak", features, w)
    biases = np.zeros(c_out) if conv_bias is None else np.asarray(conv_bias, dtype=np.float64).copy()
    return kernels, biases


def kernels_to_motifs(
    kernels: np.ndarray,
    biases: np.ndarray,
    base: float = np.e,
    names: list[str] | None = None,
    convention: str = "torch",
    source: str = "kernel",
) -> list[Motif]:
    """One Motif per channel of kernels [C, 4, K]; meta holds 'constant' and 'base'."""
    k = np.asarray(kernels, dtype=np.float64)
    names = names or [f"kernel{c}" for c in range(k.shape[0])]
    if len(names) != k.shape[0]:
        raise MotifError(f"kernels_to_motifs: {len(names)} names for {k.shape[0]} kernels")
    motifs = []
    for name, weight, bias in zip(names, k, np.asarray(biases, dtype=np.float64)):
        pwm, constant = kernel_to_pwm(weight, bias, base, convention)
        motifs.append(Motif(name, pwm, source=source, meta={"constant": constant, "base": base}))
    return motifs
