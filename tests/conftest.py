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
