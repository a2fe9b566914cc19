"""Recover PyTorch weights that compute exactly what the shipped demo-world bundle D computes.

Why this exists
---------------
`svgan/demo_world/bundle/` (bundle D: generator_init, generator_step, mapping, synthesis, encoder, pca.npz,
w_avg.npy, manifest.json) was exported from a training run (`--model small`) and a pSp checkpoint that no longer
exist (the `runs/` folder was lost). A bundle format that carries torch weights needs those weights back. The ONNX
graphs hold every weight as an initializer, so the networks can be rebuilt from them: most initializers carry the
parameter's own name, the rest are constant-folded functions of one parameter each, undone here.

Run (from the repository root; ~7 s on 2 CPU cores):

    .venv/bin/python docs/experiments/recover_bundle_d.py [--bundle svgan/demo_world/bundle] [--out runs/recovered-d]

It writes into `--out`:

* `psp.pt` — the pSp (GradualStyleEncoder + StyleGAN2 decoder + latent_avg) in the official checkpoint layout,
  written with `svgan.models.save_psp`, checked to load with `svgan.models.load_psp` (strict);
* `temporal-d/checkpoint.pt` — `{"format": "svgan-run/1", "generator_config", "G_ema", "iteration": 2500, "fps",
  "recovered_from"}` (loads with `torch.load(weights_only=True)`), and `temporal-d/pca.npz`, the bundle's, byte for byte;
* `recovery.json` — the configs found and, per graph, the largest absolute difference between the shipped ONNX
  graph (onnxruntime) and the recovered PyTorch module on seeded inputs, before and after reloading the files.

It exits non-zero if any difference exceeds 1e-4 (synthesis' uint8 frame: more than 1 level), if a graph's structure
is not the one this script knows, or if the bundle's files do not match its manifest's sha256s.

How each folded initializer maps back (learned by exporting a fresh model of the same configs with known random
weights through `svgan.export.onnx_graphs.bundle_specs` + `export_graph`, torch 2.13 / onnxscript 0.7.2: the same
initializer names and the same nodes as the shipped graphs, and the inverse below recovers the known weights)
-----------------------------------------------------------------------------------------------------------------
* G: `generator.{H,P,T}.*` are the parameters themselves. `generator.A.weight` [dim, S*dim] is the export view's
  `StyleAffineMatMul` layout, `A.permute(2, 0, 1).reshape(in, S * out)`, inverted by reshape + permute.
* StyleGAN2 `EqualLinear` (mapping layers, modulations, the encoder's style heads): the Gemm's weight is
  `weight * scale` (`scale = lr_mul / sqrt(fan_in)`), its bias (mapping: the `view` added after the Gemm) is
  `bias * lr_mul`. Divided back; `unscale` picks, per element, the float32 whose float32 product with the scale is
  the shipped value bit for bit, so the recovered modules recompute the shipped initializers exactly.
* Modulated convs: `mul_N` [out, in, k, k] is `scale * weight`; an up-sampling conv's ConvTranspose weight
  (`transpose_N`) is the same transposed to [in, out, k, k]; the demodulation matrix `t_N` = `sum_kk(w²)ᵀ` is
  derived and only checked. `view_N` is the activation's bias; `expand_N` are the fixed FIR kernels (checked
  against `blur_kernel`); `mul_N` [1, 1, r, r] is `noise strength * noise buffer`.
* Encoder: BatchNorms that follow a conv (input layer, each unit's second conv, the projection shortcuts) were
  folded by onnxscript's fuse rule into the conv (`W * g/sqrt(v + eps)` under the conv weight's own name, and a new
  `<weight>_bias`); the unit-entry BatchNorms are kept as nodes with their own names. PReLU slopes are `val_N`
  [1, C, 1, 1] reshapes, found through the graph (the PRelu node after each conv).

Checked outside this script (it may not import svgan.export): exporting the weights this script recovers with
`bundle_specs` + `export_graph` (the versions the manifest records: torch 2.13.0+cpu, onnxscript 0.7.2) gives the
shipped graphs' nodes and all 331 initializers bit for bit; and a fresh model with random weights, exported and run
through these functions, comes back with bit-identical outputs (G, mapping, synthesis; encoder 2e-7), its parameters
equal except folded BatchNorms and noise (the choices below) and ~8% of scaled elements, which differ by < 2e-7
relative: other float32 preimages of the same folded product.

Parametrisation choices where the folding is not invertible (the function is exact, the parameters are one choice):
* Folded BatchNorm: weight 1, bias = the folded bias, running_mean 0, running_var = float32(1 - eps) (so that
  `var + eps` is exactly 1.0 in float32: onnxscript's re-fold then reproduces the shipped tensors bit for bit),
  num_batches_tracked 0; the conv keeps the folded weight. Caveat: in train mode (batch statistics) such an encoder
  is not the original one; fine-tune it only with its BatchNorms in eval mode.
* Noise: the graph holds only `strength * buffer`. Strength = the power of two nearest the RMS of that product,
  buffer = product / strength (a power of two keeps both directions exact in float32): the same constant-noise
  output, buffers of RMS 0.71..1.41 like StyleGAN2's N(0, 1) ones, and a strength close to the trained one (whose
  buffers were N(0, 1); off by up to 1.41x plus the sampling error of a small buffer's RMS), so
  `randomize_noise=True` still adds about the trained amount of noise. Strength 1 with buffer = product would be as
  exact, but the trained strengths are 8e-6..2e-3, so random noise would come out 500x to 100,000x too strong. The
  sign is unknowable and irrelevant for random noise; a zero product would give strength 0 and a zero buffer.
* `lr_mlp` (the mapping's learning-rate multiplier) cancels out of every folded tensor: 0.01, StyleGAN2Config's
  default, which the world's StyleGAN2 trainer uses and which `load_psp` rebuilds; the stored weights follow from it.
* Not in any graph: the critic C, G's training copy and optimisers, the StyleGAN2 discriminator; not recoverable.

Note (exporter, not recovery): onnxscript's `add_0` rule treats constants within 1e-8 of zero as zero, so the graphs
lack the `+ 1e-8` of PixelNorm and of demodulation that the torch modules have. The difference is ~1e-8 relative
except at an all-zero input (PixelNorm of z = 0: NaN in ONNX, 0 in torch).

Imports only svgan.models, torch, numpy, onnx, onnxruntime and the standard library, so that it keeps working while
the training/world/export packages move.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

import svgan.models
from svgan.models import (PSP, Generator, PSPEncoderConfig, StyleGAN2Config, TemporalGenerator,
                          TemporalGeneratorConfig, atomic_torch_save, load_psp, save_psp)
from svgan.models.stylegan2 import EqualLinear, ModulatedConv2d, StyledConv, ToRGB
from svgan.runtime.bundle import sha256_file

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BUNDLE = REPO / "svgan" / "demo_world" / "bundle"
DEFAULT_OUT = REPO / "runs" / "recovered-d"
GRAPHS = ("generator_init", "generator_step", "mapping", "synthesis", "encoder")
TOLERANCE = 1e-4          # max abs error allowed between shipped ONNX and recovered torch, every float output
RGB_TOLERANCE = 1         # uint8 levels (rounding at .5 may flip by one)
BATCH = 3
LOOP_STEPS = 250
ITERATION = 2500          # the lost run's iteration; manifest["source"]["run_iteration"] says so too and wins
RUN_NAME = "temporal-d"     # the lost run's folder name, which the re-exported manifest records as its source
# What the world's trainers build by default (world/stylegan2_trainer.py StyleGAN2TrainConfig, world/psp_trainer.py
# PSPTrainConfig, training/trainer.py MODEL_SIZES["small"]); copied, not imported: only reported against.
WORLD_DEFAULTS: dict[str, dict[str, Any]] = {
    "stylegan2": {"size": 64, "style_dim": 128, "n_mlp": 4, "channels": [128, 128, 64, 32, 16], "lr_mlp": 0.01,
                  "blur_kernel": [1, 3, 3, 1]},
    "encoder_stages": {"stages": [[32, 32, 2], [32, 48, 2], [48, 64, 2], [64, 64, 2]]},
    "generator_small": {"hidden_dim": 64, "h_mlp_width": 64, "t_mlp_width": 128},
}


class RecoveryError(RuntimeError):
    """The bundle is not what this script can invert, or the recovered weights do not match it."""


# --------------------------------------------------------------------------------------------------
# Reading the graphs


@dataclass
class OnnxGraph:
    """One shipped graph: its initializers as arrays, and who produces / consumes each value (to walk it)."""

    name: str
    model: onnx.ModelProto
    inits: dict[str, np.ndarray]
    producer: dict[str, onnx.NodeProto] = field(default_factory=dict)
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def load(cls, path: Path) -> "OnnxGraph":
        model = onnx.load(str(path))
        inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        graph = cls(path.stem, model, inits)
        for node in model.graph.node:
            for out in node.output:
                graph.producer[out] = node
            for value in node.input:
                graph.consumers[value].append(node)
        return graph

    @property
    def nodes(self) -> list[onnx.NodeProto]:
        return list(self.model.graph.node)

    def of_type(self, op_type: str) -> list[onnx.NodeProto]:
        return [n for n in self.model.graph.node if n.op_type == op_type]

    def init(self, name: str) -> np.ndarray:
        if name not in self.inits:
            raise RecoveryError(f"{self.name}: '{name}' is not an initializer")
        return self.inits[name]

    def consumer(self, value: str, op_type: str) -> onnx.NodeProto:
        """The single node of `op_type` reading `value` (the graph walk fails loudly on anything else)."""
        found = [n for n in self.consumers[value] if n.op_type == op_type]
        if len(found) != 1:
            raise RecoveryError(f"{self.name}: expected one {op_type} reading '{value}', found {len(found)}")
        return found[0]

    def other_init(self, node: onnx.NodeProto, value: str) -> np.ndarray:
        """The initializer operand of a binary node whose other operand is `value` (e.g. `Add(x, bias)`)."""
        others = [i for i in node.input if i != value]
        if len(others) != 1 or others[0] not in self.inits:
            raise RecoveryError(f"{self.name}: {node.op_type} {list(node.input)} has no single initializer operand")
        return self.inits[others[0]]

    def optional_init(self, node: onnx.NodeProto, index: int, like: np.ndarray) -> np.ndarray:
        """An optional input (a Gemm's or Conv's bias); the optimiser drops all-zero ones."""
        if len(node.input) > index and node.input[index]:
            return self.init(node.input[index])
        return np.zeros(like, dtype=np.float32)

    def attr(self, node: onnx.NodeProto, name: str, default: Any = None) -> Any:
        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def dims(self, value_name: str) -> list[int | str]:
        for v in (*self.model.graph.input, *self.model.graph.output):
            if v.name == value_name:
                return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        raise RecoveryError(f"{self.name}: no graph input/output '{value_name}'")


def load_bundle(bundle: Path) -> tuple[dict[str, Any], dict[str, OnnxGraph]]:
    """The manifest and the five graphs, after checking every file against the manifest's sha256."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    graphs = {}
    for name in GRAPHS:
        entry = manifest["graphs"][name]
        path = bundle / entry["file"]
        if sha256_file(path) != entry["sha256"]:
            raise RecoveryError(f"{path} does not match its manifest sha256: not the bundle the manifest describes")
        graphs[name] = OnnxGraph.load(path)
    for entry in manifest.get("files", {}).values():  # pca.npz, w_avg.npy
        if sha256_file(bundle / entry["file"]) != entry["sha256"]:
            raise RecoveryError(f"{bundle / entry['file']} does not match its manifest sha256")
    return manifest, graphs


