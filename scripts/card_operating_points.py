#!/usr/bin/env python3
"""Add the operating point at the validation threshold to shipped models' cards.

Cards shipped before session 17 give LR+ and F1 at each split's own F1-optimal threshold, which on the
test split is an oracle (chosen on the data it scores). `genometracks ship` now scores every split at the
validation split's threshold (the card's peak threshold). This re-evaluates each shipped model's
validation split, test split and check region with its shipped weights, checks that the card's figures
come back (counts exactly; AUCs and the validation threshold to 1e-3: the same weights, with the
attention kernel's float32 rounding changed since some models shipped, which reorders near-tied
positions of a whole split: 5.5e-5 of PR AUC for ecoli_k12_cappable), and writes each
split's `at_threshold` into card.json and the regenerated card.md; nothing else in the card changes.

Usage: python3 scripts/card_operating_points.py [NAME ...]   (default: every shipped model; needs the
shared E. coli data; about a minute per small model, three for the paper model, on 2 cores)
"""

from __future__ import annotations

import json
import sys

from hydra import compose, initialize_config_dir

from genometracks.cli import _register_resolvers
from genometracks.data.dataset import load_dataset
from genometracks.inference import shipped as S
from genometracks.inference.ship import card_markdown
from genometracks.io.atomic import write_text_atomic
from genometracks.io.jsonsafe import json_safe
from genometracks.io.paths import conf_dir

AGREE = 1e-3
COUNTS = ("n_positions", "n_positives")
SAME = ("roc_auc", "pr_auc", "threshold_f1")
LARGEST: dict[str, float] = {}  # the largest difference seen per figure, printed at the end


def _evaluate(source: S.ModelSource, dataset, regions, n_streams: int, threshold: float, scored: str) -> dict:
    return S.evaluate_regions(
        source.model,
        source.logit_offset,
        dataset.genome,
        dataset.sites,
        dataset.shift,
        regions,
        source.seg_len,
        n_streams,
        threshold=threshold,
        scored=scored,
    )


def _check_same(name: str, what: str, card: dict, fresh: dict) -> None:
    for key in COUNTS + SAME:
        a, b = card.get(key), fresh.get(key)
        if a is None or b is None:
            raise SystemExit(f"{name}: {what} {key} is {b} now, {a} on the card; re-ship the model instead")
        gap = abs(float(a) - float(b)) / (max(abs(float(a)), 1e-12) if key == "threshold_f1" else 1.0)
        if (key in COUNTS and a != b) or gap > AGREE:
            raise SystemExit(f"{name}: {what} {key} is {b} now, {a} on the card; re-ship the model instead")
        LARGEST[key] = max(LARGEST.get(key, 0.0), gap)


def update_card(name: str) -> dict:
    """Re-evaluate model `name` and write its cards; returns the test split's new operating point."""
    source = S.load_shipped(name)
    card = source.card
    folder = S.model_folder(name)
    threshold = float(card["peaks"]["threshold"])
    metrics, check = card["metrics"], card["check"]
    _register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"data={card['task']['data']}"])
    dataset = load_dataset(cfg, label_set=metrics["labels"])
    n_streams = int(check.get("n_streams", 16))
    for split in ("validation", "test"):
        if split not in metrics:
            continue
        regions = dataset.splits[split]
        if [S.format_region(r) for r in regions] != metrics["regions"][split]:
            raise SystemExit(f"{name}: the {split} split is {regions} now, {metrics['regions'][split]} on the card")
        print(f"{name}: {split} split ...", file=sys.stderr, flush=True)
        fresh = _evaluate(source, dataset, regions, n_streams, threshold, str(metrics.get("scored", "outputs")))
        for part in ("both", "+", "-"):
            _check_same(name, f"{split} {part}", metrics[split][part], fresh[part])
            metrics[split][part]["at_threshold"] = fresh[part]["at_threshold"]
    fresh = _evaluate(source, dataset, [S.parse_region(check["region"])], n_streams, threshold, str(check.get("scored", "outputs")))["both"]
    _check_same(name, "check region", check["metrics"], fresh)
    check["metrics"]["at_threshold"] = fresh["at_threshold"]
    write_text_atomic(folder / S.CARD_JSON, json.dumps(json_safe(card), indent=2, allow_nan=False) + "\n")
    write_text_atomic(folder / S.CARD_MD, card_markdown(json_safe(card)))
    return metrics.get("test", {}).get("both", {}).get("at_threshold", {})


def main(names: list[str]) -> int:
    for name in names or S.available():
        point = update_card(name)
        print(json.dumps({"model": name, "test_at_validation_threshold": point}))
    print(json.dumps({"largest_difference_from_the_cards": LARGEST}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
