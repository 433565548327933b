"""The package's layers, read from the source with `ast` (nothing is imported).

A layer imports only from itself and from the layers before it in LAYERS. Modules and packages
import each other in no cycle, and the package's own imports sit at module top (the CLI's command
table imports its targets by name through importlib, which is the one lazy place).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "genometracks"

# Lowest first. Each entry is a package (or a top-level module) of genometracks.
LAYERS = (
    "io",  # atomic writes, kill points, RunDir, paths, the run directory's remembered config
    "genome",  # FASTA, tokens, reverse complement, circular contigs, intervals
    "formats",  # bigWig, bigBed (BED N+M), 2bit
    "labels",  # TSS readers, the E. coli catalogue, liftover, curation, synthetic genomes
    "data",  # splits, SegmentStreams, the LightningDataModule, the data commands
    "model",  # the Transformer-XL (a leaf: imports nothing of the package)
    "training",  # LightningModule, train, checkpoints, metrics
    "inference",  # whole-genome prediction, peaks
    "interpret",  # heads, motifs, kernel PWMs, optimisation, attributions, metaplots, logos
    "sigma",  # the sigma-class CNN family
    "browser",  # UCSC hubs, GenArk, validation, IGV, serve, snapshot, the export command
    "report",  # report, peer comparison, plots
    "pipeline",  # `genometracks run` and the stage runners
    "collection",  # many genomes: manifest, one Hydra job per genome, summary, the collection's hub
    "bench",  # `genometracks bench`
    "cli",  # the command table
)
# Modules being rewritten elsewhere keep their function-level imports for now.
LAZY_IMPORTS_ALLOWED = {"genometracks.bench"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path) -> list[tuple[str, bool, int]]:
    """(imported genometracks module, at module top?, line) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            if target == "genometracks" or target.startswith("genometracks."):
                found.append((target, node in tree.body, node.lineno))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for target, _, _ in _imports(name, path):
            # `from genometracks.x import y` names module x.y when y is a module, else module x
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                graph[name].add(target)
        graph.setdefault(name, set())
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "genometracks"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}
    for start in sorted(graph):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child) :] + [child]
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
    return None


def test_every_package_and_top_level_module_has_a_layer():
    layers = {_layer(m) for m in _modules()} - {"genometracks"}
    assert layers <= set(LAYERS), f"not in LAYERS: {sorted(layers - set(LAYERS))}; add them in order"


def test_no_cycle_between_modules():
    assert _cycle(_graph()) is None, f"import cycle: {' -> '.join(_cycle(_graph()))}"


def test_no_cycle_between_packages():
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in _graph().items():
        for target in targets:
            if _layer(target) != _layer(module):
                packages[_layer(module)].add(_layer(target))
    assert _cycle(packages) is None, f"package cycle: {' -> '.join(_cycle(packages))}"


def test_layers_import_only_from_layers_below():
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in sorted(targets)
        if _layer(module) in rank and rank[_layer(target)] > rank[_layer(module)]
    ]
    assert wrong == []


def test_the_model_is_a_leaf():
    assert all(_layer(t) == "model" for m, ts in _graph().items() if _layer(m) == "model" for t in ts)


def test_package_imports_sit_at_module_top():
    lazy = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
        for name, path in _modules().items()
        if name not in LAZY_IMPORTS_ALLOWED
        for target, at_top, line in _imports(name, path)
        if not at_top
    ]
    assert lazy == []


def test_the_graph_reader_sees_the_known_edges():
    graph = _graph()
    assert "genometracks.io.atomic" in graph["genometracks.formats.bigwig"]
    assert "genometracks.model.attention" in graph["genometracks.model.transformer"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