# --------------------------------------------------------------------------------------------------
# Undoing the folding


@dataclass
class UnscaleStats:
    """How many elements had no float32 `x` with `fl32(x * scale) == folded` (nearest kept); expected 0."""

    tensors: int = 0
    elements: int = 0
    inexact: int = 0


UNSCALE = UnscaleStats()


def unscale(folded: np.ndarray, scale: float) -> torch.Tensor:
    """The float32 tensor `x` with `x * float32(scale) == folded` in float32, element by element.

    torch computes `weight * self.scale` (a Python float) as float32 times float32(scale), and onnxscript folded
    the same product in numpy float32, so this `x` makes the recovered module recompute the shipped initializer
    bit for bit. `folded / scale` rounded is right for most elements; the rest are one or two ulps away.
    """
    folded = np.asarray(folded, dtype=np.float32)
    s = np.float32(scale)
    x = (folded.astype(np.float64) / np.float64(s)).astype(np.float32)
    for _ in range(3):
        bad = (x * s) != folded
        if not bad.any():
            break
        # step each mismatch one ulp towards the side that brings the product closer to the target
        direction = np.where((x * s)[bad] < folded[bad], np.float32(np.inf), np.float32(-np.inf)) * np.sign(s)
        x[bad] = np.nextafter(x[bad], direction.astype(np.float32))
    UNSCALE.tensors += 1
    UNSCALE.elements += folded.size
    UNSCALE.inexact += int(((x * s) != folded).sum())
    return torch.from_numpy(x.copy())


