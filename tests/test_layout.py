"""The package's layout: library modules never import the command-line code, no layer
imports one above it, and the command-line parser is built from light modules only (the
README's developer section lists the layers)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import sarcnet_sklearn

PACKAGE = Path(sarcnet_sklearn.__file__).parent

LAYERS = [
    {"_columns", "_backbones", "_recipe", "_model_formats", "_table1", "_validation", "_chunks",
     "_batches", "_console", "_epoch_table", "_pages", "_score_map", "_fingerprint", "metrics",
     "soundness", "agreement", "hand_scores", "_resample", "_pixel_size", "outputs", "images",
     "nn", "_doors", "_reasons"},
    {"features", "regressor", "intervals"},
    {"datasets", "pipeline", "score_table"},
    {"tables"},
    {"deploy", "scale", "explain", "screens"},
    {"fields", "tuning"},
    {"reproduce", "demo", "napari"},
    {"commands", "__main__"},
]
"""Bottom to top: a module may import from its own layer and the layers below it."""

LAYER = {unit: level for level, units in enumerate(LAYERS) for unit in units}

PARSER_UNITS = {"__init__", "_columns", "_backbones", "_recipe", "_model_formats", "_table1",
                "commands"}
"""What building the ``sarcnet-sklearn`` parser imports: at their top these import only the
standard library and each other; a command imports the rest of the package (and torch,
pandas...) inside its run function. ``tests/test_cli.py`` checks the outcome in a fresh Python."""


def module_name(path: Path, package: Path = PACKAGE) -> str:
    return ".".join(path.relative_to(package.parent).with_suffix("").parts)


def unit_of(module: str) -> str:
    """The top-level module or subpackage of the package that ``module`` belongs to."""
    return module.split(".")[1] if "." in module else ""


def import_targets(node: ast.AST, path: Path, package: Path = PACKAGE) -> set[str]:
    """The absolute names of the modules an import statement in ``path`` imports."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if not isinstance(node, ast.ImportFrom):
        return set()
    parts = path.relative_to(package.parent).with_suffix("").parts
    here = parts[:-1]  # the package holding ``path`` (``__init__`` included)
    root = package.name
    if node.level:
        base = ".".join(here[: len(here) - node.level + 1])
        module = f"{base}.{node.module}" if node.module else base
    else:
        module = node.module or ""
    if module == root:  # ``from .. import x``: x may be a submodule, else it is in __init__
        submodules = {f"{root}.{alias.name}" for alias in node.names
                      if (package / alias.name).is_dir()
                      or (package / f"{alias.name}.py").is_file()}
        return submodules or {f"{root}.__init__"}
    return {module}


def imported_modules(path: Path, package: Path = PACKAGE) -> set[str]:
    """Every module of ``package`` that ``path`` imports, at the top or inside a function."""
    return {
        module
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        for module in import_targets(node, path, package)
        if module.split(".")[0] == package.name and module != f"{package.name}.__init__"
    }


def top_level_imports(path: Path, package: Path = PACKAGE) -> set[str]:
    """Every module ``path`` imports when it is imported: its module-level import statements,
    not those inside a function or an ``if TYPE_CHECKING:`` block."""
    return {module for node in ast.parse(path.read_text(encoding="utf-8")).body
            for module in import_targets(node, path, package)}


def heavy_parser_imports(package: Path = PACKAGE) -> list[str]:
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if unit_of(module_name(path, package)) not in PARSER_UNITS:
            continue
        for target in sorted(top_level_imports(path, package)):
            top = target.split(".")[0]
            light = (unit_of(target) in PARSER_UNITS if top == package.name
                     else top in sys.stdlib_module_names)
            if not light:
                offenders.append(f"{module_name(path, package)} imports {target} at its top")
    return offenders


def upward_imports(package: Path = PACKAGE) -> list[str]:
    offenders = []
    for path in sorted(package.rglob("*.py")):
        source = unit_of(module_name(path, package))
        if source in {"", "__init__"}:  # the package's __init__ imports lazily, on first use
            continue
        for target in sorted(imported_modules(path, package)):
            if unit_of(target) and LAYER[unit_of(target)] > LAYER[source]:
                offenders.append(f"{module_name(path, package)} (layer {LAYER[source]}) "
                                 f"imports {target} (layer {LAYER[unit_of(target)]})")
    return offenders


