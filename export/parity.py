"""Parity of every exported graph: onnxruntime (CPU) against PyTorch, at export time and in the tests.

Bounds (issue 4): fp32 graphs within `FP32_BOUND` = 1e-3 max abs error (images in [-1, 1], W+ codes, GRU states);
fp16 variants: synthesis PSNR >= `FP16_PSNR_DB` = 40 dB against the fp32 PyTorch image (peak-to-peak 2, the
[-1, 1] range), the encoder within `FP16_WPLUS_BOUND` = 1e-2 max abs error on W+ (our choice: a hundredth of a
typical code's magnitude, far below what changes a rendered face); and a `GRU_LOOP_STEPS` = 250-step onnxruntime
loop of `generator_step` (each step fed the previous step's state outputs) equal to PyTorch's unrolled sequence.

The PyTorch reference of `synthesis` is the official-maths modulated convolution (`"reference"`, proved equal to
rosinality's code by the conformance tests), not the export-friendly one that was traced, so the figure covers
both the rewrite and the ONNX conversion.

Inputs are seeded and realistic: W+ codes are truncated mapping outputs (psi 0.7, a different z per style, so a
wrong style index cannot pass), encoder inputs are the synthesised images average-pooled to 256² and clamped to
[-1, 1], the GRU runs from `init(i)` with N(0, 1) noise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from svgan.models import Generator, TemporalGenerator

from .onnx_graphs import state_names, use_modconv

FP32_BOUND = 1e-3
FP16_PSNR_DB = 40.0
FP16_WPLUS_BOUND = 1e-2
GRU_LOOP_STEPS = 250
IMAGE_PEAK_TO_PEAK = 2.0  # images are nominally in [-1, 1]
PROVIDER = "CPUExecutionProvider"


# --------------------------------------------------------------------------------------------------
# Measures


def max_abs_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Largest absolute difference (computed in float64; uint8 in levels)."""
    if reference.shape != candidate.shape:
        raise ValueError(f"shape mismatch: {reference.shape} vs {candidate.shape}")
    return float(np.max(np.abs(reference.astype(np.float64) - candidate.astype(np.float64)))) if reference.size else 0.0