def tensor(array: np.ndarray, shape: tuple[int, ...] | torch.Size | None = None) -> torch.Tensor:
    t = torch.from_numpy(np.array(array, dtype=np.float32, copy=True))
    return t.reshape(shape) if shape is not None else t


# --------------------------------------------------------------------------------------------------
# The temporal generator G


def infer_generator_config(init: OnnxGraph, step: OnnxGraph) -> TemporalGeneratorConfig:
    """G's sizes from its tensors: GRU cells from P, MLP widths/depths from H and T, styles from A's bias."""
    def layers(graph: OnnxGraph, mlp: str) -> list[np.ndarray]:
        pattern = rf"generator\.{mlp}\.(\d+)\.weight"
        idx = sorted(int(m.group(1)) for n in graph.inits if (m := re.fullmatch(pattern, n)))
        return [graph.init(f"generator.{mlp}.{i}.weight") for i in idx]

    cells = sorted(int(m.group(1)) for n in step.inits if (m := re.fullmatch(r"generator\.P\.(\d+)\.weight_ih", n)))
    h, t = layers(init, "H"), layers(init, "T")
    n_styles, style_dim = init.init("generator.A.bias").shape
    latent_dim = step.init("generator.P.0.weight_ih").shape[1]
    return TemporalGeneratorConfig(
        latent_dim=latent_dim, n_cells=len(cells), hidden_dim=step.init("generator.P.0.weight_hh").shape[1],
        h_mlp_width=h[0].shape[0] if len(h) > 1 else TemporalGeneratorConfig.h_mlp_width, h_mlp_layers=len(h),
        t_mlp_width=t[0].shape[0] if len(t) > 1 else TemporalGeneratorConfig.t_mlp_width, t_mlp_layers=len(t),
        n_styles=n_styles, style_dim=style_dim)


def recover_generator(init: OnnxGraph, step: OnnxGraph) -> TemporalGenerator:
    """G from generator_init (H, T, A) and generator_step (P, T, A); T and A must agree between the two."""
    generator = TemporalGenerator(infer_generator_config(init, step)).eval()
    for name in init.inits.keys() & step.inits.keys():
        if name.startswith("generator.") and not np.array_equal(init.inits[name], step.inits[name]):
            raise RecoveryError(f"{name} differs between generator_init and generator_step: not one G")
    merged = {**init.inits, **step.inits}
    state: dict[str, torch.Tensor] = {}
    for key, ref in generator.state_dict().items():
        name = f"generator.{key}"
        if key == "A.weight":
            # StyleAffineMatMul holds A as [in, S * out] = weight.permute(2, 0, 1).reshape(in, S * out)
            s, out, inp = ref.shape
            state[key] = tensor(merged[name]).reshape(inp, s, out).permute(1, 2, 0).contiguous()
        elif name in merged:
            state[key] = tensor(merged[name], ref.shape)
        else:
            raise RecoveryError(f"G parameter {key} is in neither generator graph")
    generator.load_state_dict(state, strict=True)
    return generator


# --------------------------------------------------------------------------------------------------
# StyleGAN2 decoder


def modulation_gemms(g: OnnxGraph) -> list[tuple[onnx.NodeProto, int]]:
    """The synthesis graph's modulation Gemms in graph order, each with the W+ index it reads (Gather on wplus)."""
    found = []
    for node in g.of_type("Gemm"):
        gather = g.producer.get(node.input[0])
        if gather is not None and gather.op_type == "Gather" and gather.input[0] == "wplus":
            found.append((node, int(g.init(gather.input[1]))))
    return found


def infer_stylegan2_config(mapping: OnnxGraph, synthesis: OnnxGraph) -> StyleGAN2Config:
    """Size from the image output, widths from the constant input and each up-sampling conv, n_mlp from the
    mapping's Gemms. lr_mlp cancels out of the folded weights (see module doc): StyleGAN2Config's default."""
    size = int(synthesis.dims("image")[-1])
    n_mlp = len(mapping.of_type("Gemm"))
    style_dim = int(mapping.dims("w")[-1])
    constants = [synthesis.init(n.input[0]) for n in synthesis.of_type("Expand")
                 if n.input[0] in synthesis.inits and synthesis.init(n.input[0]).ndim == 4]
    if len(constants) != 1:
        raise RecoveryError(f"synthesis: expected one Expand of the 4x4 constant input, found {len(constants)}")
    constant = constants[0]
    ups = [synthesis.init(n.input[1]) for n in synthesis.of_type("ConvTranspose") if synthesis.attr(n, "group", 1) == 1]
    channels = (constant.shape[1], *(int(w.shape[1]) for w in ups))  # ConvTranspose weight is [in, out, k, k]
    return StyleGAN2Config(size=size, style_dim=style_dim, n_mlp=n_mlp, channels=tuple(int(c) for c in channels))


