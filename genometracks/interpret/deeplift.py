"""DeepLIFT/SHAP contributions of predicted TSSs (tangermeme's `deep_lift_shap`).

Windows are those of `attribution.py`: target TSS +1 at forward position p on strand s, output at
strand-local index i = local(p) + shift, window = strand-local tokens [i - context, i + lookahead]
(exactly what that output reads), column j = strand-local position first_local + j; a minus-strand
window is read on the reverse-complement stream. Coordinates are 0-based.

The model as tangermeme sees it (`TargetLogit`): one-hot X [B, 4, S] (A, C, G, T) → the logit of
window column `context` [B, 1], computed by the model's own weights with nothing upstream. Rules
(all exact, so contributions are complete): each block's attention is `AttentionStep`, the textbook
path written as linear maps, two `BilinearOp`s (the products (q + u)·k and probabilities x values)
and an `nn.Softmax` (`softmax_rule`, an exact rule stable for sharp attention); LayerNorm by
tangermeme's LayerNorm rule; ReLU (feed-forward, if any) by the rescale rule; the embedding
(one-hot @ weights), residual sums and the head are linear. (A per-layer integrated-gradients rule
for the whole attention, `integrated_gradients_op`, was tried first: on the shipped E. coli model
its completeness error stayed above the output difference even with 64 nodes, attention being too
sharp along the straight path; tangermeme's own softmax rule shares one stabiliser between example
and reference and breaks there too, see `softmax_rule`.)

Why tangermeme and not captum: captum's DeepLift has no rule for LayerNorm or for products of two
activations (it propagates plain gradients through them, so contributions do not sum to the output
difference); tangermeme has exact rules for LayerNorm, softmax and bilinear products, and computes
hypothetical contributions (what every letter would contribute) for TF-MoDISco.

Completeness (tested): for each target, sum over columns of the contribution of the observed base
= logit(X) - mean_r logit(reference_r), up to the quadrature error of the attention rule.
References: `n_shuffles` dinucleotide shuffles of each window (tangermeme.ersatz), seeded.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from tangermeme.deep_lift_shap import BilinearOp, deep_lift_shap
from tangermeme.ersatz import dinucleotide_shuffle
from torch import Tensor, nn

from genometracks.genome.intervals import SiteSet
from genometracks.genome.sequence import N_TOKEN, Genome
from genometracks.interpret.attribution import AttributionError, Attributions, genome_track, target_windows
from genometracks.model.relative import sinusoid_encoding


def _secant_exp(a: Tensor, b: Tensor) -> Tensor:
    """(e^a - e^b) / (a - b), elementwise and stable (e^a where a = b); a, b <= 0 here, so no overflow."""
    gap = (a - b).abs()
    ratio = torch.where(gap > 1e-6, -torch.expm1(-gap) / gap.clamp_min(1e-6), 1.0 - gap / 2)
    return torch.exp(torch.maximum(a, b)) * ratio


def softmax_rule(module, grad_input, grad_output):
    """Exact DeepLIFT multipliers of y = softmax(x) along module.dim, stable for peaked rows.

    y_j = exp(z_j), z_j = x_j - L, L = logsumexp(x). With M = max(L, L_ref) and S(a, b) the secant
    of exp: Δy_j = S(z_j, z_ref_j) Δz_j, and ΔL = sum_i m_i Δx_i with
    m_i = S(x_i - M, x_ref_i - M) / S(L - M, L_ref - M) (exact: sum_i Δe^(x_i - M) = Δe^(L - M)).
    Chained: grad_in_i = g_i S_i - m_i sum_j g_j S_j, for the example (g) and the reference half.
    tangermeme's own softmax rule shares one stabiliser between example and reference; where
    their row maxima differ by more than ~90 (sharp attention of a trained model) one side's
    exponentials underflow and completeness breaks (measured on the shipped E. coli model)."""
    dim = module.dim if module.dim >= 0 else module.input.ndim + module.dim
    dtype = torch.promote_types(module.input.dtype, torch.float32)
    x, x_ref = module.input.to(dtype).chunk(2, dim=0)
    g, g_ref = grad_output[0].to(dtype).chunk(2, dim=0)
    lse, lse_ref = torch.logsumexp(x, dim, keepdim=True), torch.logsumexp(x_ref, dim, keepdim=True)
    top = torch.maximum(lse, lse_ref)
    m = _secant_exp(x - top, x_ref - top) / _secant_exp(lse - top, lse_ref - top)
    step = _secant_exp(x - lse, x_ref - lse_ref)
    grads = [h * step - m * (h * step).sum(dim, keepdim=True) for h in (g, g_ref)]
    return (torch.cat(grads, dim=0),)


class AttentionStep(nn.Module):
    """One block's attention with nothing upstream, written with modules tangermeme has exact rules
    for, for the queries the target logit reads only: h [B, S, d_model] (S consecutive columns) →
    output [B, S - (W - 1) - 2c, d_model] (c = conv_width // 2, W = window) for the queries at
    columns W - 1 + c .. S - c - 1 of h. Those are the columns the next block (or the head) reads:
    its queries at W - 1 + c onwards read keys from column c on, and the key and query convolutions
    c more; so the last block computes one query, not the window's S (`TargetLogit`; the paper
    model's 6 blocks thus score about a third of the pairs the whole window would).
    q, k, v (projection + convolutions) and the positional term are linear in h (the term of query i
    and key j taken from query i's terms at distances 0..W-1); (q + u)·k and probabilities x values
    are `BilinearOp`s (DeepLIFT's exact split of a product); the softmax is an `nn.Softmax` (rule:
    `softmax_rule`). Keys outside a query's window get a score of -1e4 (exp underflows to 0, as -inf
    does, and the rules see no infinite difference). Values: the textbook path of `RelativeAttention`."""

    def __init__(self, model, index: int) -> None:
        super().__init__()
        self.model, self.index = [model], index  # a list: the model is not a submodule (no double hooks)
        self.content = BilinearOp("bhid,bhjd->bhij")
        self.attend = BilinearOp("bhij,bhjd->bhid")
        self.softmax = nn.Softmax(dim=-1)

    @property
    def first_query(self) -> int:
        """Column of h of the first query kept: W - 1 + c."""
        attn = self.model[0].blocks[self.index].attn
        return attn.window - 1 + attn.half_width

    def forward(self, h: Tensor) -> Tensor:
        attn = self.model[0].blocks[self.index].attn
        batch, c, window, first = h.shape[0], attn.half_width, attn.window, self.first_query
        p_memory = h.new_zeros(batch, 3 * attn.n_head * attn.d_head, c)
        q, k, v, _ = attn.project(h, p_memory, torch.zeros(batch, c, dtype=torch.bool, device=h.device))
        q = q[:, :, first:]  # [B, H, nq, D]; keys and values: every column [B, H, nk, D]
        n_q, n_k = q.shape[2], k.shape[2]
        r = attn.r_net(sinusoid_encoding(torch.arange(window, device=h.device), attn.d_model).to(h.dtype))
        by_distance = torch.einsum("bhid,rhd->bhir", q + attn.v[:, None], r.view(window, attn.n_head, attn.d_head))
        distance = first + torch.arange(n_q, device=h.device)[:, None] - torch.arange(n_k, device=h.device)[None, :]
        allowed = (distance >= 0) & (distance < window)  # [nq, nk]
        position = by_distance.gather(-1, distance.clamp(0, window - 1).expand(batch, attn.n_head, n_q, n_k))
        scores = (self.content(q + attn.u[:, None], k) + position) / math.sqrt(attn.d_head)
        probs = self.softmax(scores.masked_fill(~allowed, -1e4))
        attended = self.attend(probs, v)
        return attn.out(attended.transpose(1, 2).reshape(batch, n_q, -1))


class TargetLogit(nn.Module):
    """X [B, 4, S] one-hot → logit [B, 1] of window column model.context (see the module docstring);
    equals `onehot_logits(model, X^T)[:, context]` (tested). Each block keeps the columns the next
    one reads (`AttentionStep`): S = context + lookahead + 1 narrows by W - 1 + 2c per block to 1."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.steps = nn.ModuleList(AttentionStep(model, i) for i in range(model.n_layer))

    def forward(self, x: Tensor) -> Tensor:
        m = self.model
        if x.shape[-1] != m.context + m.lookahead + 1:
            raise AttributionError(f"DeepLIFT/SHAP windows must hold context + lookahead + 1 = {m.context + m.lookahead + 1} columns")
        h = x.transpose(1, 2).to(m.embed.weight.dtype) @ m.embed.weight[:4]
        for block, step in zip(m.blocks, self.steps):
            first = step.first_query
            if block.norm == "pre":
                out = step(block.norm1(h))
                h = h[:, first : first + out.shape[1]] + out
                if block.ff is not None:
                    h = h + block.ff(block.norm2(h))
            else:
                out = step(h)
                h = block.norm1(h[:, first : first + out.shape[1]] + out)
                if block.ff is not None:
                    h = block.norm2(h + block.ff(h))
        if m.final_norm is not None:
            h = m.final_norm(h)
        return m.head(h[:, 0])[:, :1]  # the primary output


@dataclass
class DeepLiftResult:
    """hypothetical float32 [n, S, 4] (A, C, G, T: what each letter would contribute at each window
    column), attributions: the contributions of the observed bases (Attributions, contribution [n, S]),
    output float64 [n] (logit), reference_mean float64 [n] (mean logit of the references),
    delta float64 [n]: |sum of contributions - (output - reference_mean)| (completeness error)."""

    hypothetical: np.ndarray
    attributions: Attributions
    output: np.ndarray
    reference_mean: np.ndarray
    delta: np.ndarray
    skipped_n: int

    def onehot(self) -> np.ndarray:
        """float32 [n, S, 4] one-hot of the window bases."""
        return np.eye(5, dtype=np.float32)[self.attributions.tokens][..., :4]


def clean_targets(model, genome: Genome, ranked: SiteSet, shift: int, n_top: int) -> SiteSet:
    """The first n_top sites of `ranked` (best first) whose DeepLIFT/SHAP windows lie inside their
    contigs and hold no N (deeplift_shap skips the others), so that N runs near the best predictions
    do not leave a run with fewer targets, or none. Windows are read a block of sites at a time."""
    chosen: list[SiteSet] = []
    found, block = 0, max(4 * n_top, 64)
    for start in range(0, len(ranked), block):
        if found >= n_top:
            break
        kept, tokens, _, _ = target_windows(model, genome, ranked.subset(np.arange(start, min(start + block, len(ranked)))), shift)
        clean = kept.subset(~(tokens == N_TOKEN).any(axis=1))
        chosen.append(clean)
        found += len(clean)
    if not chosen:
        return ranked.subset(np.zeros(0, dtype=np.int64))
    return SiteSet.concat(chosen, ranked.source).subset(np.arange(min(found, n_top)))


def deeplift_shap(
    model, genome: Genome, sites: SiteSet, shift: int, n_shuffles: int = 10, batch_size: int = 32, seed: int = 0, progress: bool = True
) -> DeepLiftResult:
    """DeepLIFT/SHAP of each target's logit (see the module docstring). Windows with an N are skipped
    (counted in skipped_n), as are those leaving a linear contig (attributions.skipped)."""
    if n_shuffles < 1:
        raise AttributionError(f"interpret.deeplift_shuffles={n_shuffles} must be >= 1")
    kept, tokens, first, skipped = target_windows(model, genome, sites, shift)
    clean = ~(tokens == N_TOKEN).any(axis=1)
    kept, tokens, first = kept.subset(clean), tokens[clean], first[clean]
    if len(tokens) == 0:
        raise AttributionError(
            "DeepLIFT/SHAP: no target window without N bases inside the contigs; "
            "predict more TSSs or lower interpret.attribution_top's constraints"
        )
    x = torch.from_numpy(np.eye(4, dtype=np.float32)[tokens]).transpose(1, 2).contiguous()  # [n, 4, S]
    wrapper = TargetLogit(model)
    dtype = model.embed.weight.dtype
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        with warnings.catch_warnings():  # completeness is measured below, not warned per batch
            warnings.filterwarnings("ignore", message="Convergence deltas", category=RuntimeWarning)
            result = deep_lift_shap(
                wrapper,
                x.to(dtype),
                target=0,
                batch_size=batch_size,
                references=dinucleotide_shuffle,
                n_shuffles=n_shuffles,
                hypothetical=True,
                additional_nonlinear_ops={nn.Softmax: softmax_rule},
                return_references=True,
                device="cpu",
                random_state=seed,
                verbose=progress,
            )
        hypothetical, references = result.attributions, result.references  # [n, 4, S], [n, r, 4, S]
        with torch.no_grad():
            output = torch.cat([wrapper(x[lo : lo + batch_size].to(dtype)) for lo in range(0, len(x), batch_size)])
            flat = references.reshape(-1, *x.shape[1:]).to(dtype)
            ref_out = torch.cat([wrapper(flat[lo : lo + batch_size]) for lo in range(0, len(flat), batch_size)])
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.eval()
    hyp = hypothetical.transpose(1, 2).double().numpy()  # [n, S, 4]
    onehot = np.eye(4)[tokens]
    contribution = (hyp * onehot).sum(axis=2)
    output_np = output[:, 0].double().numpy()
    ref_mean = ref_out[:, 0].double().numpy().reshape(len(x), -1).mean(axis=1)
    delta = np.abs(contribution.sum(axis=1) - (output_np - ref_mean))
    att = Attributions(kept, contribution.astype(np.float32), tokens, first, model.context, int(shift), skipped)
    return DeepLiftResult(hyp.astype(np.float32), att, output_np, ref_mean, delta, int((~clean).sum()))


def strand_tracks(genome: Genome, attributions: Attributions) -> dict[str, dict[str, np.ndarray]]:
    """{'+': track, '-': track}, each {contig: float32 [n]} in forward coordinates (0-based): the '+'
    track at base i sums the contributions of base i read on the forward stream by plus-strand
    targets; the '-' track at base i those of base i read on the reverse-complement stream (the
    complement of the forward base) by minus-strand targets. 0 where no target window reads."""
    out = {}
    for strand in "+-":
        rows = np.flatnonzero(attributions.sites.strand == strand)
        out[strand] = genome_track(genome, attributions.subset(rows), attributions.contribution[rows])
    return out
