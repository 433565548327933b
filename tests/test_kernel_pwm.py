"""Exact kernel ↔ PWM transformation: conv output = constant + log_base P(window | PWM)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genometracks.interpret.kernel_pwm import collapse_tokenwise_conv, kernel_to_pwm, kernels_to_motifs, pwm_to_kernel
from genometracks.interpret.motifs import MotifError

BASES = [1.5, 2.0, np.e, 10.0]


def _log_prob(pwm: np.ndarray, tokens: np.ndarray, base: float) -> np.ndarray:
    """log_base P(window | pwm) for every full window of tokens [L] (windows read left to right)."""
    k = pwm.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(tokens, k)  # [L-K+1, K]
    return np.log(pwm[np.arange(k), windows]).sum(axis=1) / np.log(base)


def _one_hot(tokens: np.ndarray) -> np.ndarray:
    return np.eye(4)[tokens].T  # [4, L]


@pytest.mark.parametrize("base", BASES)
def test_torch_conv1d_equals_constant_plus_log_prob(base):
    rng = np.random.default_rng(0)
    k, pad = 7, 3
    weight, bias = rng.normal(0, 2, (4, k)), 0.7
    tokens = rng.integers(0, 4, 500)
    out = F.conv1d(
        torch.from_numpy(_one_hot(tokens))[None], torch.from_numpy(weight)[None], torch.tensor([bias], dtype=torch.float64), padding=pad
    )[0, 0].numpy()
    pwm, constant = kernel_to_pwm(weight, bias, base, convention="torch")
    np.testing.assert_allclose(pwm.sum(axis=1), 1.0, atol=1e-12)
    # output j reads positions j - pad .. j - pad + K - 1: full windows are j = pad .. L - K + pad
    full = out[pad : pad + tokens.size - k + 1]
    np.testing.assert_allclose(full, constant + _log_prob(pwm, tokens, base), atol=1e-5, rtol=0)


@pytest.mark.parametrize("base", BASES)
def test_true_convolution_needs_the_flip(base):
    rng = np.random.default_rng(1)
    k = 5
    weight, bias = rng.normal(0, 2, (4, k)), -1.2
    tokens = rng.integers(0, 4, 300)
    x = _one_hot(tokens)
    # np.convolve(valid)[i] = Σ_m x[i + K - 1 - m] w[m]: the window starting at i, kernel reversed
    out = bias + sum(np.convolve(x[a], weight[a], mode="valid") for a in range(4))
    pwm, constant = kernel_to_pwm(weight, bias, base, convention="convolution")
    np.testing.assert_allclose(out, constant + _log_prob(pwm, tokens, base), atol=1e-5, rtol=0)
    wrong, wrong_constant = kernel_to_pwm(weight, bias, base, convention="torch")
    assert np.abs(out - wrong_constant - _log_prob(wrong, tokens, base)).max() > 0.1
    np.testing.assert_allclose(pwm, wrong[::-1])


def test_pwm_by_hand():
    # one column with weights (ln 3, 0, 0, 0) in base e: exp → (3, 1, 1, 1) / 6
    weight = np.array([[np.log(3.0)], [0.0], [0.0], [0.0]])
    pwm, constant = kernel_to_pwm(weight, bias=1.0, base=np.e)
    np.testing.assert_allclose(pwm, [[0.5, 1 / 6, 1 / 6, 1 / 6]])
    assert constant == pytest.approx(1.0 + np.log(6.0))
    # base 2 with weights (1, 0, 0, 0): (2, 1, 1, 1) / 5, constant = log2 5
    pwm, constant = kernel_to_pwm(np.array([[1.0], [0], [0], [0]]), 0.0, base=2)
    np.testing.assert_allclose(pwm, [[0.4, 0.2, 0.2, 0.2]])
    assert constant == pytest.approx(np.log2(5))


@pytest.mark.parametrize("convention", ["torch", "convolution"])
@pytest.mark.parametrize("base", BASES)
def test_round_trips(base, convention):
    rng = np.random.default_rng(2)
    pwm = rng.dirichlet(np.ones(4), size=7)
    kernel, bias = pwm_to_kernel(pwm, base, constant=0.3, convention=convention)
    back, constant = kernel_to_pwm(kernel, bias, base, convention)
    np.testing.assert_allclose(back, pwm, atol=1e-12)
    assert constant == pytest.approx(0.3)  # kernel columns are log-probabilities: Z_m = 1
    weight, b = rng.normal(0, 1.5, (4, 7)), 0.4
    pwm2, constant2 = kernel_to_pwm(weight, b, base, convention)
    kernel2, bias2 = pwm_to_kernel(pwm2, base, constant=constant2, convention=convention)
    shift = kernel2 - weight  # differs only by one constant per column ...
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-12)
    assert bias2 + shift.sum(axis=1)[0] == pytest.approx(b)  # ... which the bias absorbs


def test_bad_inputs():
    with pytest.raises(MotifError, match="base must be > 1"):
        kernel_to_pwm(np.zeros((4, 3)), base=1.0)
    with pytest.raises(MotifError, match=r"\[4, K\]"):
        kernel_to_pwm(np.zeros((3, 4)))
    with pytest.raises(MotifError, match="pseudocount"):
        pwm_to_kernel(np.array([[1.0, 0, 0, 0]]))
    kernel, _ = pwm_to_kernel(np.array([[1.0, 0, 0, 0]]), base=2, pseudocount=1.0)
    np.testing.assert_allclose(kernel[:, 0], np.log2([0.4, 0.2, 0.2, 0.2]))


@pytest.mark.parametrize("groups", [1, 12])
def test_collapse_embedding_norm_projection_conv(groups):
    torch.manual_seed(0)
    d, k = 12, 7
    embed, norm = torch.nn.Embedding(5, d), torch.nn.LayerNorm(d)
    proj = torch.nn.Linear(d, d)
    conv = torch.nn.Conv1d(d, d, k, padding=k // 2, groups=groups)
    with torch.no_grad():
        for p in (*norm.parameters(), *conv.parameters()):
            p.add_(torch.randn_like(p) * 0.3)
        tokens = torch.randint(0, 4, (3, 64))
        out = conv(proj(norm(embed(tokens))).transpose(1, 2)).double().numpy()  # [B, C, L]
        features = proj(norm(embed(torch.arange(4)))).double().numpy()  # [4, C_in]
    kernels, biases = collapse_tokenwise_conv(
        features, conv.weight.detach().double().numpy(), conv.bias.detach().double().numpy(), groups=groups
    )
    assert kernels.shape == (d, 4, k)
    onehot = torch.from_numpy(np.eye(4)[tokens.numpy()]).transpose(1, 2)  # [B, 4, L]
    rebuilt = F.conv1d(onehot, torch.from_numpy(kernels), torch.from_numpy(biases), padding=k // 2).numpy()
    inner = slice(k // 2, 64 - k // 2)  # positions whose window holds no padding
    np.testing.assert_allclose(rebuilt[..., inner], out[..., inner], atol=1e-5, rtol=0)
    motifs = kernels_to_motifs(kernels, biases, base=2.0)
    window = tokens[0, :k].numpy()  # output index k//2 reads tokens 0..k-1
    logp = np.log2(motifs[5].probabilities[np.arange(k), window]).sum()
    assert motifs[5].meta["constant"] + logp == pytest.approx(out[0, 5, k // 2], abs=1e-5)
