"""fp16 variants of the heavy graphs (`--fp16`): `synthesis_fp16.onnx`, `encoder_fp16.onnx`.

Weights and activations become float16; inputs and outputs keep the fp32 graph's types (`keep_io_types=True`:
a Cast after each input and before each output), so the runtime feeds both variants alike. The converter is
`onnxruntime.transformers.float16.convert_float_to_float16`, which ships inside the onnxruntime wheel (no extra
dependency); `onnxconverter_common.float16` (the same code, its origin) is used when onnxruntime's is missing.

onnxruntime's CPU provider runs these graphs (it has float16 kernels for every op they use, or upcasts
internally), which is how their parity is measured here without a GPU. Its arithmetic is not TensorRT's: on a GPU,
fp16 convolutions may accumulate in fp16, so the PSNR measured here bounds the error of storing weights and
activations in fp16, not of a particular GPU kernel.

Only `synthesis` and `encoder` get fp16 variants: the GRU graphs and the mapping network are tiny (nothing to gain),
and the GRU state, fed back 25 times a second for hours, is better kept in fp32.
"""

from __future__ import annotations

from pathlib import Path

import onnx

FP16_GRAPHS: tuple[str, ...] = ("synthesis", "encoder")


def _converter():
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:  # pragma: no cover - older onnxruntime wheels
        from onnxconverter_common.float16 import convert_float_to_float16
    return convert_float_to_float16


def fp16_name(name: str) -> str:
    return f"{name}_fp16"


def convert_to_fp16(src: Path, dst: Path) -> Path:
    """Write the fp16 variant of the ONNX model `src` to `dst` (I/O types kept); returns `dst`."""
    import onnx_ir as ir

    model = onnx.load(str(src))
    converted = ir.serde.deserialize_model(_converter()(model, keep_io_types=True))
    del model
    converted.graph.sort()  # the converter appends its input Casts after their users; ONNX wants topological order
    converted.graph.name = Path(dst).stem
    ir.save(converted, dst)
    return Path(dst)