def unit_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Which other units (top-level modules and subpackages) each unit imports, anywhere."""
    graph: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        source = unit_of(module_name(path, package))
        if source in {"", "__init__"}:
            continue
        targets = {unit_of(target) for target in imported_modules(path, package)}
        graph.setdefault(source, set()).update(targets - {source, "", "__init__"})
    return graph


def import_cycles(package: Path = PACKAGE) -> list[list[str]]:
    """The import cycles between units: each a list ``[a, b, ..., a]`` (one per cycle's
    smallest unit, found by a depth-first search)."""
    graph = unit_graph(package)
    cycles = []
    for start in sorted(graph):
        stack = [(start, [start])]
        seen = set()
        while stack:
            unit, path = stack.pop()
            for target in sorted(graph.get(unit, ())):
                if target == start:
                    if min(path) == start:
                        cycles.append([*path, start])
                elif target not in seen and target > start:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    return cycles


def test_every_module_has_a_layer():
    units = {unit_of(module_name(path)) for path in PACKAGE.rglob("*.py")} - {"__init__"}
    assert units - set(LAYER) == set(), "place new modules in LAYERS and in the README"


def test_library_modules_never_import_the_command_line_code():
    offenders = [
        f"{module_name(path)} imports {target}"
        for path in PACKAGE.rglob("*.py")
        if unit_of(module_name(path)) not in {"commands", "__main__"}
        for target in imported_modules(path) if unit_of(target) == "commands"
    ]
    assert offenders == []


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports() == []


def test_no_import_cycle_between_units():
    assert import_cycles() == []


def test_the_cycle_check_finds_a_cycle_within_one_layer(tmp_path):
    """The check itself, on a copy of the package given the cycle ``deploy`` and ``scale``
    once had (one layer, so the layer rule let it pass)."""
    fake = tmp_path / "sarcnet_sklearn"
    for unit in ("deploy", "scale"):
        (fake / unit).mkdir(parents=True)
        (fake / unit / "__init__.py").write_text("")
    (fake / "deploy" / "_predict.py").write_text("from ..scale import map_chunks\n")
    (fake / "scale" / "_engine.py").write_text(
        "def map_chunks():\n    from ..deploy import load_model\n")
    assert upward_imports(fake) == []
    assert import_cycles(fake) == [["deploy", "scale", "deploy"]]


def test_the_command_line_parser_imports_only_light_modules():
    assert heavy_parser_imports() == []


def test_the_parser_rule_allows_heavy_imports_only_inside_functions(tmp_path):
    fake = tmp_path / "sarcnet_sklearn"
    (fake / "commands").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "_columns.py").write_text("")
    (fake / "tables.py").write_text("")
    (fake / "commands" / "__init__.py").write_text("")
    (fake / "commands" / "train.py").write_text(
        "import argparse\nfrom typing import TYPE_CHECKING\n\nimport pandas\n\n"
        "from .. import __version__\nfrom .._columns import IMAGE_COLUMN\nfrom ..tables import x"
        "\n\nif TYPE_CHECKING:\n    import numpy\n\n\ndef run():\n    import torch\n"
    )
    assert heavy_parser_imports(fake) == [
        "sarcnet_sklearn.commands.train imports pandas at its top",
        "sarcnet_sklearn.commands.train imports sarcnet_sklearn.tables at its top",
    ]


def test_the_rule_catches_an_upward_import_inside_a_function(tmp_path):
    """The check itself, on a copy of the package given the import ``features`` once made."""
    fake = tmp_path / "sarcnet_sklearn"
    (fake / "features").mkdir(parents=True)
    (fake / "tables.py").write_text("")
    (fake / "features" / "__init__.py").write_text("")
    (fake / "features" / "_cli.py").write_text(
        "import numpy\n\n\ndef run():\n    from ..tables import load_cells\n"
    )
    assert imported_modules(fake / "features" / "_cli.py", fake) == {"sarcnet_sklearn.tables"}
    assert upward_imports(fake) == [
        "sarcnet_sklearn.features._cli (layer 1) imports sarcnet_sklearn.tables (layer 3)"
    ]
