"""A curated TSS set from several experimental sets, and the overlap report between sets.

Rules (the TSS paper's): a TSS enters if at least `min_support` distinct sets report it within
`window` nt (same contig and strand); its position is the one reported by most sets, ties going to
the set that comes first in `priority` (newest technique first). Optionally every TSS of one set
is added. Records are grouped by single linkage; a chain of nearby records is peeled round by
round (see `_peel`) so that it can yield several TSSs.
Positions are 0-based forward coordinates of +1. Everything is vectorised (sort + searchsorted).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from genometracks.genome.intervals import SiteSet
from genometracks.io.atomic import write_text_atomic
from genometracks.io.figures import new_figure, save_figure

_STRIDE = np.int64(1) << np.int64(40)  # separates (contig, strand) groups on one number line


class CurationError(ValueError):
    """Bad curation input; the message names the set and the fix."""


def _check(sets: dict[str, SiteSet]) -> None:
    if not sets:
        raise CurationError("no TSS sets given; pass a dict name → SiteSet")
    for name, sites in sets.items():
        if len(sites) == 0:
            raise CurationError(f"TSS set {name!r} is empty; drop it or fix its file/filters")


def _coords(sets: dict[str, SiteSet]) -> list[np.ndarray]:
    """Per set, int64 [n]: group_index * 2**40 + pos, group = (contig, strand) shared across sets."""
    keys = [s.chrom.astype(str).astype(object) + s.strand.astype(object) for s in sets.values()]
    _, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    bounds = np.cumsum([0] + [len(k) for k in keys])
    return [inverse[a:b].astype(np.int64) * _STRIDE + s.pos for a, b, s in zip(bounds[:-1], bounds[1:], sets.values())]


def origin_cuts(sets: dict[str, SiteSet], circular: Mapping[str, int]) -> dict[str, int]:
    """Per circular contig (name -> length), where to cut its circle for clustering: the first record
    after the widest gap between neighbouring records of all sets (the gap over the origin included),
    so that no cluster of records within a window spans the cut."""
    cuts = {}
    for contig, length in circular.items():
        pos = np.unique(np.concatenate([s.pos[s.chrom == contig] for s in sets.values()]))
        if pos.size:
            gaps = np.r_[np.diff(pos), pos[0] + length - pos[-1]]
            cuts[contig] = int(pos[(int(np.argmax(gaps)) + 1) % pos.size])
    return cuts


def _rotated(sets: dict[str, SiteSet], cuts: Mapping[str, int], lengths: Mapping[str, int], sign: int) -> dict[str, SiteSet]:
    """Copies of `sets` with each cut contig's positions moved by -cut (sign -1) or +cut (sign +1), modulo its length."""
    out = {}
    for name, sites in sets.items():
        pos = sites.pos.copy()
        for contig, cut in cuts.items():
            on = sites.chrom == contig
            pos[on] = np.mod(pos[on] + sign * cut, lengths[contig])
        out[name] = SiteSet(sites.chrom, pos, sites.strand, sites.score, sites.name, source=sites.source)
    return out