def recover_mapping(g: OnnxGraph, decoder: Generator, state: dict[str, torch.Tensor]) -> None:
    """Each layer: Gemm(x, weight * scale) -> Add(bias * lr_mul as [1, 512]) -> LeakyReLU -> * sqrt(2)."""
    gemms = g.of_type("Gemm")
    layers = [m for m in decoder.style if isinstance(m, EqualLinear)]
    if len(gemms) != len(layers):
        raise RecoveryError(f"mapping has {len(gemms)} Gemms for {len(layers)} layers")
    for k, (node, layer) in enumerate(zip(gemms, layers), start=1):
        if g.attr(node, "transB", 0) != 1 or len(node.input) > 2:
            raise RecoveryError(f"mapping Gemm {k}: not Gemm(x, W, transB=1) followed by a bias Add")
        add = g.consumer(node.output[0], "Add")
        state[f"style.{k}.weight"] = unscale(g.init(node.input[1]), layer.scale)
        state[f"style.{k}.bias"] = unscale(g.other_init(add, node.output[0]).reshape(-1), layer.lr_mul)


@dataclass
class FoldChecks:
    """Derived initializers (demodulation matrices, FIR kernels) compared with what the recovered weights give."""

    demod_max_rel: float = 0.0
    fir_kernels: int = 0
    noise_strengths: dict[str, float] = field(default_factory=dict)


def recover_modconv(g: OnnxGraph, gemm: onnx.NodeProto, conv: ModulatedConv2d, prefix: str,
                    state: dict[str, torch.Tensor], checks: FoldChecks) -> onnx.NodeProto:
    """Modulation (Gemm), conv weight (Conv, or ConvTranspose for up-sampling) and, if demodulated, a check of
    the folded demodulation matrix. Returns the Conv/ConvTranspose node."""
    w_mod = g.init(gemm.input[1])
    state[f"{prefix}.modulation.weight"] = unscale(w_mod, conv.modulation.scale)
    state[f"{prefix}.modulation.bias"] = unscale(g.optional_init(gemm, 2, w_mod.shape[0]), conv.modulation.lr_mul)
    scaled_input = g.consumer(g.consumer(gemm.output[0], "Unsqueeze").output[0], "Mul")
    node = g.consumer(scaled_input.output[0], "ConvTranspose" if conv.upsample else "Conv")
    folded = g.init(node.input[1])
    if conv.upsample:
        folded = folded.transpose(1, 0, 2, 3)  # the export impl feeds (scale * weight).transpose(0, 1)
    state[f"{prefix}.weight"] = unscale(folded, conv.scale)[None]
    if conv.demodulate:
        matmul = g.consumer(g.consumer(gemm.output[0], "Pow").output[0], "MatMul")
        demod = g.init(matmul.input[1])
        expected = (folded.astype(np.float64) ** 2).sum((2, 3)).T
        checks.demod_max_rel = max(checks.demod_max_rel, float(np.abs(demod - expected).max() / np.abs(expected).max()))
    return node


def check_fir(g: OnnxGraph, node: onnx.NodeProto, kernel: torch.Tensor, flip: bool, checks: FoldChecks) -> None:
    """A depthwise FIR conv's weight must be the module's kernel buffer (flipped for the blur), per channel."""
    weight = g.init(node.input[1])
    expected = torch.flip(kernel, [0, 1]) if flip else kernel
    if not np.array_equal(weight, expected.expand(weight.shape[0], 1, *kernel.shape).numpy()):
        raise RecoveryError(f"synthesis: FIR weight '{node.input[1]}' is not the blur_kernel the config implies")
    checks.fir_kernels += 1


