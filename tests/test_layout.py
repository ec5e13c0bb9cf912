"""The package's layout: library modules never import the command-line code, and no layer
imports one above it (the README's developer section lists the layers)."""

from __future__ import annotations

import ast
from pathlib import Path

import sarcnet_sklearn

PACKAGE = Path(sarcnet_sklearn.__file__).parent

LAYERS = [
    {"_columns", "_validation", "_chunks", "_batches", "_console", "_epoch_table", "metrics",
     "outputs", "images", "nn"},
    {"features", "regressor", "intervals"},
    {"datasets", "pipeline"},
    {"tables"},
    {"deploy", "scale", "explain"},
    {"fields", "tuning"},
    {"reproduce", "demo", "napari"},
    {"commands", "__main__"},
]
"""Bottom to top: a module may import from its own layer and the layers below it."""

LAYER = {unit: level for level, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    return ".".join(path.relative_to(package.parent).with_suffix("").parts)


def unit_of(module: str) -> str:
    """The top-level module or subpackage of the package that ``module`` belongs to."""
    return module.split(".")[1] if "." in module else ""


def imported_modules(path: Path, package: Path = PACKAGE) -> set[str]:
    """Every module of ``package`` that ``path`` imports, at the top or inside a function."""
    parts = path.relative_to(package.parent).with_suffix("").parts
    here = parts[:-1]  # the package holding ``path`` (``__init__`` included)
    root = package.name
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == root}
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = ".".join(here[: len(here) - node.level + 1])
            module = f"{base}.{node.module}" if node.module else base
        else:
            module = node.module or ""
        if module.split(".")[0] != root:
            continue
        if module == root:  # ``from .. import x``: x may be a submodule
            found |= {f"{root}.{alias.name}" for alias in node.names
                      if (package / alias.name).is_dir()
                      or (package / f"{alias.name}.py").is_file()}
        else:
            found.add(module)
    return found


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
