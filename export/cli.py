"""`svgan-export RUN --psp CKPT -o BUNDLE`: the run's generator, pSp and StyleGAN2 as one bundle (DESIGN §8)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from svgan.cli_types import FiniteRange, IntList, OutputDir, OutputFile, write_summary
from svgan.errors import one_line_errors

from svgan.runtime.domain import REFERENCE_SAMPLES

from .bundle import DEFAULT_TRUNCATION_PSI, export_bundle
from .onnx_graphs import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET

TOOL = "svgan-export"


def _progress(message: str) -> None:
    click.echo(f"{TOOL}: {message}", err=True)


def summary(manifest: dict, out: Path) -> dict:
    """The `--json` summary: where the bundle is, what each graph weighs and how close it is to PyTorch."""
    graphs = {}
    for name, g in manifest["graphs"].items():
        row = {"file": g["file"], "bytes": g["bytes"], "export_seconds": g["export_seconds"],
               "max_abs_error": g["parity"]["max_abs_error"], "fp16": g["fp16"]}
        if "loop" in g["parity"]:
            row["loop_max_abs_error"] = g["parity"]["loop"]["max_abs_error"]
        graphs[name] = row
    return {"bundle": str(out), "resolution": manifest["resolution"], "n_styles": manifest["n_styles"],
            "seconds": manifest["export"]["seconds"], "graphs": graphs, "engines": sorted(manifest["engines"]),
            "torch_weights_bytes": (manifest["files"].get("torch_weights") or {}).get("bytes")}


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--psp", "psp", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="pSp checkpoint (encoder + StyleGAN2 decoder + latent_avg) whose W+ space the run was trained in.")
@click.option("-o", "--out", "out", required=True, type=OutputDir(),
              help="Bundle directory to write (must not exist or be empty, unless --force).")
@click.option("--trt", is_flag=True,
              help="Also build one TensorRT engine per graph (needs TensorRT and an NVIDIA GPU).")
@click.option("--fp16", is_flag=True,
              help="Also write fp16 variants of synthesis and encoder, kept only where parity holds "
                   "(synthesis PSNR >= 40 dB); with --trt their engines are built in fp16.")
@click.option("--opset", default=DEFAULT_OPSET, type=click.IntRange(MIN_OPSET, MAX_OPSET),
              help="ONNX opset (TensorRT 10.0 reads up to 20).")
@click.option("--batch-sizes", default="1,8,16", type=IntList(min=1),
              help="Batch sizes the runtime will use: one TensorRT optimisation profile each.")
@click.option("--truncation-psi", default=DEFAULT_TRUNCATION_PSI, type=FiniteRange(0, 1),
              help="Truncation for random identities, recorded in the manifest for svgan-stream.")
@click.option("--burn-in", default=None, type=click.IntRange(min=0),
              help="G's steps from its initial state before a stream's first frame, recorded in the manifest for "
                   "svgan-stream and svgan-serve. A model trained with a state pool is at its worst in its first "
                   "second and better from frame 25 on (`svgan-eval --burn-in` measures it; docs/long-horizon.md "
                   "§3e, §4); the paper's model is best from its start.  [default: 25 for a run trained with a "
                   "state pool (svgan-train's default), 0 for one trained with --paper]")
@click.option("--no-torch-weights", "no_torch_weights", is_flag=True,
              help="Leave out weights.safetensors, the PyTorch weights that `svgan-stream --backend torch` runs "
                   "(1,224 MB at 1024 with the paper's widths, about as much again as the ONNX graphs); such a "
                   "bundle streams with --backend ort or trt only.")
@click.option("--domain-samples", default=REFERENCE_SAMPLES, type=click.IntRange(min=0),
              help="Random faces of the generator whose pSp reconstruction sets the in-domain reference that "
                   "`svgan-stream --identity` judges photos against (manifest `domain_reference`); each costs two "
                   "syntheses and one encoding on the CPU (64 take about 2 s for the demo world's 64x64). 0: none "
                   "(svgan-stream then only notes that it cannot judge identity photos).")
@click.option("--force", is_flag=True, help="Replace an existing bundle at --out (atomically).")
@click.option("--json", "json_out", type=OutputFile(allow_dash=True), default=None,
              help="Write a JSON summary here ('-' for stdout).")
@one_line_errors(TOOL)
def main(run: Path, psp: Path, out: Path, trt: bool, fp16: bool, opset: int, batch_sizes: tuple[int, ...],
         truncation_psi: float, burn_in: int | None, no_torch_weights: bool, domain_samples: int, force: bool,
         json_out: Path | None) -> None:
    """Export training run RUN and the pSp checkpoint as one self-describing bundle.

    Writes generator_init/generator_step (GRU state in, state out), mapping, synthesis and encoder as ONNX
    (dynamic batch), weights.safetensors (the same networks for the torch backend), pca.npz, w_avg.npy and
    manifest.json with every file's sha256 and the parity errors (onnxruntime vs PyTorch) measured here. The
    bundle names RUN and the checkpoint by file name and sha256 only, so it works wherever it is copied.
    Nothing appears under --out unless the whole bundle was written.
    """
    start = time.perf_counter()
    manifest = export_bundle(run, psp, out, fp16=fp16, trt=trt, opset=opset,
                             batch_sizes=batch_sizes, truncation_psi=truncation_psi, burn_in=burn_in,
                             force=force, torch_weights=not no_torch_weights, domain_samples=domain_samples,
                             progress=_progress)
    result = summary(manifest, out)
    result["seconds"] = round(time.perf_counter() - start, 2)
    write_summary(json_out, result)


if __name__ == "__main__":
    main()