def split_noise(product: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """`strength * buffer` -> (strength, buffer): strength = the power of two nearest the product's RMS (in log
    scale), buffer = product / strength. A power of two makes both the division and torch's re-multiplication exact
    (an arbitrary strength leaves some products without a float32 preimage), and leaves the buffer's RMS in
    [0.71, 1.41], like StyleGAN2's N(0, 1) buffers."""
    rms = float(np.sqrt(np.mean(product.astype(np.float64) ** 2)))
    if rms == 0.0:
        return torch.zeros(1), torch.zeros(product.shape)
    strength = 2.0 ** round(math.log2(rms))
    return torch.tensor([strength], dtype=torch.float32), unscale(product, strength)


def recover_styled_conv(g: OnnxGraph, gemm: onnx.NodeProto, module: StyledConv, prefix: str, noise_index: int,
                        state: dict[str, torch.Tensor], checks: FoldChecks) -> None:
    """modconv -> [blur] -> * demod -> + noise (strength * buffer) -> + bias -> LeakyReLU."""
    node = recover_modconv(g, gemm, module.conv, f"{prefix}.conv", state, checks)
    out = node.output[0]
    if module.conv.upsample:
        blur = g.consumer(out, "Conv")
        check_fir(g, blur, module.conv.blur.kernel, flip=True, checks=checks)
        out = blur.output[0]
    demod = g.consumer(out, "Mul")
    noise_add = g.consumer(demod.output[0], "Add")
    strength, buffer = split_noise(g.other_init(noise_add, demod.output[0]))
    state[f"{prefix}.noise.weight"] = strength
    state[f"noises.noise_{noise_index}"] = buffer
    checks.noise_strengths[f"noise_{noise_index}"] = float(strength)
    bias_add = g.consumer(noise_add.output[0], "Add")
    state[f"{prefix}.activate.bias"] = tensor(g.other_init(bias_add, noise_add.output[0])).reshape(-1)
    g.consumer(bias_add.output[0], "LeakyRelu")  # structure check


def recover_to_rgb(g: OnnxGraph, gemm: onnx.NodeProto, module: ToRGB, prefix: str,
                   state: dict[str, torch.Tensor], checks: FoldChecks) -> None:
    """1x1 modconv (no demodulation) -> + bias [1, 3, 1, 1]."""
    node = recover_modconv(g, gemm, module.conv, f"{prefix}.conv", state, checks)
    state[f"{prefix}.bias"] = tensor(g.other_init(g.consumer(node.output[0], "Add"), node.output[0]))


def recover_synthesis(g: OnnxGraph, decoder: Generator, state: dict[str, torch.Tensor]) -> FoldChecks:
    """Walk the modulation Gemms in forward order: conv1, to_rgb1, then per resolution two convs and a to_rgb.
    Each Gemm's W+ index is checked against the module it is assigned to."""
    checks = FoldChecks()
    expected: list[tuple[str, nn.Module, int]] = [("conv1", decoder.conv1, 0), ("to_rgb1", decoder.to_rgb1, 1)]
    for r in range(len(decoder.to_rgbs)):
        expected += [(f"convs.{2 * r}", decoder.convs[2 * r], 2 * r + 1),
                     (f"convs.{2 * r + 1}", decoder.convs[2 * r + 1], 2 * r + 2),
                     (f"to_rgbs.{r}", decoder.to_rgbs[r], 2 * r + 3)]
    gemms = modulation_gemms(g)
    if [i for _, i in gemms] != [i for _, _, i in expected]:
        raise RecoveryError(f"synthesis: modulations read W+ indices {[i for _, i in gemms]}, "
                            f"expected {[i for _, _, i in expected]}")
    for (gemm, _), (prefix, module, _) in zip(gemms, expected):
        if isinstance(module, StyledConv):
            noise_index = 0 if prefix == "conv1" else int(prefix.split(".")[1]) + 1
            recover_styled_conv(g, gemm, module, prefix, noise_index, state, checks)
        else:
            recover_to_rgb(g, gemm, module, prefix, state, checks)
    expand = [n for n in g.of_type("Expand") if n.input[0] in g.inits and g.init(n.input[0]).ndim == 4]
    state["input.input"] = tensor(g.init(expand[0].input[0]))  # one such Expand: checked by infer_stylegan2_config
    # the skip path's up-sampling: depthwise ConvTranspose over the 3 RGB channels with the Upsample kernel
    for node, rgb in zip([n for n in g.of_type("ConvTranspose") if g.attr(n, "group", 1) == 3], decoder.to_rgbs):
        check_fir(g, node, rgb.upsample.kernel, flip=False, checks=checks)
    # FIR kernels are fixed buffers of the config, checked above against the graph
    for key, value in decoder.state_dict().items():
        if key.endswith(".kernel"):
            state[key] = value.clone()
    return checks


# --------------------------------------------------------------------------------------------------
# pSp encoder


def infer_encoder_config(g: OnnxGraph) -> PSPEncoderConfig:
    """Input size from the graph input; stages from each unit's first conv (in, depth) and the stride of its
    second conv (a stride-2 unit starts a stage)."""
    size = int(g.dims("image")[-1])
    units = sorted(int(m.group(1)) for n in g.inits
                   if (m := re.fullmatch(r"psp\.encoder\.body\.(\d+)\.res_layer\.1\.weight", n)))
    stride_of = {}
    for node in g.of_type("Conv"):
        m = re.fullmatch(r"psp\.encoder\.body\.(\d+)\.res_layer\.3\.weight", node.input[1])
        if m:
            stride_of[int(m.group(1))] = g.attr(node, "strides")[0]
    if set(stride_of) != set(units) or not units or stride_of[units[0]] != 2:
        raise RecoveryError("encoder: every IR unit needs its second conv in the graph, the first one with stride 2")
    stages: list[list[int]] = []
    for u in units:
        depth, in_ch = g.init(f"psp.encoder.body.{u}.res_layer.1.weight").shape[:2]
        if stride_of[u] == 2:
            stages.append([int(in_ch), int(depth), 0])
        stages[-1][2] += 1
    return PSPEncoderConfig(input_size=size, stages=tuple(tuple(s) for s in stages))


def recover_encoder(g: OnnxGraph, psp: PSP, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Encoder weights into `state` (keys `encoder.*`) and the latent_avg; returns what was folded."""
    encoder = psp.encoder
    modules = dict(encoder.named_modules())
    reference = encoder.state_dict()
    # 1. parameters that kept their own name (convs, unfolded BNs, SE gates, style convs, lateral layers). Convs
    #    with a BN folded in also keep their name, holding W * g/sqrt(v + eps): with the identity BN chosen below,
    #    that is the conv weight.
    for key, ref in reference.items():
        name = f"psp.encoder.{key}"
        if name in g.inits:
            state[f"encoder.{key}"] = tensor(g.init(name), ref.shape)
    # 2. BatchNorms folded into the conv before them: identity statistics, bias from `<conv weight>_bias`
    eps_nodes = {round(g.attr(n, "epsilon"), 12) for n in g.of_type("BatchNormalization")}
    folded_bns = []
    for path, module in modules.items():
        if not isinstance(module, nn.BatchNorm2d) or f"psp.encoder.{path}.running_mean" in g.inits:
            continue
        parent, index = path.rsplit(".", 1)
        conv_weight = f"psp.encoder.{parent}.{int(index) - 1}.weight"
        conv = [n for n in g.of_type("Conv") if n.input[1] == conv_weight]
        if len(conv) != 1 or not isinstance(modules[f"{parent}.{int(index) - 1}"], nn.Conv2d):
            raise RecoveryError(f"encoder: BatchNorm {path} is neither a graph node nor folded into {conv_weight}")
        bias = g.optional_init(conv[0], 2, module.num_features)
        var = np.float32(1.0 - module.eps)
        if np.float32(var + np.float32(module.eps)) != np.float32(1.0):
            raise RecoveryError("running_var = 1 - eps does not give var + eps == 1 in float32")
        state.update({f"encoder.{path}.weight": torch.ones(module.num_features),
                      f"encoder.{path}.bias": tensor(bias),
                      f"encoder.{path}.running_mean": torch.zeros(module.num_features),
                      f"encoder.{path}.running_var": torch.full((module.num_features,), float(var))})
        folded_bns.append(path)
    for key in reference:
        if key.endswith("num_batches_tracked"):
            state[f"encoder.{key}"] = torch.zeros((), dtype=torch.long)  # unused in eval; not in any graph
    # 3. PReLU slopes, in module order = graph order; each PRelu must follow a conv of the same block
    prelus = [(p, m) for p, m in modules.items() if isinstance(m, nn.PReLU)]
    nodes = g.of_type("PRelu")
    if len(prelus) != len(nodes):
        raise RecoveryError(f"encoder: {len(nodes)} PRelu nodes for {len(prelus)} PReLU modules")
    for (path, module), node in zip(prelus, nodes):
        conv = g.producer[node.input[0]]
        if conv.op_type != "Conv" or not conv.input[1].startswith(f"psp.encoder.{path.rsplit('.', 1)[0]}."):
            raise RecoveryError(f"encoder: PRelu {node.output[0]} does not follow a conv of {path}")
        state[f"encoder.{path}.weight"] = tensor(g.init(node.input[1])).reshape(-1)
    # 4. the style heads' EqualLinear: Gemm(flatten(convs(x)), weight * scale, bias * lr_mul), graph order
    gemms = g.of_type("Gemm")
    for k, (node, style) in enumerate(zip(gemms, encoder.styles)):
        last_conv = g.producer[g.producer[g.producer[node.input[0]].input[0]].input[0]]  # Reshape <- LeakyRelu <- Conv
        if not last_conv.input[1].startswith(f"psp.encoder.styles.{k}.convs."):
            raise RecoveryError(f"encoder: Gemm {node.output[0]} does not read style head {k}")
        if g.attr(node, "transB", 0) != 1:
            raise RecoveryError(f"encoder: Gemm {node.output[0]} is not transB=1")
        weight = g.init(node.input[1])
        state[f"encoder.styles.{k}.linear.weight"] = unscale(weight, style.linear.scale)
        bias = g.optional_init(node, 2, weight.shape[0])
        state[f"encoder.styles.{k}.linear.bias"] = unscale(bias, style.linear.lr_mul)
    if len(gemms) != len(encoder.styles):
        raise RecoveryError(f"encoder: {len(gemms)} Gemms for {len(encoder.styles)} style heads")
    psp.set_latent_avg(tensor(g.init("psp.latent_avg")))
    return {"folded_batchnorms": folded_bns, "batchnorm_epsilons": sorted(eps_nodes)}


def recover_psp(mapping: OnnxGraph, synthesis: OnnxGraph, encoder: OnnxGraph) -> tuple[PSP, dict[str, Any]]:
    decoder_config = infer_stylegan2_config(mapping, synthesis)
    encoder_config = infer_encoder_config(encoder)
    psp = PSP(decoder_config, encoder_config=encoder_config).eval()
    decoder_state: dict[str, torch.Tensor] = {}
    recover_mapping(mapping, psp.decoder, decoder_state)
    checks = recover_synthesis(synthesis, psp.decoder, decoder_state)
    state = {f"decoder.{k}": v for k, v in decoder_state.items()}
    folded = recover_encoder(encoder, psp, state)
    missing = sorted(psp.state_dict().keys() - state.keys())
    if missing:
        raise RecoveryError(f"pSp parameters not recovered: {missing[:5]} ({len(missing)} in all)")
    psp.load_state_dict(state, strict=True)
    info = {"demodulation_max_rel_diff": checks.demod_max_rel, "fir_kernels_checked": checks.fir_kernels,
            "noise_strengths": checks.noise_strengths, **folded}
    return psp, info


# --------------------------------------------------------------------------------------------------
# Equivalence: shipped ONNX (onnxruntime) against the recovered torch modules


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the machine's 2 cores are shared
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def max_abs(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else a
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else b
    if a.shape != b.shape:
        raise RecoveryError(f"shape mismatch {a.shape} vs {b.shape}")
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def image_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """The synthesis graph's uint8 output: clamp((x + 1) * 127.5, 0, 255), rounded, channels-last."""
    return ((image + 1) * 127.5).clamp(0, 255).round().permute(0, 2, 3, 1).to(torch.uint8)


def seeded(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def check_generator(generator: TemporalGenerator, sessions: dict[str, ort.InferenceSession]) -> dict[str, Any]:
    """init and one step on batch 3, then a 250-step loop from init, each side carrying its own state."""
    c = generator.config
    names = [f"h{k}" for k in range(c.n_cells)]
    i = seeded(11, BATCH, c.latent_dim)
    ort_init = sessions["generator_init"].run(None, {"i": i.numpy()})
    state, w = generator.init(i)
    init_err = {n: max_abs(o, t) for n, o, t in zip([*names, "w"], ort_init, [*state, w])}

    s = seeded(12, BATCH, c.latent_dim)
    feed = {"s": s.numpy(), **{n: h for n, h in zip(names, ort_init[:-1])}}
    ort_step = sessions["generator_step"].run(None, feed)
    new_state, w = generator.step(s, tuple(torch.from_numpy(h) for h in ort_init[:-1]))
    step_err = {n: max_abs(o, t) for n, o, t in zip([*[f"{n}_next" for n in names], "w"], ort_step, [*new_state, w])}

    ort_state, torch_state = ort_init[:-1], state
    noise = seeded(13, LOOP_STEPS, BATCH, c.latent_dim)
    loop_w, loop_state = 0.0, 0.0
    for k in range(LOOP_STEPS):
        out = sessions["generator_step"].run(None, {"s": noise[k].numpy(), **dict(zip(names, ort_state))})
        torch_state, w = generator.step(noise[k], torch_state)
        ort_state = out[:-1]
        loop_w = max(loop_w, max_abs(out[-1], w))
        loop_state = max(loop_state, max(max_abs(o, t) for o, t in zip(ort_state, torch_state)))
    return {"generator_init": {"max_abs_error": max(init_err.values()), "outputs": init_err},
            "generator_step": {"max_abs_error": max(step_err.values()), "outputs": step_err},
            "generator_step_loop": {"steps": LOOP_STEPS, "max_abs_error": max(loop_w, loop_state),
                                    "w": loop_w, "state": loop_state}}


def synthesis_inputs(generator: TemporalGenerator, sessions: dict[str, ort.InferenceSession],
                     w_avg: np.ndarray, psi: float) -> dict[str, np.ndarray]:
    """Three kinds of W+ input, batch 3 each: G's codes after a few steps (what the runtime feeds, minus the
    identity offset), truncated mapping outputs broadcast over the styles, and plain N(0, 1)."""
    c = generator.config
    with torch.no_grad():
        state, _ = generator.init(seeded(21, BATCH, c.latent_dim))
        for k in range(10):
            state, w = generator.step(seeded(22 + k, BATCH, c.latent_dim), state)
    z = seeded(40, BATCH, c.style_dim).numpy()
    mapped = sessions["mapping"].run(None, {"z": z})[0]
    truncated = w_avg + psi * (mapped - w_avg)
    return {"G": w.numpy(), "mapping_truncated": np.repeat(truncated[:, None], c.n_styles, 1).astype(np.float32),
            "randn": seeded(41, BATCH, c.n_styles, c.style_dim).numpy()}


@torch.no_grad()
def check_psp(psp: PSP, sessions: dict[str, ort.InferenceSession], wplus_sets: dict[str, np.ndarray]) -> dict[str, Any]:
    """mapping, synthesis (export and reference modconv) and encoder against the shipped graphs."""
    decoder = psp.decoder
    z = seeded(31, BATCH, decoder.config.style_dim)
    mapping_err = max_abs(sessions["mapping"].run(None, {"z": z.numpy()})[0], decoder.mapping(z))

    synth: dict[str, Any] = {"image": 0.0, "rgb_levels": 0, "rgb_pixels_differing": 0, "image_reference_impl": 0.0}
    images = []
    for key, wplus in wplus_sets.items():
        image, rgb = sessions["synthesis"].run(None, {"wplus": wplus})
        decoder.use_modconv("export")  # the graph's own formulation (scale input, shared conv, demodulate)
        t_image = decoder.synthesize(torch.from_numpy(wplus))
        t_rgb = image_to_rgb(t_image).numpy()
        decoder.use_modconv("reference")  # the official grouped-conv formulation, for information
        ref_image = decoder.synthesize(torch.from_numpy(wplus))
        decoder.use_modconv("export")
        diff = np.abs(rgb.astype(np.int16) - t_rgb.astype(np.int16))
        synth["image"] = max(synth["image"], max_abs(image, t_image))
        synth["image_reference_impl"] = max(synth["image_reference_impl"], max_abs(image, ref_image))
        synth["rgb_levels"] = max(synth["rgb_levels"], int(diff.max()))
        synth["rgb_pixels_differing"] += int((diff > 0).sum())
        images.append(np.clip(image, -1, 1))
    synth["max_abs_error"] = synth["image"]

    size = psp.input_size
    images.append(torch.rand(BATCH, 3, size, size, generator=torch.Generator().manual_seed(51)).numpy() * 2 - 1)
    encoder_err = 0.0
    for batch in images:  # synthesis frames (the encoder's real use) and uniform noise in [-1, 1]
        if batch.shape[-1] != size:
            raise RecoveryError(f"encoder reads {size}x{size}, synthesis writes {batch.shape[-1]}")
        encoder_err = max(encoder_err, max_abs(sessions["encoder"].run(None, {"image": batch.astype(np.float32)})[0],
                                               psp.encode(torch.from_numpy(batch.astype(np.float32)))))
    return {"mapping": {"max_abs_error": mapping_err}, "synthesis": synth,
            "encoder": {"max_abs_error": encoder_err, "inputs": "3 synthesis batches clipped to [-1, 1] + uniform"}}


def failures(errors: dict[str, Any], prefix: str = "") -> list[str]:
    """Every float error above TOLERANCE and every uint8 frame more than RGB_TOLERANCE levels off."""
    bad = []
    for graph, result in errors.items():
        if result["max_abs_error"] > TOLERANCE:
            bad.append(f"{prefix}{graph}: max abs error {result['max_abs_error']:.3g} > {TOLERANCE}")
        if graph == "synthesis" and result["rgb_levels"] > RGB_TOLERANCE:
            bad.append(f"{prefix}synthesis: rgb differs by {result['rgb_levels']} levels > {RGB_TOLERANCE}")
    return bad


# --------------------------------------------------------------------------------------------------
# Writing and reloading


def write_outputs(out: Path, bundle: Path, manifest: dict[str, Any], generator: TemporalGenerator, psp: PSP) -> str:
    """psp.pt (official layout), run/checkpoint.pt, run/pca.npz (byte copy). Returns the provenance text."""
    out.mkdir(parents=True, exist_ok=True)
    save_psp(out / "psp.pt", psp)
    step_sha = manifest["graphs"]["generator_step"]["sha256"]
    try:
        where = bundle.resolve().relative_to(REPO)
    except ValueError:
        where = bundle
    recovered_from = (f"{where} (bundle D, created {manifest.get('created')}), generator_step.onnx sha256 "
                      f"{step_sha}; weights read back from its ONNX graphs by docs/experiments/recover_bundle_d.py")
    atomic_torch_save({"format": "svgan-run/1", "generator_config": dataclasses.asdict(generator.config),
                       "G_ema": generator.state_dict(), "iteration": run_iteration(manifest),
                       "fps": float(manifest["fps"]),
                       "recovered_from": recovered_from}, out / RUN_NAME / "checkpoint.pt")
    shutil.copyfile(bundle / "pca.npz", out / RUN_NAME / "pca.npz")
    if sha256_file(out / RUN_NAME / "pca.npz") != sha256_file(bundle / "pca.npz"):
        raise RecoveryError("run/pca.npz is not a byte copy of the bundle's")
    return recovered_from


def run_iteration(manifest: dict[str, Any]) -> int:
    return int(manifest.get("source", {}).get("run_iteration", ITERATION))


def reload_outputs(out: Path) -> tuple[TemporalGenerator, PSP, dict[str, Any]]:
    """Read back what was written, the way its users will: load_psp (strict) and torch.load(weights_only=True)."""
    psp = load_psp(out / "psp.pt")
    ckpt = torch.load(out / RUN_NAME / "checkpoint.pt", map_location="cpu", weights_only=True)
    generator = TemporalGenerator(TemporalGeneratorConfig(**ckpt["generator_config"])).eval()
    generator.load_state_dict(ckpt["G_ema"], strict=True)
    info: dict[str, Any] = {"checkpoint_keys": sorted(ckpt)}
    # the run reader a colleague is adding to svgan.models (export's entry point), if this tree has it
    loader = getattr(svgan.models, "load_run_generator", None)
    if loader is None:
        info["load_run_generator"] = "not in this svgan.models"
    else:
        try:
            loaded, meta = loader(out / RUN_NAME)
            same = all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), generator.state_dict().values()))
            info["load_run_generator"] = f"ok (iteration {meta['iteration']}, fps {meta['fps']}, weights equal: {same})"
        except Exception as e:  # informational: that reader is in flux; the brief's contract is torch.load
            info["load_run_generator"] = f"failed: {type(e).__name__}: {e}"
    return generator, psp, info


