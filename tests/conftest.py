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


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A bundle small enough to stream fast: a 64x64 reduced-width decoder with the conformance rule's
    weights (pSp's IR-SE50 encoder keeps its real size) and a briefly trained temporal model on 10 styles."""
    import torch

    from svgan.export.bundle import export_bundle
    from svgan.models import PSP, StyleGAN2Config, save_psp
    from svgan.models.fixture_weights import fixture_latent_avg, fixture_state_dict
    from svgan.training.synthetic import SyntheticConfig, make_sequence
    from svgan.training.trainer import TrainConfig, start_run
    from svgan.training.wplus_data import WPlusSequence

    root = tmp_path_factory.mktemp("tiny_bundle")
    psp = PSP(StyleGAN2Config(size=64, channels=(64, 64, 32, 32, 16)))
    psp.load_state_dict(fixture_state_dict(psp.state_dict()), strict=True)
    psp.set_latent_avg(fixture_latent_avg(18)[: psp.n_styles])
    save_psp(root / "psp64.pt", psp)
    seq = make_sequence(SyntheticConfig(seconds=6, n_styles=psp.n_styles))
    run = root / "run"
    with torch.random.fork_rng():
        start_run(WPlusSequence(seq["wplus"], seq["fps"]), run,
                  TrainConfig(epochs=1, batch_size=8, critic_steps=1, generator={"hidden_dim": 32})).run(
            max_iterations=2)
    # No domain reference: 64 faces through the real-size IR-SE50 would cost ~1 min here (test_domain.py uses
    # world_bundle and the demo world's bundle, whose encoders are small).
    export_bundle(run, root / "psp64.pt", root / "bundle", parity_batch=1, domain_samples=0)
    return root / "bundle"


WORLD_TEST_CHANNELS = (32, 32, 16, 16, 8)  # a 64x64 world-shaped generator, small enough for tests
WORLD_TEST_STAGES = ((16, 16, 1), (16, 16, 1), (16, 32, 1), (32, 32, 1))


@pytest.fixture(scope="session")
def world_bundle(tmp_path_factory) -> Path:
    """A bundle shaped like the demo world's (64x64, 128-d styles, a reduced pSp encoder reading 64x64 faces),
    with random weights and a temporal model trained for 2 iterations: fast to export and to stream."""
    import torch

    from svgan.export.bundle import export_bundle
    from svgan.models import PSP, PSPEncoderConfig, StyleGAN2Config, save_psp
    from svgan.training.synthetic import SyntheticConfig, make_sequence
    from svgan.training.trainer import TrainConfig, start_run
    from svgan.training.wplus_data import WPlusSequence

    root = tmp_path_factory.mktemp("world_bundle")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        psp = PSP(StyleGAN2Config(size=64, style_dim=128, n_mlp=2, channels=WORLD_TEST_CHANNELS),
                  encoder_config=PSPEncoderConfig(input_size=64, stages=WORLD_TEST_STAGES)).eval()
        psp.set_latent_avg(psp.decoder.mean_latent(1000))
        save_psp(root / "psp.pt", psp)
        seq = make_sequence(SyntheticConfig(seconds=6, n_styles=psp.n_styles, style_dim=128))
        start_run(WPlusSequence(seq["wplus"], seq["fps"]), root / "run",
                  TrainConfig(epochs=1, batch_size=8, critic_steps=1, generator={"hidden_dim": 32})).run(
            max_iterations=2)
    export_bundle(root / "run", root / "psp.pt", root / "bundle", parity_batch=1)
    return root / "bundle"


def absolute_paths(value, where: str = "manifest") -> list[str]:
    """Every string in a manifest that is an absolute path (POSIX or Windows), with where it sits."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in absolute_paths(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in absolute_paths(v, f"{where}[{i}]")]
    if isinstance(value, str) and (value.startswith(("/", "\\", "~")) or value[1:3] in (":\\", ":/")):
        return [f"{where} = {value}"]
    return []
