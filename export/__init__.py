"""svgan.export: the trained temporal generator, pSp and StyleGAN2 as one self-describing bundle.

`svgan-export RUN --psp CKPT -o BUNDLE` (`export/cli.py`) writes a directory (DESIGN §8) with:

* `generator_init.onnx`, `generator_step.onnx` — the run's EMA generator G, GRU state as explicit inputs/outputs;
* `mapping.onnx` (z -> w), `synthesis.onnx` (W+ -> image and uint8 RGB, constant noise, batch-friendly modulated
  conv), `encoder.onnx` (aligned 256² image -> W+, latent_avg included) — from the pSp checkpoint;
* optional `synthesis_fp16.onnx` / `encoder_fp16.onnx` (`--fp16`) and TensorRT engines (`--trt`);
* `pca.npz` (the run's PCA basis), `w_avg.npy` (the W average for truncation) and `manifest.json`, which names every
  file with its sha256, every graph's inputs/outputs and the parity errors measured at export.

Modules: `onnx_graphs` (one wrapper + export per graph), `parity` (onnxruntime vs PyTorch), `fp16` (fp16 variants),
`trt_ops` (the ONNX ops TensorRT's parser supports), `tensorrt_build` (engines through the TensorRT Python API),
`bundle` (the whole export, manifest, atomic directory replacement). The runtime (`svgan.runtime`) reads a bundle
with numpy and onnxruntime alone.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_bundle", "verify_bundle", "BUNDLE_FORMAT", "BUNDLE_FORMAT_VERSION"]


def __getattr__(name: str) -> Any:  # keep `import svgan.export` light: torch and onnx load on first use
    if name in __all__:
        from . import bundle

        return getattr(bundle, name)
    raise AttributeError(f"module 'svgan.export' has no attribute {name!r}")
