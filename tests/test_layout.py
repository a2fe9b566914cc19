"""The package's arrows point down only (DESIGN §2): each folder may import the folders listed for it here.

Imports are read with `ast` from every module, those inside functions included, so a lazy import that runs the
wrong way fails as surely as one at the top of a file. The runtime is torch-free on its onnxruntime/TensorRT
path: only its torch backend, the modules named `runtime/torch_*.py`, may import torch or `svgan.models`
(test_stream.py also streams with torch made unimportable).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# folder -> the svgan subpackages its modules may import (besides itself and the root package `svgan`)
ALLOWED: dict[str, set[str]] = {
    "models": set(),
    "runtime": {"models"},  # from TORCH_MODULES only, see below
    "export": {"models", "runtime"},
    "training": {"models", "runtime"},
    "world": {"models", "runtime", "export", "training"},
    "bench": {"models", "runtime", "export", "training", "serve"},
    "serve": {"runtime"},
}
SUBPACKAGES = set(ALLOWED)
TORCH_PREFIX = "torch_"  # runtime/torch_*.py: the runtime's only modules that may import torch


def imported_names(path: Path, package: str) -> set[tuple[int, str]]:
    """(line, absolute module name) for every import in `path`, a module of `svgan.<package>`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: `from . import x` stays in `package`, `from .. import x` reaches svgan
                base = ["svgan", package][: max(0, 2 - (node.level - 1))]
                names = [".".join([*base, node.module] if node.module else base)]
                if not node.module and node.level == 2:  # `from .. import training`
                    names = [f"svgan.{alias.name}" for alias in node.names]
            else:
                names = [node.module or ""]
                if node.module == "svgan":  # `from svgan import training`
                    names += [f"svgan.{alias.name}" for alias in node.names]
        else:
            continue
        found.update((node.lineno, name) for name in names)
    return found


def imported_subpackages(path: Path, package: str) -> set[tuple[int, str]]:
    """(line, subpackage) for every `svgan.<subpackage>` that `path` imports."""
    return {(line, name.split(".")[1]) for line, name in imported_names(path, package)
            if name.startswith("svgan.") and name.split(".")[1] in SUBPACKAGES}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down(package):
    allowed = ALLOWED[package] | {package}
    wrong = [f"{path.relative_to(ROOT)}:{line} imports svgan.{target}"
             for path in sorted((ROOT / package).glob("*.py"))
             for line, target in sorted(imported_subpackages(path, package)) if target not in allowed]
    assert not wrong, "imports that run the wrong way:\n" + "\n".join(wrong)


def test_runtime_is_torch_free_outside_its_torch_backend():
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in sorted((ROOT / "runtime").glob("*.py")) if not path.name.startswith(TORCH_PREFIX)
             for line, name in sorted(imported_names(path, "runtime"))
             if name.split(".")[0] == "torch" or name.startswith("svgan.models")]
    assert not wrong, "the runtime's onnxruntime/TensorRT path must not need torch:\n" + "\n".join(wrong)


def test_the_check_sees_lazy_and_relative_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from svgan.training.trainer import Trainer\n"
                      "from ..export import bundle\nfrom svgan import world\nfrom .bundle import load_bundle\n")
    assert imported_subpackages(module, "runtime") == {(2, "training"), (3, "export"), (4, "world"), (5, "runtime")}


def test_every_folder_is_a_declared_subpackage():
    """A new top-level package folder must be given its place in the arrows (and in pyproject.toml)."""
    text = (ROOT / "pyproject.toml").read_text()
    folders = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"svgan", "tests"}
    assert folders == SUBPACKAGES
    for folder in folders:
        assert f'"svgan.{folder}" = "{folder}"' in text
