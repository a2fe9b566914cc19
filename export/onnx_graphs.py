"""The five ONNX graphs of a bundle, one small wrapper `nn.Module` and one `GraphSpec` each (DESIGN §8).

| graph | inputs | outputs |
|---|---|---|
| `generator_init` | `i` [batch, 32] | `h0`..`h3` (GRU states), `w` [batch, S, 512] |
| `generator_step` | `s` [batch, 32], `h0`..`h3` | `h0_next`..`h3_next`, `w` [batch, S, 512] |
| `mapping` | `z` [batch, 512] | `w` [batch, 512] |
| `synthesis` | `wplus` [batch, S, 512] | `image` [batch, 3, R, R] float, `rgb` [batch, R, R, 3] uint8 |
| `encoder` | `image` [batch, 3, 256, 256] in [-1, 1] | `wplus` [batch, S, 512] (latent_avg included) |

Exporter: `torch.onnx.export(..., dynamo=True)` (torch.export + onnxscript), the default since torch 2.9. The
TorchScript exporter (`dynamo=False`) still exists in torch 2.13 but warns that it is deprecated, and it cannot
export the batch-friendly modulated convolution with a dynamic batch: its depthwise FIR weights are expanded to the
channel count read off the input, which it traces as a dynamic shape and then refuses ("convolution for kernel of
unknown shape"). torch.export knows the channel count is static, so only the batch stays symbolic.

After export every subgraph that depends on weights alone (`scale * weight`, the demodulation matrix
`sum(weight², kh, kw)`, the conv-transpose weight layout) is folded into initializers (onnxscript's constant
folder with the size limits raised), so every Conv/ConvTranspose takes its weight straight from an initializer,
as TensorRT wants (static weights). The batch dimension of every input and output is named `batch`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx.external_data_helper
import torch
from torch import nn

from svgan import __version__
from svgan.errors import UserError
from svgan.models import PSP, Generator, TemporalGenerator
from svgan.models.stylegan2 import Blur, ModulatedConv2d, Upsample

GRAPH_NAMES: tuple[str, ...] = ("generator_init", "generator_step", "mapping", "synthesis", "encoder")
DEFAULT_OPSET = 18        # TensorRT 10.0's parser reads opsets 9..20; torch's exporter writes >= 18 natively
MIN_OPSET, MAX_OPSET = 18, 23
BATCH = "batch"
EXAMPLE_BATCH = 2         # traced with 2 so that torch.export cannot specialise the batch to 1
FOLD_LIMIT = 1 << 26      # elements: fold weight-only subgraphs up to 64 M elements (the largest conv has 2.4 M)
EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf caps one file at 2 GiB; above this, weights go to NAME.onnx.data


class ExportError(UserError):
    """An export that cannot be completed or fails its checks (one line for the user)."""


@dataclass
class GraphSpec:
    """One graph to export: the wrapper module, example inputs (batch first) and the I/O names of the contract."""

    name: str
    module: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    description: str
    setup: contextlib.AbstractContextManager = field(default_factory=contextlib.nullcontext)
    # torch's own optimisation pass: needed where an input is passed through as an output (G.init's h3 = i; the
    # pass inserts the Identity that keeps both names), skipped elsewhere (our folding pass does the same work)
    torch_optimize: bool = False


@dataclass
class ExportedGraph:
    """What `export_graph` wrote: the file, its I/O (shape lists with "batch") and how long it took."""

    name: str
    path: Path
    inputs: dict[str, list[int | str]]
    outputs: dict[str, list[int | str]]
    io_dtypes: dict[str, str]
    external_data: str | None
    seconds: float
    bytes: int


# --------------------------------------------------------------------------------------------------
# Wrappers


def state_names(n_cells: int, suffix: str = "") -> tuple[str, ...]:
    """`h0`..`h{n-1}` (the contract's 4 cells give h0..h3), with `suffix` (`_next`) for step outputs."""
    return tuple(f"h{k}{suffix}" for k in range(n_cells))


class StyleAffineMatMul(nn.Module):
    """`StyleAffine`'s maths, `w[b, s, o] = sum_i x[b, i] A[s, o, i] + bias[s, o]`, as one MatMul against the weight
    laid out as [i, s * o]. onnxruntime's Einsum transposes the 15 MB weight on every call (14 ms per GRU step at
    batch 2 on 2 CPU cores); the MatMul form takes about 1 ms and maps to a single TensorRT matrix multiply."""

    def __init__(self, affine: nn.Module):
        super().__init__()
        n_styles, dim, in_dim = affine.weight.shape
        self.n_styles, self.dim = n_styles, dim
        self.register_buffer("weight", affine.weight.detach().permute(2, 0, 1).reshape(in_dim, n_styles * dim).clone())
        self.register_buffer("bias", affine.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.weight).reshape(-1, self.n_styles, self.dim) + self.bias


def export_view(generator: TemporalGenerator) -> TemporalGenerator:
    """A copy of G for export: the same modules and code path, the per-style affine maps as one MatMul."""
    view = copy.deepcopy(generator).eval()
    view.A = StyleAffineMatMul(view.A)
    return view


class GeneratorInit(nn.Module):
    """`i -> (h0, .., h3, w_0)`: `TemporalGenerator.init` with the state flattened into outputs."""

    def __init__(self, generator: TemporalGenerator, view: bool = True):
        super().__init__()
        self.generator = export_view(generator) if view else generator

    @classmethod
    def reference(cls, generator: TemporalGenerator) -> "GeneratorInit":
        """The same wrapper around the generator itself (StyleAffine as einsum): the parity reference."""
        return cls(generator, view=False)

    def forward(self, i: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state, w = self.generator.init(i)
        return (*state, w)


class GeneratorStep(nn.Module):
    """`(s, h0, .., h3) -> (h0', .., h3', w_{k+1})`: `TemporalGenerator.step`, the state as explicit tensors."""

    def __init__(self, generator: TemporalGenerator, view: bool = True):
        super().__init__()
        self.generator = export_view(generator) if view else generator

    @classmethod
    def reference(cls, generator: TemporalGenerator) -> "GeneratorStep":
        """The same wrapper around the generator itself (StyleAffine as einsum): the parity reference."""
        return cls(generator, view=False)

    def forward(self, s: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        new_state, w = self.generator.step(s, tuple(state))
        return (*new_state, w)


class Mapping(nn.Module):
    """`z -> w`: StyleGAN2's mapping network (truncation is left to the runtime, with `w_avg.npy`)."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator.mapping(z)


def image_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """[B, 3, R, R] float nominally in [-1, 1] -> [B, R, R, 3] uint8: clamp((x + 1) * 127.5, 0, 255), rounded.
    The cast comes last: TensorRT allows UINT8 only as a network input or output, not inside the network."""
    return ((image + 1) * 127.5).clamp(0, 255).round().permute(0, 2, 3, 1).to(torch.uint8)


class Synthesis(nn.Module):
    """`wplus -> (image, rgb)`: the synthesis network with its constant noise buffers (no flicker) and the frame
    as channels-last uint8, so the runtime can feed it to the encoder or the video encoder without numpy work."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, wplus: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.generator.synthesize(wplus)
        return image, image_to_rgb(image)


class Encoder(nn.Module):
    """`image -> wplus`: pSp's encoder on aligned faces (256² for FFHQ) in [-1, 1], `latent_avg` added (`PSP.encode`)."""

    def __init__(self, psp: PSP):
        super().__init__()
        self.psp = psp

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.psp.encode(image)


def modconv_impl(generator: Generator) -> str:
    """The modulated-convolution implementation `generator` currently uses."""
    return next(m.impl for m in generator.modules() if isinstance(m, ModulatedConv2d))


@contextlib.contextmanager
def use_modconv(generator: Generator, impl: str) -> Iterator[Generator]:
    """`generator.use_modconv(impl)` for the duration of the block, then back to what it was."""
    previous = {m: m.impl for m in generator.modules() if isinstance(m, (ModulatedConv2d, Blur, Upsample))}
    generator.use_modconv(impl)  # type: ignore[arg-type]
    try:
        yield generator
    finally:
        for m, value in previous.items():
            m.impl = value


# --------------------------------------------------------------------------------------------------
# Specs


def _example(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def generator_init_spec(generator: TemporalGenerator) -> GraphSpec:
    c = generator.config
    return GraphSpec("generator_init", GeneratorInit(generator), (_example(EXAMPLE_BATCH, c.latent_dim, seed=1),),
                     ("i",), (*state_names(c.n_cells), "w"),
                     "StyleVideoGAN G.init: i [batch, 32] -> GRU states h0..h3 and w_0 [batch, n_styles, 512]",
                     torch_optimize=True)


def generator_step_spec(generator: TemporalGenerator) -> GraphSpec:
    c = generator.config
    with torch.no_grad():
        state, _ = generator.init(_example(EXAMPLE_BATCH, c.latent_dim, seed=2))
    inputs = (_example(EXAMPLE_BATCH, c.latent_dim, seed=3), *(h.detach().clone() for h in state))
    return GraphSpec("generator_step", GeneratorStep(generator), inputs,
                     ("s", *state_names(c.n_cells)), (*state_names(c.n_cells, "_next"), "w"),
                     "StyleVideoGAN G.step: (s_k, h0..h3) -> (h0..h3 next, w_{k+1} [batch, n_styles, 512])")


def mapping_spec(generator: Generator) -> GraphSpec:
    d = generator.config.style_dim
    return GraphSpec("mapping", Mapping(generator), (_example(EXAMPLE_BATCH, d, seed=4),), ("z",), ("w",),
                     "StyleGAN2 mapping network: z [batch, 512] -> w [batch, 512] (no truncation)")


def synthesis_spec(generator: Generator) -> GraphSpec:
    c = generator.config
    return GraphSpec("synthesis", Synthesis(generator), (_example(EXAMPLE_BATCH, c.n_styles, c.style_dim, seed=5),),
                     ("wplus",), ("image", "rgb"),
                     f"StyleGAN2 synthesis {c.size}x{c.size}, constant noise, batch-friendly modulated conv: "
                     "wplus -> image (float, nominally [-1, 1]) and rgb (uint8, channels-last)",
                     setup=use_modconv(generator, "export"))


def encoder_spec(psp: PSP) -> GraphSpec:
    size = psp.input_size
    example = _example(EXAMPLE_BATCH, 3, size, size, seed=6).clamp(-1, 1)
    return GraphSpec("encoder", Encoder(psp), (example,), ("image",), ("wplus",),
                     f"pSp encoder: aligned RGB [batch, 3, {size}, {size}] in [-1, 1] -> wplus [batch, n_styles, "
                     f"{psp.decoder.config.style_dim}] (latent_avg included)")


def bundle_specs(generator: TemporalGenerator, psp: PSP) -> list[GraphSpec]:
    """The five graphs of a bundle, in the order they are exported."""
    return [generator_init_spec(generator), generator_step_spec(generator), mapping_spec(psp.decoder),
            synthesis_spec(psp.decoder), encoder_spec(psp)]


# --------------------------------------------------------------------------------------------------
# Export


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's warnings and log lines (torchvision op registration, deprecations) on stderr."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _fold_weight_subgraphs(model) -> None:
    """Fold every weight-only subgraph into an initializer (onnxscript's folder, limits raised)."""
    import onnxscript.optimizer

    onnxscript.optimizer.optimize(model, input_size_limit=FOLD_LIMIT, output_size_limit=FOLD_LIMIT)


def _name_batch_dims(model) -> None:
    """Give the batch dimension of every graph input and output the name `batch`."""
    import onnx_ir as ir

    for value in (*model.graph.inputs, *model.graph.outputs):
        if value.shape is not None and len(value.shape) > 0 and not isinstance(value.shape[0], int):
            value.shape = ir.Shape([BATCH, *value.shape[1:]])


def _strip_trace_metadata(model) -> None:
    """Drop the exporter's per-node/per-value metadata (FX node text, Python stack traces with this machine's source
    paths): it is debugging aid only, and without it the files depend on the weights and the code alone."""
    for node in model.graph.all_nodes():
        node.metadata_props.clear()
        for value in node.outputs:
            value.metadata_props.clear()
    for value in (*model.graph.inputs, *model.graph.outputs, *model.graph.initializers.values()):
        value.metadata_props.clear()


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.HasField("dim_param") else int(d.dim_value) for d in value_info.type.tensor_type.shape.dim]


def _dtype(value_info: onnx.ValueInfoProto) -> str:
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value_info.type.tensor_type.elem_type)).name


def graph_io(model: onnx.ModelProto) -> tuple[dict[str, list[int | str]], dict[str, list[int | str]], dict[str, str]]:
    """(inputs, outputs, dtypes) of a model: shape lists with "batch" for the dynamic dim, numpy dtype names."""
    inputs = {v.name: _dims(v) for v in model.graph.input}
    outputs = {v.name: _dims(v) for v in model.graph.output}
    dtypes = {v.name: _dtype(v) for v in (*model.graph.input, *model.graph.output)}
    return inputs, outputs, dtypes


def structure_only(model: onnx.ModelProto, min_bytes: int = 4096) -> onnx.ModelProto:
    """Point every initializer larger than `min_bytes` at a (non-existent) external file instead of holding its
    data, in place: shapes and types stay, so shape inference and op checks run without copying the weights."""
    for tensor in model.graph.initializer:
        if tensor.HasField("raw_data") and len(tensor.raw_data) > min_bytes:
            onnx.external_data_helper.set_external_data(tensor, location="weights-not-loaded")
            tensor.ClearField("raw_data")
    return model


def check_onnx(path: Path) -> onnx.ModelProto:
    """`onnx.checker` with the full check (strict shape inference), then strict shape inference with data
    propagation; every input and output must have a full shape whose first dimension is `batch`.
    Returns the model without its weights (structure only)."""
    path = Path(path)
    try:
        onnx.checker.check_model(str(path), full_check=True)
        model = structure_only(onnx.load(str(path), load_external_data=False))
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"{path.name} fails the ONNX checker: {first}") from None
    for value in (*inferred.graph.input, *inferred.graph.output):
        dims = _dims(value)
        if not dims or dims[0] != BATCH or any(d in ("", 0) for d in dims[1:]):
            raise ExportError(f"{path.name}: {value.name} has shape {dims}, expected [batch, ...] with static sizes")
    return inferred