def curate(
    sets: dict[str, SiteSet],
    priority: list[str],
    window: int = 5,
    min_support: int = 2,
    add_all_of: str | None = None,
    circular: Mapping[str, int] | None = None,
) -> SiteSet:
    """Curated TSSs supported by >= `min_support` of `sets` within `window` nt (see module doc).
    `circular` (contig -> length): records on either side of these contigs' origin are neighbours.

    score = support (number of sets); name = supporting sets (priority order, comma-joined);
    meta['support'] int [n]; meta['added'] = TSSs added from `add_all_of` (no curated TSS within window).
    """
    _check(sets)
    if circular:  # cluster on a line cut where the records are farthest apart, then put the positions back
        cuts = origin_cuts(sets, circular)
        result = curate(_rotated(sets, cuts, circular, -1), priority, window, min_support, add_all_of)
        back = _rotated({"curated": result}, cuts, circular, +1)["curated"]
        back.score, back.meta = result.score, result.meta
        out = back.sorted()
        out.meta = dict(result.meta, support=out.score.astype(np.int64))
        return out
    unknown = [n for n in sets if n not in priority]
    if unknown:
        raise CurationError(f"sets {unknown} are not in the priority list {priority}; add them to it")
    if add_all_of is not None and add_all_of not in sets:
        raise CurationError(f"add_all_of={add_all_of!r} is not one of the sets {list(sets)}")
    names = list(sets)
    if len(names) > 62:
        raise CurationError(f"{len(names)} sets given; curate at most 62 at once")
    coords = _coords(sets)
    coord = np.concatenate(coords)
    set_id = np.concatenate([np.full(len(c), i) for i, c in enumerate(coords)])
    rank = np.array([priority.index(n) for n in names])[set_id]
    chrom = np.concatenate([s.chrom for s in sets.values()])
    strand = np.concatenate([s.strand for s in sets.values()])
    order = np.lexsort((rank, coord))
    coord, set_id, rank, chrom, strand = coord[order], set_id[order], rank[order], chrom[order], strand[order]
    # the same set at the same position counts once; rows stay sorted by (coord, rank)
    keep = np.r_[True, (coord[1:] != coord[:-1]) | (set_id[1:] != set_id[:-1])]
    coord, set_id, rank, chrom, strand = coord[keep], set_id[keep], rank[keep], chrom[keep], strand[keep]
    winner, support, members, n_clusters = _peel(coord, set_id, rank, window)
    ok = support >= min_support
    chosen, sup, members = winner[ok], support[ok], members[ok]
    by_rank = sorted(range(len(names)), key=lambda i: priority.index(names[i]))
    combos, which = np.unique(members, return_inverse=True)
    label = np.array([",".join(names[i] for i in by_rank if m >> i & 1) for m in combos], dtype=object)
    out_chrom, out_pos, out_strand = chrom[chosen], coord[chosen] % _STRIDE, strand[chosen]
    out_name = label[which] if len(chosen) else np.array([], dtype=object)
    added = 0
    if add_all_of is not None:
        extra = sets[add_all_of]
        extra_coord = coords[names.index(add_all_of)]
        near = _nearest(np.sort(coord[chosen]), extra_coord)
        new = np.flatnonzero(np.abs(near) > window)
        added = len(new)
        out_chrom = np.concatenate([out_chrom, extra.chrom[new]])
        out_pos = np.concatenate([out_pos, extra.pos[new]])
        out_strand = np.concatenate([out_strand, extra.strand[new]])
        sup = np.concatenate([sup, np.ones(added, dtype=sup.dtype)])
        out_name = np.concatenate([out_name, np.full(added, add_all_of, dtype=object)])
    result = SiteSet(out_chrom, out_pos, out_strand, sup.astype(float), out_name, source="curated")
    result = result.sorted()
    result.meta.update(
        support=result.score.astype(np.int64),
        added=added,
        window=window,
        min_support=min_support,
        priority=list(priority),
        clusters=n_clusters,
        sizes={n: len(s) for n, s in sets.items()},
    )
    return result


def _peel(coord: np.ndarray, set_id: np.ndarray, rank: np.ndarray, window: int):
    """Cluster sorted records (coord, set_id, rank: [n], sorted by coord then rank) and pick TSSs.

    Each round: single-linkage clusters (gap <= window); per cluster the winner is the position
    reported by most sets, ties to the best priority rank, then the lower coordinate; its support is
    the number of distinct sets with a record within `window` of it. Those records are consumed and
    the rest re-clustered, so a chain of nearby TSSs yields several TSSs, not one.
    Returns (winner row indices [k], support [k], set bitmask [k], number of first-round clusters).
    """
    alive = np.arange(len(coord))
    winners, supports, masks, first_round = [], [], [], 0
    while alive.size:
        c, sid, rk = coord[alive], set_id[alive], rank[alive]
        cluster = np.r_[0, np.cumsum(np.diff(c) > window)]
        first_round = first_round or int(cluster[-1]) + 1
        pos_start = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
        votes = np.diff(np.r_[pos_start, len(c)])
        c_of = cluster[pos_start]
        pick = np.lexsort((c[pos_start], rk[pos_start], -votes, c_of))  # rank: rows sorted by it per position
        win = pos_start[pick][np.r_[True, c_of[pick][1:] != c_of[pick][:-1]]]  # one row per cluster
        near = np.abs(c - c[win][cluster]) <= window
        mask = np.zeros(len(win), dtype=np.int64)  # bit i set = set i has a record within window
        np.bitwise_or.at(mask, cluster[near], np.int64(1) << sid[near].astype(np.int64))
        winners.append(alive[win])
        supports.append(np.bitwise_count(mask).astype(np.int64))
        masks.append(mask)
        alive = alive[~near]
    return (np.concatenate(winners), np.concatenate(supports), np.concatenate(masks), first_round)


