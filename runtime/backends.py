"""Inference backends over a bundle: onnxruntime and TensorRT, with numpy in and out (no torch).

Every backend offers the same five calls, named after the bundle's graphs:

    generator_init(i)            i [B, 32]                  -> (state [h0..h3], w [B, S, 512])
    generator_step(s, state)     s [B, 32], state           -> (state', w [B, S, 512])
    mapping(z)                   z [B, 512]                 -> w [B, 512]
    synthesis(wplus, rgb=True)   wplus [B, S, 512]          -> uint8 [B, R, R, 3]  (or float image [B, 3, R, R])
    encoder(image)               image [B, 3, E, E]         -> wplus [B, S, 512]  (E = bundle.encoder_input_size)

Sessions are created on first use, so a stream from a W+ `.npy` identity never loads the encoder.
The torch backend (`torch_backend.py`) offers the same calls for GPUs without TensorRT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from svgan.errors import UserError

from .bundle import Bundle, BundleError

State = list[np.ndarray]
STATE_NAMES = ("h0", "h1", "h2", "h3")


class Backend(Protocol):
    name: str

    def generator_init(self, i: np.ndarray) -> tuple[State, np.ndarray]: ...
    def generator_step(self, s: np.ndarray, state: State) -> tuple[State, np.ndarray]: ...
    def mapping(self, z: np.ndarray) -> np.ndarray: ...
    def synthesis(self, wplus: np.ndarray, rgb: bool = True) -> np.ndarray: ...
    def encoder(self, image: np.ndarray) -> np.ndarray: ...


class GraphRunner:
    """The five calls expressed through one primitive, `run(graph, outputs, inputs)`."""

    def run(self, graph: str, outputs: Sequence[str], inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def generator_init(self, i: np.ndarray) -> tuple[State, np.ndarray]:
        *state, w = self.run("generator_init", [*STATE_NAMES, "w"], {"i": _f32(i)})
        return state, w

    def generator_step(self, s: np.ndarray, state: State) -> tuple[State, np.ndarray]:
        feeds = {"s": _f32(s), **{name: h for name, h in zip(STATE_NAMES, state)}}
        *state, w = self.run("generator_step", [f"{n}_next" for n in STATE_NAMES] + ["w"], feeds)
        return state, w

    def mapping(self, z: np.ndarray) -> np.ndarray:
        return self.run("mapping", ["w"], {"z": _f32(z)})[0]

    def synthesis(self, wplus: np.ndarray, rgb: bool = True) -> np.ndarray:
        return self.run("synthesis", ["rgb" if rgb else "image"], {"wplus": _f32(wplus)})[0]

    def encoder(self, image: np.ndarray) -> np.ndarray:
        return self.run("encoder", ["wplus"], {"image": _f32(image)})[0]


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


class OrtBackend(GraphRunner):
    """onnxruntime: the CPU provider, or CUDA when onnxruntime-gpu is installed and `device="cuda"`."""

    name = "ort"

    def __init__(self, bundle: Bundle, device: str = "cpu", fp16: bool = False, threads: int = 0):
        import onnxruntime as ort

        self.bundle = bundle
        self.fp16 = fp16
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UserError("--device cuda with --backend ort needs onnxruntime-gpu "
                                "(pip install 'stylevideogan[gpu]'); this onnxruntime has "
                                + ", ".join(ort.get_available_providers()))
            self.providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            self.providers = ["CPUExecutionProvider"]
        self.options = ort.SessionOptions()
        self.options.intra_op_num_threads = threads
        self._ort = ort
        self._sessions: dict[str, object] = {}

    def session(self, graph: str):
        if graph not in self._sessions:
            # Only the image graphs have fp16 variants worth using; the GRU and mapping stay fp32.
            fp16 = self.fp16 and graph in ("synthesis", "encoder")
            path = self.bundle.graph_file(graph, fp16=fp16)
            try:
                self._sessions[graph] = self._ort.InferenceSession(str(path), self.options,
                                                                   providers=self.providers)
            except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types for a bad graph
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise BundleError(f"onnxruntime cannot load {path}: {reason}") from None
        return self._sessions[graph]

    def run(self, graph: str, outputs: Sequence[str], inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session(graph).run(list(outputs), inputs)


class TrtBackend(GraphRunner):
    """TensorRT engines from `svgan-export --trt`, device buffers through CuPy.

    Written against the documented TensorRT 10 Python API (named tensors, `set_input_shape`,
    `set_tensor_address`, `execute_async_v3`). No machine of this project could install TensorRT, so this
    path has not been run; see README "What was and was not run".
    """

    name = "trt"

    def __init__(self, bundle: Bundle, device: str = "cuda"):
        if device != "cuda":
            raise UserError("--backend trt runs on CUDA only (use --device cuda)")
        try:
            import cupy
            import tensorrt as trt
        except ImportError as e:
            raise UserError(f"--backend trt needs TensorRT and CuPy ({e.name} is not installed): "
                            "pip install 'stylevideogan[trt]' cupy-cuda12x") from None
        self.bundle = bundle
        self._trt, self._cp = trt, cupy
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._contexts: dict[str, object] = {}
        self._stream = cupy.cuda.Stream(non_blocking=True)

    def context(self, graph: str):
        if graph not in self._contexts:
            engine = self._runtime.deserialize_cuda_engine(self.bundle.engine_file(graph).read_bytes())
            if engine is None:
                raise UserError(f"TensorRT could not load {self.bundle.engine_file(graph)} (built for another "
                                "GPU or TensorRT version? re-export with --trt on this machine)")
            self._contexts[graph] = (engine, engine.create_execution_context())
        return self._contexts[graph]

    def run(self, graph: str, outputs: Sequence[str], inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        cp, trt = self._cp, self._trt
        engine, context = self.context(graph)
        keep = []
        for name, value in inputs.items():
            device = cp.asarray(value)
            keep.append(device)
            context.set_input_shape(name, value.shape)
            context.set_tensor_address(name, device.data.ptr)
        results = {}
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            if engine.get_tensor_mode(name) != trt.TensorIOMode.OUTPUT:
                continue
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            results[name] = cp.empty(tuple(context.get_tensor_shape(name)), dtype=dtype)
            context.set_tensor_address(name, results[name].data.ptr)
        if not context.execute_async_v3(self._stream.ptr):
            raise RuntimeError(f"TensorRT execution of {graph} failed")
        self._stream.synchronize()
        return [cp.asnumpy(results[name]) for name in outputs]


def make_backend(name: str, bundle: Bundle, device: str = "cpu", fp16: bool = False) -> Backend:
    """`ort`, `trt` or `torch`; only `torch` imports torch."""
    if name == "ort":
        return OrtBackend(bundle, device, fp16=fp16)
    if name == "trt":
        return TrtBackend(bundle, device)
    if name == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend.from_bundle(bundle, device, fp16=fp16)
    raise UserError(f"unknown backend {name!r} (ort, trt or torch)")
