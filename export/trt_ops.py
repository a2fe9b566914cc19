"""The ONNX operators TensorRT's ONNX parser supports, and a check that lists the nodes of a model it would refuse.

Source: onnx/onnx-tensorrt `docs/operators.md`, https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md,
the revision headed "TensorRT 10.15 supports operators in the inclusive range of opset 9 to opset 24" (read
through this workplace's source index, which did not record that revision's commit; the release branches
`release/10.x` of the same repository carry the file per TensorRT release). `SUPPORTED_OPS` is every row marked
"Y" there; `CONSTANT_INPUTS` and the checks in `unsupported_nodes` encode the restrictions of that table that an
exported graph could violate (axes and similar operands that must be build-time constants, UINT8 only as a network
input or output, Resize and pooling modes, DOUBLE tensors). TensorRT itself cannot be installed in this workplace
(DESIGN §9b), so this table is how the tests hold the graphs to what the parser accepts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onnx

SOURCE = "https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md (TensorRT 10.15 revision)"
OPSET_RANGE = (9, 24)

SUPPORTED_OPS: frozenset[str] = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization BlackmanWindow
Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv
DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements
GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization
GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN
LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool
Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow
PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2
ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize
ReverseSequence RMSNormalization RNN RoiAlign RotaryEmbedding Round STFT ScaledTanh Scan Scatter ScatterElements
ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze
Sub Sum Tan Tanh TensorScatter ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

# Operands the table requires to be initializers / build-time constants: op -> input indices.
_REDUCE = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
           "ReduceProd", "ReduceSum", "ReduceSumSquare")
CONSTANT_INPUTS: dict[str, tuple[int, ...]] = {
    **{op: (1,) for op in _REDUCE}, "Squeeze": (1,), "Unsqueeze": (1,), "CumSum": (1,), "TopK": (1,),
    "OneHot": (1,), "Dropout": (2,),
}
RESIZE_COORDINATE_MODES = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
RESIZE_MODES = {"nearest", "linear"}
RESIZE_NEAREST_MODES = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                yield from _nodes(sub)


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _load(model: onnx.ModelProto | str | Path) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    from .onnx_graphs import structure_only

    return structure_only(onnx.load(str(model), load_external_data=False))


def unsupported_nodes(model: onnx.ModelProto | str | Path) -> list[str]:
    """Every node (or tensor) of `model` that TensorRT's ONNX parser would refuse, as 'name (Op): reason'.
    An empty list means every node's op type is supported and no recorded restriction is violated."""
    model = _load(model)
    problems: list[str] = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        problems.append(f"model: opset {opset} outside TensorRT's {OPSET_RANGE[0]}..{OPSET_RANGE[1]}")
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    constants |= {out for n in _nodes(graph) if n.op_type == "Constant" for out in n.output}
    for node in _nodes(graph):
        where = f"{node.name or node.output[0]} ({node.op_type})"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where}: custom domain {node.domain!r}")
            continue
        if node.op_type not in SUPPORTED_OPS:
            problems.append(f"{where}: op type not supported by TensorRT's ONNX parser")
            continue
        for index in CONSTANT_INPUTS.get(node.op_type, ()):
            if index < len(node.input) and node.input[index] and node.input[index] not in constants:
                problems.append(f"{where}: input {index} ({node.input[index]}) must be a build-time constant")
        if node.op_type == "Resize":
            coordinate = _attr(node, "coordinate_transformation_mode", "half_pixel")
            mode = _attr(node, "mode", "nearest")
            nearest = _attr(node, "nearest_mode", "round_prefer_floor")
            if coordinate not in RESIZE_COORDINATE_MODES or mode not in RESIZE_MODES or (
                    mode == "nearest" and nearest not in RESIZE_NEAREST_MODES) or _attr(node, "antialias", 0):
                problems.append(f"{where}: Resize mode {mode}/{coordinate}/{nearest} not supported")
        if node.op_type in ("MaxPool", "AveragePool", "LpPool"):
            if any(d != 1 for d in _attr(node, "dilations", []) or []):
                problems.append(f"{where}: pooling dilations must be 1")
            if len(_attr(node, "kernel_shape", []) or []) not in (2, 3):
                problems.append(f"{where}: only 2-D or 3-D pooling")
        if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
            problems.append(f"{where}: the Indices output is not supported")
    problems += _type_problems(model)
    return problems


def _type_problems(model: onnx.ModelProto) -> list[str]:
    """UINT8 tensors only as network inputs/outputs; no DOUBLE tensors (TensorRT would cast them down)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    io = {v.name for v in (*graph.input, *graph.output)}
    problems = []
    typed = [(v.name, v.type.tensor_type.elem_type) for v in (*graph.value_info, *graph.input, *graph.output)]
    typed += [(t.name, t.data_type) for t in graph.initializer]
    for name, elem in typed:
        if elem == onnx.TensorProto.UINT8 and name not in io:
            problems.append(f"{name}: UINT8 tensor inside the network (TensorRT allows UINT8 only as network I/O)")
        elif elem == onnx.TensorProto.DOUBLE:
            problems.append(f"{name}: DOUBLE tensor (TensorRT casts it down to FLOAT)")
    return problems