def state_dicts_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="the shipped bundle (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # module constructors draw weights before they are overwritten; keep runs identical

    manifest, graphs = load_bundle(args.bundle)
    generator = recover_generator(graphs["generator_init"], graphs["generator_step"])
    psp, fold_info = recover_psp(graphs["mapping"], graphs["synthesis"], graphs["encoder"])
    if psp.n_styles != generator.config.n_styles or psp.decoder.config.style_dim != generator.config.style_dim:
        raise RecoveryError("G's W+ shape does not match the pSp's")
    print(f"recovered G {generator.config}\n  decoder {psp.decoder.config}\n  encoder {psp.encoder.config}")

    sessions = {name: session(args.bundle / manifest["graphs"][name]["file"]) for name in GRAPHS}
    w_avg = np.load(args.bundle / "w_avg.npy")
    wplus_sets = synthesis_inputs(generator, sessions, w_avg, float(manifest.get("truncation_psi", 0.7)))
    errors = {**check_generator(generator, sessions), **check_psp(psp, sessions, wplus_sets)}

    recovered_from = write_outputs(args.out, args.bundle, manifest, generator, psp)
    generator2, psp2, reload_info = reload_outputs(args.out)
    reload_info["psp_state_equal_after_reload"] = state_dicts_equal(psp, psp2)
    reload_info["latent_avg_equal_after_reload"] = bool(torch.equal(psp.latent_avg, psp2.latent_avg))
    reload_info["G_state_equal_after_reload"] = state_dicts_equal(generator, generator2)
    reload_errors = {**check_generator(generator2, sessions), **check_psp(psp2, sessions, wplus_sets)}

    bad = failures(errors) + failures(reload_errors, "after reload, ")
    if UNSCALE.inexact:
        bad.append(f"{UNSCALE.inexact} folded elements have no exact float32 preimage")
    if not (reload_info["psp_state_equal_after_reload"] and reload_info["G_state_equal_after_reload"]
            and reload_info["latent_avg_equal_after_reload"]):
        bad.append("reloaded weights differ from the recovered ones")

    gc, dc, ec = generator.config, psp.decoder.config, psp.encoder.config
    report = {
        "bundle": str(args.bundle), "manifest_created": manifest.get("created"),
        "graph_sha256": {n: manifest["graphs"][n]["sha256"] for n in GRAPHS}, "sha256_verified": True,
        "recovered_from": recovered_from,
        "configs": {"generator": gc, "stylegan2": dc, "encoder": ec, "iteration": run_iteration(manifest),
                    "fps": manifest["fps"]},
        "manifest_source": manifest.get("source"),
        "matches_world_defaults": {
            "stylegan2": all(jsonable(getattr(dc, k)) == v for k, v in WORLD_DEFAULTS["stylegan2"].items()),
            "encoder_stages": jsonable(ec.stages) == WORLD_DEFAULTS["encoder_stages"]["stages"],
            "generator_small": all(getattr(gc, k) == v for k, v in WORLD_DEFAULTS["generator_small"].items())},
        "max_abs_error": errors, "max_abs_error_after_reload": reload_errors, "reload": reload_info,
        "tolerance": TOLERANCE, "rgb_tolerance_levels": RGB_TOLERANCE, "batch": BATCH,
        "synthesis_inputs": sorted(wplus_sets),
        "folding": {"unscaled_tensors": UNSCALE.tensors, "unscaled_elements": UNSCALE.elements,
                    "elements_without_exact_preimage": UNSCALE.inexact, **fold_info},
        "w_avg_equals_latent_avg_rows": bool(np.array_equal(np.broadcast_to(w_avg, psp.latent_avg.shape),
                                                             psp.latent_avg.numpy())),
        "parametrisation": {
            "folded_batchnorm": "weight 1, bias = folded conv bias, running_mean 0, running_var float32(1 - eps), "
                                "conv weight = folded weight",
            "noise": "strength = power of two nearest the RMS of (strength * buffer), buffer = product / strength "
                     "(bit-exact)",
            "lr_mlp": "0.01 (StyleGAN2Config default; cancels out of the folded weights)"},
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__},
        "failures": bad, "wall_seconds": round(time.perf_counter() - start, 1),
    }
    (args.out / "recovery.json").write_text(json.dumps(jsonable(report), indent=2) + "\n")

    for label, errs in (("shipped ONNX vs recovered", errors), ("shipped ONNX vs reloaded files", reload_errors)):
        print(label + ":")
        for graph, result in errs.items():
            extra = f", rgb {result['rgb_levels']} level(s) max" if graph == "synthesis" else ""
            print(f"  {graph:20s} max abs error {result['max_abs_error']:.3g}{extra}")
    print(f"folded elements undone: {UNSCALE.elements} in {UNSCALE.tensors} tensors, {UNSCALE.inexact} inexact; "
          f"wrote {args.out} in {report['wall_seconds']} s")
    if bad:
        print("FAILED:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RecoveryError as e:
        print(f"recover_bundle_d: {e}", file=sys.stderr)
        sys.exit(2)
