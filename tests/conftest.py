"""Shared test fixtures. The conformance data lives in `../shared/conformance` beside the checkout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONFORMANCE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"


@pytest.fixture(scope="session")
def conformance() -> Path:
    """The conformance folder, or a skip that says why (outside this repository's CI it is absent)."""
    if not (CONFORMANCE / "psp_ffhq_encode.keys.json").is_file():
        pytest.skip(f"conformance fixture not found at {CONFORMANCE} (../shared is absent outside the "
                    "repository's CI); the official-equality tests cannot run here")
    return CONFORMANCE


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def psp256_checkpoint(tmp_path_factory) -> Path:
    """A 256x256 pSp checkpoint in the official layout holding the conformance rule's weights (~0.9 GB)."""
    from svgan.models import save_psp
    from svgan.models.fixture_weights import fixture_psp

    path = tmp_path_factory.mktemp("psp") / "psp256.pt"
    save_psp(path, fixture_psp(256))
    return path


def package_file(package: str, *parts: str) -> Path:
    """A data file shipped inside an installed package, located without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"{package} is not installed; `make test` installs it (pyproject [dev])")
    return Path(list(spec.submodule_search_locations)[0], *parts)