def _nearest(sorted_b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """For coords `a` [n], signed distance (b - a) to the nearest of `sorted_b` (2**62 if none)."""
    if sorted_b.size == 0:
        return np.full(len(a), np.int64(1) << np.int64(62))
    idx = np.searchsorted(sorted_b, a)
    left = sorted_b[np.clip(idx - 1, 0, len(sorted_b) - 1)] - a
    right = sorted_b[np.clip(idx, 0, len(sorted_b) - 1)] - a
    left = np.where(idx > 0, left, -(np.int64(1) << np.int64(62)))
    right = np.where(idx < len(sorted_b), right, np.int64(1) << np.int64(62))
    return np.where(-left <= right, left, right)


def overlap_report(sets: dict[str, SiteSet], window: int = 5) -> tuple[pd.DataFrame, dict]:
    """Pairwise overlap (Figure 2 of the TSS paper).

    table: one row per ordered pair (set_a, set_b): n_a, n_b, shared = records of a with a record
    of b within `window` nt (same contig and strand), fraction = shared / n_a.
    shifts: {(a, b): int64 [2*window+1]} for pairs in input order (a before b): how many shared
    records of a have their nearest b at shift -window..window (b - a, + = downstream on the strand).
    """
    _check(sets)
    names, coords = list(sets), _coords(sets)
    sign = {n: np.where(s.strand == "+", 1, -1) for n, s in sets.items()}
    rows, shifts = [], {}
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            d = _nearest(np.sort(coords[j]), coords[i])
            hit = np.abs(d) <= window
            rows.append(
                {"set_a": a, "set_b": b, "n_a": len(sets[a]), "n_b": len(sets[b]), "shared": int(hit.sum()), "fraction": float(hit.mean())}
            )
            if i < j:
                shift = (d * sign[a])[hit]
                shifts[(a, b)] = np.bincount(shift + window, minlength=2 * window + 1).astype(np.int64)
    return pd.DataFrame(rows), shifts


def write_overlap_report(sets: dict[str, SiteSet], out_dir: str | Path, window: int = 5) -> dict[str, Path]:
    """Write overlap.tsv, shifts.tsv (set_a, set_b, shift, count) and overlap.png into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table, shifts = overlap_report(sets, window)
    long = pd.DataFrame(
        [{"set_a": a, "set_b": b, "shift": s - window, "count": int(c)} for (a, b), counts in shifts.items() for s, c in enumerate(counts)],
        columns=["set_a", "set_b", "shift", "count"],
    )
    paths = {"overlap": out / "overlap.tsv", "shifts": out / "shifts.tsv", "png": out / "overlap.png"}
    write_text_atomic(paths["overlap"], table.to_csv(sep="\t", index=False))
    write_text_atomic(paths["shifts"], long.to_csv(sep="\t", index=False))

    names = list(sets)
    counts = table.pivot(index="set_a", columns="set_b", values="shared").loc[names, names].to_numpy()
    fraction = table.pivot(index="set_a", columns="set_b", values="fraction").loc[names, names].to_numpy()
    ncols = max(2, int(np.ceil(np.sqrt(len(shifts) + 1))))
    nrows = int(np.ceil((len(shifts) + 1) / ncols))
    fig = new_figure(3.2 * ncols, 3.0 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    ax = axes.flat[0]
    ax.imshow(fraction, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for (r, c), v in np.ndenumerate(counts):
        ax.text(c, r, str(v), ha="center", va="center", fontsize=6, color="k" if fraction[r, c] > 0.6 else "w")
    ax.set_title(f"row-set TSSs within {window} nt of column set\n(count; colour = fraction)", fontsize=7)
    for ax, ((a, b), hist) in zip(list(axes.flat)[1:], shifts.items()):
        ax.bar(np.arange(-window, window + 1), hist, color="tab:blue")
        ax.set_xticks(np.arange(-window, window + 1, max(1, window // 5)))
        ax.tick_params(labelsize=6)
        ax.set_title(f"{b} − {a} (nt, + = downstream)", fontsize=7)
    for ax in list(axes.flat)[1 + len(shifts) :]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, paths["png"], dpi=120, tight=False)
    return paths