def psnr_db(reference: np.ndarray, candidate: np.ndarray, peak_to_peak: float = IMAGE_PEAK_TO_PEAK) -> float:
    """PSNR in dB of `candidate` against `reference` for signals spanning `peak_to_peak` ([-1, 1] images: 2)."""
    mse = float(np.mean((reference.astype(np.float64) - candidate.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak_to_peak ** 2 / mse)


def _json_float(x: float) -> float | str:
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf" if x < 0 else "nan")


# --------------------------------------------------------------------------------------------------
# onnxruntime


def ort_session(path: Path, threads: int | None = None):
    """A CPU onnxruntime session of `path`, quiet, all graph optimisations on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=[PROVIDER])


def run_ort(session, feeds: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float]:
    """Run a session; returns (outputs by name, seconds)."""
    names = [o.name for o in session.get_outputs()]
    start = time.perf_counter()
    out = session.run(names, dict(feeds))
    return dict(zip(names, out)), time.perf_counter() - start


# --------------------------------------------------------------------------------------------------
# Inputs


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def wplus_inputs(decoder: Generator, w_avg: torch.Tensor, batch: int, psi: float = 0.7, seed: int = 10) -> torch.Tensor:
    """Truncated W+ codes [batch, n_styles, 512], an independent z per style (exercises every style input)."""
    c = decoder.config
    z = torch.randn(batch * c.n_styles, c.style_dim, generator=seeded(seed))
    with torch.no_grad():
        w = decoder.mapping(z)
    w = w_avg.reshape(1, -1) + psi * (w - w_avg.reshape(1, -1))
    return w.reshape(batch, c.n_styles, c.style_dim)


def encoder_inputs(images: torch.Tensor, size: int = 256) -> torch.Tensor:
    """Synthesised images -> encoder inputs: average-pooled to the encoder's size (as pSp does), clamped to [-1, 1]."""
    if images.shape[-1] != size:
        images = F.adaptive_avg_pool2d(images, (size, size))
    return images.clamp(-1, 1)


# --------------------------------------------------------------------------------------------------
# Checks


def compare_outputs(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray],
                    bound: float = FP32_BOUND, image_output: str | None = None) -> dict[str, Any]:
    """Per-output max abs errors of float outputs (uint8 outputs: max difference in levels and the fraction of
    values that differ), the worst float error as `max_abs_error`, `passed` against `bound`."""
    outputs: dict[str, Any] = {}
    worst = 0.0
    for name, ref in reference.items():
        got = candidate[name]
        if ref.dtype == np.uint8:
            diff = np.abs(ref.astype(np.int16) - got.astype(np.int16))
            outputs[name] = {"max_abs_levels": int(diff.max()), "fraction_differing": float(np.mean(diff > 0))}
            continue
        err = max_abs_error(ref, got)
        outputs[name] = err
        worst = max(worst, err)
    result: dict[str, Any] = {"max_abs_error": worst, "bound": bound, "passed": bool(worst <= bound),
                              "outputs": outputs}
    if image_output is not None:
        ref = reference[image_output]
        result["psnr_db"] = _json_float(psnr_db(ref, candidate[image_output]))
        result["image_range"] = [float(ref.min()), float(ref.max())]
    return result


def check_fp16(name: str, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Parity of an fp16 variant against the fp32 PyTorch outputs: PSNR for images, max abs error for W+."""
    if name == "synthesis":
        value = psnr_db(reference["image"], candidate["image"])
        rgb = np.abs(reference["rgb"].astype(np.int16) - candidate["rgb"].astype(np.int16))
        return {"psnr_db": _json_float(value), "bound_psnr_db": FP16_PSNR_DB, "passed": bool(value >= FP16_PSNR_DB),
                "max_abs_error": max_abs_error(reference["image"], candidate["image"]),
                "rgb_max_abs_levels": int(rgb.max())}
    out = next(iter(reference))
    err = max_abs_error(reference[out], candidate[out])
    return {"max_abs_error": err, "bound": FP16_WPLUS_BOUND, "passed": bool(err <= FP16_WPLUS_BOUND),
            "relative_error": err / max(float(np.abs(reference[out]).max()), 1e-12)}


def gru_loop_parity(generator: TemporalGenerator, init_path: Path, step_path: Path, steps: int = GRU_LOOP_STEPS,
                    batch: int = 2, seed: int = 20) -> dict[str, Any]:
    """Run `generator_init` then `steps` x `generator_step` in onnxruntime, each step fed the previous step's state
    outputs, and compare every w_k (k = 0..steps) and the final state with PyTorch's unrolled sequence."""
    c = generator.config
    i, s = generator.sample_inputs(batch, steps + 1, generator=seeded(seed), device="cpu")
    with torch.no_grad():
        ref_w, ref_l = generator.unroll(i, s)                 # [B, steps+1, S, 512], [B, steps+1, 32]
        state, _ = generator.init(i)
        for k in range(steps):
            state, _ = generator.step(s[:, k], state)
    ref_w, ref_state = ref_w.numpy(), [h.numpy() for h in state]

    init, step = ort_session(init_path), ort_session(step_path)
    names, next_names = state_names(c.n_cells), state_names(c.n_cells, "_next")
    out, _ = run_ort(init, {"i": i.numpy()})
    h = [out[n] for n in names]
    per_step = [max_abs_error(ref_w[:, 0], out["w"])]
    start = time.perf_counter()
    for k in range(steps):
        out, _ = run_ort(step, {"s": s[:, k].numpy(), **dict(zip(names, h))})
        h = [out[n] for n in next_names]
        per_step.append(max_abs_error(ref_w[:, k + 1], out["w"]))
    seconds = time.perf_counter() - start
    state_err = max(max_abs_error(r, o) for r, o in zip(ref_state, h))
    latent_err = max_abs_error(ref_l[:, -1].numpy(), h[-1])
    worst = max(per_step)
    return {"steps": steps, "batch": batch, "max_abs_error": worst, "final_state_max_abs_error": state_err,
            "final_latent_max_abs_error": latent_err, "bound": FP32_BOUND,
            "passed": bool(worst <= FP32_BOUND and state_err <= FP32_BOUND),
            "error_at_step": {str(k): per_step[k] for k in (0, 1, 10, 100, steps) if k <= steps},
            "ort_ms_per_step": 1000 * seconds / max(steps, 1)}


def reference_synthesis(decoder: Generator, wplus: torch.Tensor) -> dict[str, np.ndarray]:
    """PyTorch's synthesis outputs with the official-maths modulated convolution ("reference")."""
    from .onnx_graphs import Synthesis, torch_outputs

    with use_modconv(decoder, "reference"):
        return torch_outputs(Synthesis(decoder), (wplus,), ("image", "rgb"))
