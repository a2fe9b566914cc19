"""TensorRT engines for a bundle (`svgan-export --trt`), through the documented TensorRT Python API.

    builder = trt.Builder(logger); network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger); parser.parse_from_file(path)
    config = builder.create_builder_config(); config.set_memory_pool_limit(MemoryPoolType.WORKSPACE, n)
    config.set_flag(BuilderFlag.FP16)                       # TensorRT 10, when fp16 is asked
    profile = builder.create_optimization_profile(); profile.set_shape(input, min, opt, max)
    config.add_optimization_profile(profile); builder.build_serialized_network(network, config)

TensorRT 11 removed `BuilderFlag.FP16` (networks are always strongly typed): there an fp16 engine is built from
the graph's fp16 ONNX variant (`NAME_fp16.onnx`, fp16 weights and activations, fp32 I/O), and the manifest
records which route was taken. Where `BuilderFlag.FP16` exists (TensorRT 10) the fp32 graph is parsed and the
builder may pick fp16 kernels per layer.

Optimisation profiles: one per requested batch size, covering the batch sizes above the previous one, with the
requested size as the optimum (`--batch-sizes 1,8,16` -> [1,1,1], [2,8,8], [9,16,16]); any batch from 1 to the
largest runs, and the runtime picks the profile whose range holds its batch (`engines.NAME.profiles` in the
manifest lists them in profile-index order).

Nothing in this module has run against a real TensorRT: no machine of this workplace can install it (DESIGN §9b).
The tests drive it with a stand-in module that records the calls, which checks the call sequence and the
arguments against the API names above, not what TensorRT would do with them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from svgan.runtime.bundle import sha256_file

from .onnx_graphs import BATCH, ExportError

INSTALL_COMMAND = "pip install tensorrt"
DEFAULT_WORKSPACE_BYTES = 4 << 30


def import_tensorrt():
    """`import tensorrt`, or a one-line `ExportError` naming the install command."""
    try:
        import tensorrt as trt
    except (ImportError, OSError) as e:  # OSError: the wheel is there but libnvinfer / CUDA cannot be loaded
        detail = "" if isinstance(e, ModuleNotFoundError) else f" ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        raise ExportError(f"--trt needs TensorRT's Python API, which is not installed{detail}: run "
                          f"`{INSTALL_COMMAND}` on a machine with an NVIDIA GPU (the PyPI package fetches NVIDIA's "
                          "wheels from pypi.nvidia.com at install time), or export without --trt") from None
    return trt


def batch_profiles(batch_sizes: Sequence[int]) -> list[dict[str, int]]:
    """Contiguous batch ranges, one per size: [1, 8, 16] -> (1,1,1), (2,8,8), (9,16,16) as {min, opt, max}."""
    sizes = sorted(set(int(b) for b in batch_sizes))
    if not sizes or sizes[0] < 1:
        raise ExportError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    profiles, low = [], 1
    for size in sizes:
        profiles.append({"min": low, "opt": size, "max": size})
        low = size + 1
    return profiles


def _shape(dims: Sequence[int | str], batch: int) -> tuple[int, ...]:
    return tuple(batch if d == BATCH else int(d) for d in dims)


def build_engine(onnx_path: Path, engine_path: Path, inputs: dict[str, list[int | str]],
                 batch_sizes: Sequence[int], fp16: bool = False, fp16_onnx_path: Path | None = None,
                 workspace_bytes: int = DEFAULT_WORKSPACE_BYTES, trt: Any = None) -> dict[str, Any]:
    """Parse `onnx_path`, build a serialized engine with one optimisation profile per batch size, write it to
    `engine_path`. Returns the manifest entry: file, sha256, fp16, profiles and the builder settings."""
    trt = trt if trt is not None else import_tensorrt()
    start = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    try:
        builder = trt.Builder(logger)
    except (TypeError, RuntimeError) as e:  # pybind's "factory function returned nullptr": no usable CUDA device
        builder, reason = None, str(e).splitlines()[0] if str(e) else type(e).__name__
    else:
        reason = "it returned no builder"
    if builder is None:
        raise ExportError(f"TensorRT could not create a builder ({reason}); --trt needs an NVIDIA GPU with a "
                          "working CUDA driver")
    has_fp16_flag = hasattr(trt.BuilderFlag, "FP16")
    if fp16 and not has_fp16_flag:  # TensorRT >= 11: strongly typed only; the fp16 ONNX carries the precision
        if fp16_onnx_path is None:
            raise ExportError(f"{Path(onnx_path).name}: this TensorRT has no BuilderFlag.FP16 and no fp16 ONNX "
                              "variant was exported; rerun with --fp16")
        source, flags, network_flags = Path(fp16_onnx_path), 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED), ["STRONGLY_TYPED"]
        precision = f"strongly typed network from {Path(fp16_onnx_path).name}"
    else:
        source, flags, network_flags = Path(onnx_path), 0, []
        precision = "BuilderFlag.FP16 on the fp32 graph" if fp16 else "fp32 (TensorRT default; TF32 allowed)"
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        first = errors[0].splitlines()[0] if errors else "unknown error"
        raise ExportError(f"TensorRT's ONNX parser refused {source.name}: {first}"
                          + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if fp16 and has_fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    profiles = batch_profiles(batch_sizes)
    recorded = []
    for p in profiles:
        profile = builder.create_optimization_profile()
        shapes = {}
        for name, dims in inputs.items():
            lo, opt, hi = (_shape(dims, p[k]) for k in ("min", "opt", "max"))
            profile.set_shape(name, lo, opt, hi)
            shapes[name] = {"min": list(lo), "opt": list(opt), "max": list(hi)}
        config.add_optimization_profile(profile)
        recorded.append({"batch": p, "shapes": shapes})
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build an engine from {source.name} (see TensorRT's log above)")
    Path(engine_path).write_bytes(bytes(serialized))
    return {"file": Path(engine_path).name, "sha256": sha256_file(engine_path), "fp16": bool(fp16),
            "profiles": recorded,
            "builder": {"tensorrt_version": str(getattr(trt, "__version__", "unknown")), "onnx": source.name,
                        "precision": precision, "network_flags": network_flags,
                        "workspace_bytes": int(workspace_bytes), "batch_sizes": sorted(set(map(int, batch_sizes))),
                        "build_seconds": round(time.perf_counter() - start, 3)}}