def _batch_dynamic_shapes(module: nn.Module, n_inputs: int, batch) -> tuple:
    """Dim 0 of every input is `batch`; `GeneratorStep(s, *state)` takes its state as one varargs group."""
    if isinstance(module, GeneratorStep):
        return ({0: batch}, tuple({0: batch} for _ in range(n_inputs - 1)))
    return tuple({0: batch} for _ in range(n_inputs))


def export_graph(spec: GraphSpec, directory: Path, opset: int = DEFAULT_OPSET) -> ExportedGraph:
    """Export `spec` to `directory/NAME.onnx` (dynamic batch, weights folded), check it, return what was written."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"--opset {opset}: supported range is {MIN_OPSET}..{MAX_OPSET}")
    import onnx_ir as ir
    from torch.export import Dim

    start = time.perf_counter()
    batch = Dim(BATCH, min=1)
    dynamic = _batch_dynamic_shapes(spec.module, len(spec.example_inputs), batch)
    with spec.setup, torch.no_grad(), _quiet():
        program = torch.onnx.export(spec.module.eval(), spec.example_inputs, None, dynamo=True,
                                    input_names=list(spec.input_names), output_names=list(spec.output_names),
                                    dynamic_shapes=dynamic, opset_version=opset, optimize=spec.torch_optimize,
                                    verbose=False)
        model = program.model
        _fold_weight_subgraphs(model)  # torch's own optimize=True pass is this one with the default limits
    _name_batch_dims(model)
    _strip_trace_metadata(model)
    model.graph.name = spec.name
    model.doc_string = spec.description
    model.producer_name, model.producer_version = "svgan", __version__
    model.metadata_props["svgan.graph"] = spec.name
    weight_bytes = sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)
    path = Path(directory) / f"{spec.name}.onnx"
    external = f"{spec.name}.onnx.data" if weight_bytes > EXTERNAL_DATA_BYTES else None
    ir.save(model, path, external_data=external)
    del program, model
    inferred = check_onnx(path)
    inputs, outputs, dtypes = graph_io(inferred)
    if tuple(inputs) != spec.input_names or tuple(outputs) != spec.output_names:
        raise ExportError(f"{path.name}: exported I/O {list(inputs)} -> {list(outputs)} differ from the contract "
                          f"{list(spec.input_names)} -> {list(spec.output_names)}")
    size = path.stat().st_size + ((Path(directory) / external).stat().st_size if external else 0)
    return ExportedGraph(spec.name, path, inputs, outputs, dtypes, external, time.perf_counter() - start, size)


def example_feed(spec: GraphSpec) -> dict[str, np.ndarray]:
    """The spec's example inputs as an onnxruntime feed."""
    return {name: t.detach().cpu().numpy() for name, t in zip(spec.input_names, spec.example_inputs)}


def torch_outputs(module: nn.Module, inputs: Sequence[torch.Tensor], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Run a wrapper in PyTorch and name its outputs like the graph's."""
    with torch.no_grad():
        out = module.eval()(*inputs)
    out = out if isinstance(out, tuple) else (out,)
    return {name: t.detach().cpu().numpy() for name, t in zip(names, out)}
