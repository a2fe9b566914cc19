"""Identities out of the bundle's domain are flagged (issue 16.5): the reconstruction PSNR, the manifest's
`domain_reference` written at export, and `svgan-stream`'s warning, `--strict` refusal and `--json` figure.
(`svgan-embed`'s per-frame check is tested in test_embed.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from svgan import DEMO_WORLD
from svgan.export.domain import main as record_reference
from svgan.runtime.cli_stream import main as stream
from svgan.runtime.domain import WARN_MARGIN_DB, reconstruction_psnr

from .conftest import package_file

NEW_ACTOR = DEMO_WORLD / "new_actor.png"  # a rendered world actor: in the demo world's domain


def run_stream(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(stream, [str(a) for a in args])
    return result.exit_code, result.stderr


def bundle_with_manifest(tmp_path: Path, edit) -> Path:
    """The demo bundle's files (linked, not copied) under a manifest changed by `edit`."""
    out = tmp_path / "bundle"
    out.mkdir(parents=True)
    for source in (DEMO_WORLD / "bundle").iterdir():
        (out / source.name).symlink_to(source)
    manifest = json.loads((DEMO_WORLD / "bundle" / "manifest.json").read_text())
    (out / "manifest.json").unlink()
    (out / "manifest.json").write_text(json.dumps(edit(manifest)))
    return out


def test_reconstruction_psnr_compares_at_64x64_and_ignores_finer_detail():
    rng = np.random.default_rng(0)
    image = rng.uniform(-0.5, 0.5, (2, 3, 256, 256)).astype(np.float32)
    checker = np.kron(np.ones((128, 128)), [[1, -1], [-1, 1]]).astype(np.float32) * 0.5  # 2-pixel texture
    psnr = reconstruction_psnr(image, image + checker)
    assert psnr.shape == (2,) and np.all(psnr > 40)  # texture finer than 64x64 averages out
    shifted = reconstruction_psnr(image[:, :, ::4, ::4] * 0, np.full((2, 3, 64, 64), 0.2, np.float32))
    assert np.allclose(shifted, 10 * np.log10(4 / 0.04))  # a plain 0.2 offset: MSE 0.04 on a range of 2


def test_export_records_the_reference_measured_with_the_bundles_own_graphs(world_bundle):
    reference = json.loads((world_bundle / "manifest.json").read_text())["domain_reference"]
    assert reference["samples"] == 64 and reference["seed"] == 0
    assert reference["min_db"] <= reference["p5_db"] <= reference["median_db"] <= reference["p95_db"]
    assert reference["warn_below_db"] == pytest.approx(reference["median_db"] - WARN_MARGIN_DB, abs=1e-3)


def test_the_shipped_reference_is_reproducible(tmp_path):
    bundle = bundle_with_manifest(tmp_path, lambda m: {k: v for k, v in m.items() if k != "domain_reference"})
    result = CliRunner().invoke(record_reference, [str(bundle)])
    assert result.exit_code == 0, result.stderr
    shipped = json.loads((DEMO_WORLD / "bundle" / "manifest.json").read_text())["domain_reference"]
    measured = json.loads((bundle / "manifest.json").read_text())["domain_reference"]
    for key in ("median_db", "p5_db", "p95_db", "min_db", "warn_below_db"):
        assert measured[key] == pytest.approx(shipped[key], abs=0.01), key


def test_a_real_photo_given_to_the_cartoon_world_is_flagged_and_strict_refuses_it(tmp_path):
    photo = package_file("skimage", "data/astronaut.png")
    code, err = run_stream("--identity", photo, "--frames", "2", "-o", tmp_path / "a.mp4", "--json",
                           tmp_path / "s.json")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("svgan-stream: warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(f"svgan-stream: warning: {photo}: reconstruction PSNR ")
    assert "the stream will look unlike it" in warnings[0]
    judged = json.loads((tmp_path / "s.json").read_text())["identity_reconstruction"]
    assert judged["out_of_domain"] and judged["psnr_db"] < judged["reference"]["warn_below_db"]
    assert (tmp_path / "a.mp4").stat().st_size > 0  # a warning only: the stream was written

    code, err = run_stream("--identity", photo, "--frames", "2", "-o", tmp_path / "b.mp4", "--strict")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"svgan-stream: error: {photo}: reconstruction PSNR ")
    assert not (tmp_path / "b.mp4").exists()


def test_an_in_domain_actor_passes_and_the_same_actor_half_covered_is_flagged(tmp_path):
    code, err = run_stream("--identity", NEW_ACTOR, "--aligned", "--strict", "--frames", "2", "-o",
                           tmp_path / "a.mp4", "--json", tmp_path / "s.json")
    assert code == 0 and "warning" not in err and "note" not in err, err
    judged = json.loads((tmp_path / "s.json").read_text())["identity_reconstruction"]
    assert not judged["out_of_domain"] and judged["psnr_db"] > judged["reference"]["warn_below_db"]

    covered = np.asarray(Image.open(NEW_ACTOR).convert("RGB")).copy()
    covered[covered.shape[0] // 2:] = 0  # a heavy occlusion: everything below the eyes
    Image.fromarray(covered).save(tmp_path / "covered.png")
    code, err = run_stream("--identity", tmp_path / "covered.png", "--aligned", "--frames", "2", "-o",
                           tmp_path / "b.mp4")
    assert code == 0 and f"svgan-stream: warning: {tmp_path / 'covered.png'}: reconstruction PSNR" in err


def test_the_threshold_comes_from_the_manifest_and_a_bundle_without_one_is_noted(tmp_path):
    strict_bundle = bundle_with_manifest(tmp_path / "a", lambda m: m | {
        "domain_reference": m["domain_reference"] | {"warn_below_db": 40.0}})
    code, err = run_stream("--bundle", strict_bundle, "--identity", NEW_ACTOR, "--aligned", "--frames", "2", "-o",
                           tmp_path / "a.mp4")
    assert code == 0 and "flagged below 40.0 dB" in err, err

    old_bundle = bundle_with_manifest(tmp_path / "b", lambda m: {k: v for k, v in m.items()
                                                                 if k != "domain_reference"})
    code, err = run_stream("--bundle", old_bundle, "--identity", NEW_ACTOR, "--aligned", "--frames", "2", "-o",
                           tmp_path / "b.mp4")
    assert code == 0 and "svgan-stream: note:" in err and "records no in-domain reference" in err, err
    code, err = run_stream("--bundle", old_bundle, "--identity", NEW_ACTOR, "--aligned", "--strict", "--frames", "2",
                           "-o", tmp_path / "c.mp4")
    assert code == 1 and err.startswith("svgan-stream: error: --strict:") and not (tmp_path / "c.mp4").exists()
