"""The bundle: every graph exported and parity-checked, `manifest.json`, and an all-or-nothing write (DESIGN §8).

Everything is written into a hidden temporary directory beside the target (`.NAME.<pid>.partial`, same file
system) and renamed to the final name only when every graph has passed its checks and the manifest is written, so
no half bundle ever sits under the final name: an error or Ctrl-C removes the temporary directory, and a process
killed outright leaves only that hidden directory behind, which the next export to the same target removes. A
full disk is one line naming the bundle. A non-empty target is refused unless `force=True`, and
even then only an existing svgan bundle (or an empty directory) is replaced: the old bundle is renamed aside, the
new one renamed in, the old one deleted.

`manifest.json` (format "svgan-bundle", version 2) is the contract the runtime reads with numpy + onnxruntime:
sizes, fps, opset, every file with its sha256, each graph's inputs/outputs (shape lists with "batch" for the
dynamic dimension), dtypes, the parity figures measured at export and `domain_reference`, how well the bundle's
pSp reconstructs its own generator's faces (measured on the staged ONNX graphs by runtime/domain.py), which
`svgan-stream --identity` judges photos against.

A bundle is self-contained: `weights.safetensors` carries the PyTorch weights the torch backend runs (G's EMA
weights and the whole pSp, `svgan.models.torch_weights`; left out with `torch_weights=False`), and the
manifest names the run and the pSp checkpoint it came from by file name and sha256 only, never by a path of
the machine that exported it.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from svgan import __version__
from svgan.atomic import naming, partial_path, remove_stale_partials
from svgan.errors import UserError
# The bundle format is defined once, by its torch-free reader; the exporter writes what it reads.
from svgan.runtime.bundle import BUNDLE_FORMAT, MANIFEST, Bundle, load_bundle, sha256_file
from svgan.runtime.bundle import FORMAT_VERSION as BUNDLE_FORMAT_VERSION
from svgan.runtime.domain import REFERENCE_SAMPLES
PCA_FILE = "pca.npz"
W_AVG_FILE = "w_avg.npy"
TORCH_WEIGHTS_FILE = "weights.safetensors"
DEFAULT_BATCH_SIZES = (1, 8, 16)
DEFAULT_TRUNCATION_PSI = 0.7
GRAPH_DTYPE = "float32"

Progress = Callable[[str], None]


# --------------------------------------------------------------------------------------------------
# Files


def verify_bundle(bundle: str | os.PathLike) -> list[str]:
    """Problems with a bundle's files (missing, or sha256 differing from the manifest); empty when intact."""
    return load_bundle(bundle).problems()


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """manifest.json, replaced atomically (a temporary file beside it, fsynced, renamed)."""
    tmp = directory / f".{MANIFEST}.tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / MANIFEST)


def record_domain_reference(directory: Path, manifest: dict[str, Any], samples: int,
                            progress: Progress = lambda message: None) -> dict[str, Any]:
    """Measure the in-domain reconstruction PSNR with the bundle's own ONNX graphs (runtime/domain.py) and return
    the manifest with its `domain_reference`; `samples=0` measures nothing and drops any old entry."""
    from svgan.runtime.backends import OrtBackend
    from svgan.runtime.domain import measure_reference

    manifest = {k: v for k, v in manifest.items() if k != "domain_reference"}
    if samples == 0:
        return manifest
    bundle = Bundle(path=Path(directory), manifest=manifest)
    reference = measure_reference(bundle, OrtBackend(bundle), samples)
    progress(f"in-domain reconstruction: median {reference['median_db']:.1f} dB PSNR over {samples} of the "
             f"generator's faces; identity images below {reference['warn_below_db']:.1f} dB will be flagged "
             f"({reference['seconds']:.1f} s)")
    return manifest | {"domain_reference": reference}


def is_bundle(path: Path) -> bool:
    try:
        return json.loads((path / MANIFEST).read_text()).get("format") == BUNDLE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


# --------------------------------------------------------------------------------------------------
# The output directory


def check_output(out: Path, force: bool) -> None:
    """Refuse an output that exists and is not a directory, a non-empty one without `force`, and (even with
    `force`) a non-empty directory that is not an svgan bundle."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UserError(f"output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UserError(f"output directory {out} is not empty; pass --force to replace the bundle there")
        if not is_bundle(out):
            raise UserError(f"output directory {out} is not empty and holds no svgan bundle ({MANIFEST}); "
                            "refusing to replace it even with --force")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Staging:
    """A temporary directory beside `out` that becomes `out` on `commit()`, or is removed on any exit without it."""

    def __init__(self, out: Path, force: bool):
        self.out, self.force = Path(out), force
        self.out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.out)  # the staging directories of exports that were killed
        self.path = partial_path(self.out)
        self.path.mkdir()
        self.committed = False

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)
        if isinstance(exc, OSError) and (exc.filename is None or str(exc.filename).startswith(str(self.path))):
            # A write into the bundle failed (a full disk): name the bundle, not a file of the removed staging
            raise naming(exc, self.out) from None

    def commit(self) -> Path:
        """Rename the finished directory to `out` (replacing an empty directory, or a bundle when forced)."""
        check_output(self.out, self.force)  # again: something may have appeared while exporting
        old = None
        if self.out.is_dir():
            if any(self.out.iterdir()):
                old = self.out.parent / f".{self.out.name}.{os.getpid()}.old"
                os.rename(self.out, old)
            else:
                self.out.rmdir()
        try:
            os.rename(self.path, self.out)
        except BaseException:
            if old is not None and not self.out.exists():
                os.rename(old, self.out)
            raise
        self.committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out


# --------------------------------------------------------------------------------------------------
# The export


def normalise_batch_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """(16, 1, 8, 8) -> (1, 8, 16): positive, sorted, unique."""
    if not sizes or min(sizes) < 1:
        raise UserError(f"--batch-sizes must be positive integers, got {list(sizes)}")
    return tuple(sorted(set(int(s) for s in sizes)))


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import onnxscript
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "onnxscript": onnxscript.__version__, "python": platform.python_version()}


# A run trained with a state pool (svgan-train's default since session 13) is at its worst in its first second and
# better from one training window on (docs/long-horizon.md §3e, §4), so its bundles start streams that many G steps
# in unless told otherwise; the paper's model is best from its start.
POOL_BURN_IN = 25


def default_burn_in(meta: dict) -> int:
    """The burn-in a run's bundle gets when `--burn-in` is not given: one window for a run trained with a state
    pool, 0 for the paper's training (and for checkpoints that do not record how they were trained)."""
    return POOL_BURN_IN if meta.get("config", {}).get("pool_size", 0) else 0


def _load_inputs(run_dir: Path, psp_path: Path, progress: Progress):
    """The run's EMA generator + metadata and the pSp, with the consistency checks of issue 4."""
    from svgan.models import PCABasis, RunError, load_psp, load_run_generator
    from svgan.models.run import PCA_FILE as RUN_PCA

    generator, meta = load_run_generator(Path(run_dir), device="cpu")
    pca_path = Path(run_dir) / RUN_PCA
    if not pca_path.is_file():
        raise RunError(f"{run_dir} has no {RUN_PCA} (the PCA basis of its training codes)")
    pca = PCABasis.load(pca_path)
    progress(f"run {run_dir}: iteration {meta['iteration']}, {generator.config.n_styles} styles, fps {meta['fps']}")
    psp = load_psp(psp_path, device="cpu")
    c = generator.config
    if psp.n_styles != c.n_styles:
        res_g = 2 ** ((c.n_styles + 2) // 2)
        raise UserError(f"pSp checkpoint {psp_path} is for {psp.resolution}x{psp.resolution} images "
                        f"({psp.n_styles} styles) but run {run_dir} generates {c.n_styles}-style W+ codes "
                        f"({res_g}x{res_g}); export with the pSp its training codes came from")
    if psp.decoder.config.style_dim != c.style_dim:
        raise UserError(f"pSp checkpoint {psp_path} has {psp.decoder.config.style_dim}-d styles but run {run_dir} "
                        f"generates {c.style_dim}-d styles")
    if (pca.n_styles, pca.style_dim) != (c.n_styles, c.style_dim):
        raise RunError(f"{pca_path} is for {pca.n_styles}x{pca.style_dim} codes, the run's generator makes "
                       f"{c.n_styles}x{c.style_dim}")
    progress(f"pSp {psp_path}: {psp.resolution}x{psp.resolution}, {psp.n_styles} styles")
    return generator, meta, psp, pca_path


def export_bundle(run_dir: str | os.PathLike, psp_path: str | os.PathLike, out: str | os.PathLike, *,
                  fp16: bool = False, trt: bool = False, opset: int | None = None,
                  batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, truncation_psi: float = DEFAULT_TRUNCATION_PSI,
                  burn_in: int | None = None, force: bool = False, parity_batch: int | None = None,
                  torch_weights: bool = True, domain_samples: int = REFERENCE_SAMPLES,
                  progress: Progress = lambda message: None) -> dict[str, Any]:
    """Export run `run_dir` + pSp `psp_path` as a bundle at `out`; returns the manifest (also in `out/manifest.json`).

    `torch_weights=False` leaves out `weights.safetensors` (the torch backend's weights): smaller, ONNX/TensorRT only.
    `domain_samples` random faces measure the in-domain reconstruction PSNR (`domain_reference`, runtime/domain.py)
    that `svgan-stream --identity` judges images against; 0 leaves it out. `burn_in` is recorded for the runtime:
    G's steps from `init(i)` before a stream's first frame (None: `default_burn_in` of the run).

    Raises `UserError` (one line) for bad input, a failed parity check or a missing TensorRT; nothing is left
    under `out` unless the whole bundle was written.
    """
    import numpy as np
    import torch

    from . import fp16 as fp16_mod
    from . import onnx_graphs as og
    from . import parity as par

    start = time.perf_counter()
    run_dir, psp_path, out = Path(run_dir), Path(psp_path), Path(out)
    opset = og.DEFAULT_OPSET if opset is None else int(opset)
    if not og.MIN_OPSET <= opset <= og.MAX_OPSET:
        raise UserError(f"--opset {opset}: supported range is {og.MIN_OPSET}..{og.MAX_OPSET}")
    batch_sizes = normalise_batch_sizes(batch_sizes)
    check_output(out, force)
    trt_module = None
    if trt:
        from .tensorrt_build import import_tensorrt

        trt_module = import_tensorrt()
    if not 0 < truncation_psi <= 1:
        raise UserError(f"--truncation-psi must be in (0, 1], got {truncation_psi}")
    if domain_samples < 0:
        raise UserError(f"--domain-samples must be >= 0, got {domain_samples}")
    if burn_in is not None and burn_in < 0:
        raise UserError(f"--burn-in must be >= 0, got {burn_in}")

    generator, meta, psp, pca_path = _load_inputs(run_dir, psp_path, progress)
    if burn_in is None:
        burn_in = default_burn_in(meta)
    if burn_in:
        progress(f"burn-in: streams start {burn_in} G steps after init(i)")
    progress(f"hashing {psp_path.name} and {run_dir.name}/checkpoint.pt")
    psp_sha = sha256_file(psp_path)
    run_sha = sha256_file(run_dir / "checkpoint.pt")
    decoder = psp.decoder
    w_avg, w_avg_source = psp.latent_avg[0].detach().clone(), "pSp latent_avg, row 0"
    if not torch.any(w_avg != 0):  # a pSp trained without latent_avg: truncate toward the mapping's mean instead
        progress("the pSp checkpoint has no latent_avg: w_avg = mean of mapping(z) over 100000 z")
        with torch.no_grad():
            w_avg = decoder.mean_latent(100_000, generator=torch.Generator().manual_seed(0))[0]
        w_avg_source = "mean of mapping(z) over 100000 z ~ N(0, 1) (seed 0); the pSp checkpoint has no latent_avg"
    large = parity_batch or (2 if psp.resolution <= 512 else 1)

    specs = og.bundle_specs(generator, psp)
    graphs: dict[str, Any] = {}
    engines: dict[str, Any] = {}
    with Staging(out, force) as stage:
        # Parity inputs (seeded) and PyTorch's outputs on them, per graph; the encoder reuses synthesis's images.
        feeds: dict[str, tuple[torch.Tensor, ...]] = {}
        refs: dict[str, dict[str, np.ndarray]] = {}
        for index, spec in enumerate(specs, 1):
            tag = f"[{index}/{len(specs)}] {spec.name}"
            progress(f"{tag}: exporting")
            exported = og.export_graph(spec, stage.path, opset)
            progress(f"{tag}: exported in {exported.seconds:.1f} s, {exported.bytes / 1e6:.1f} MB; parity (onnxruntime "
                     "vs PyTorch)")
            feeds[spec.name], refs[spec.name] = _reference(spec, generator, decoder, psp, w_avg, refs, large)
            session = par.ort_session(exported.path)
            got, seconds = par.run_ort(session, {n: t.numpy() for n, t in zip(spec.input_names, feeds[spec.name])})
            del session
            image = "image" if spec.name == "synthesis" else None
            parity = par.compare_outputs(refs[spec.name], got, image_output=image)
            parity.update(batch=int(feeds[spec.name][0].shape[0]), provider=par.PROVIDER, ort_seconds=round(seconds, 4),
                          reference="PyTorch, modconv=reference (official maths)" if image else "PyTorch")
            if not parity["passed"]:
                raise UserError(f"{spec.name}: onnxruntime differs from PyTorch by {parity['max_abs_error']:.3g} "
                                f"> {par.FP32_BOUND:g}; no bundle written")
            message = f"{tag}: max abs error {parity['max_abs_error']:.2e}"
            if spec.name == "generator_step":
                progress(f"{tag}: {par.GRU_LOOP_STEPS}-step onnxruntime loop vs PyTorch unrolled")
                loop = par.gru_loop_parity(generator, stage.path / "generator_init.onnx", exported.path)
                parity["loop"] = loop
                if not loop["passed"]:
                    raise UserError(f"generator_step: the {loop['steps']}-step onnxruntime loop differs from PyTorch's "
                                    f"unrolled sequence by {loop['max_abs_error']:.3g}; no bundle written")
                message += f"; {loop['steps']}-step loop max abs error {loop['max_abs_error']:.2e}"
            entry: dict[str, Any] = {
                "file": exported.path.name, "sha256": sha256_file(exported.path), "dtype": GRAPH_DTYPE,
                "inputs": exported.inputs, "outputs": exported.outputs, "io_dtypes": exported.io_dtypes,
                "bytes": exported.bytes, "export_seconds": round(exported.seconds, 3), "parity": parity, "fp16": None}
            if exported.external_data:
                entry["external_data"] = {"file": exported.external_data,
                                          "sha256": sha256_file(stage.path / exported.external_data)}
            if fp16 and spec.name in fp16_mod.FP16_GRAPHS:
                entry["fp16"], parity["fp16"] = _fp16_variant(spec, exported.path, feeds[spec.name], refs[spec.name],
                                                               stage.path, progress, tag)
                if entry["fp16"]:
                    key = "psnr_db" if "psnr_db" in entry["fp16"] else "max_abs_error"
                    value = entry["fp16"][key]
                    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
                    message += f"; fp16 {'PSNR' if key == 'psnr_db' else 'max abs error'} {shown}" + (
                        " dB" if key == "psnr_db" else "")
            graphs[spec.name] = entry
            progress(message)
            gc.collect()

        with open(stage.path / PCA_FILE, "wb") as dst, open(pca_path, "rb") as src:
            shutil.copyfileobj(src, dst)
        np.save(stage.path / W_AVG_FILE, w_avg.numpy().astype(np.float32))
        files = {"pca": {"file": PCA_FILE, "sha256": sha256_file(stage.path / PCA_FILE)},
                 "w_avg": {"file": W_AVG_FILE, "sha256": sha256_file(stage.path / W_AVG_FILE),
                           "source": w_avg_source}}
        if torch_weights:
            files["torch_weights"] = _write_torch_weights(stage.path / TORCH_WEIGHTS_FILE, generator, psp, progress)

        if trt_module is not None:
            from .tensorrt_build import build_engine

            for index, (name, entry) in enumerate(graphs.items(), 1):
                progress(f"[{index}/{len(graphs)}] {name}: building TensorRT engine")
                use_fp16 = bool(entry["fp16"])
                engines[name] = build_engine(
                    stage.path / entry["file"], stage.path / f"{name}.engine", entry["inputs"], batch_sizes,
                    fp16=use_fp16, fp16_onnx_path=stage.path / entry["fp16"]["file"] if use_fp16 else None,
                    trt=trt_module)

        c = generator.config
        manifest = {
            "format": BUNDLE_FORMAT, "format_version": BUNDLE_FORMAT_VERSION, "svgan_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "resolution": psp.resolution, "encoder_input_size": psp.input_size,
            "n_styles": c.n_styles, "style_dim": c.style_dim,
            "latent_dim": c.latent_dim, "state_sizes": [c.hidden_dim] * (c.n_cells - 1) + [c.latent_dim],
            "fps": float(meta["fps"]), "opset": opset, "truncation_psi": float(truncation_psi),
            "burn_in": int(burn_in),
            "batch_sizes": list(batch_sizes),
            "graphs": graphs, "files": files, "engines": engines,
            # By name and sha256 only: a path of this machine means nothing where the bundle is used.
            "source": {"run": run_dir.resolve().name, "run_checkpoint_sha256": run_sha,
                       "run_iteration": int(meta["iteration"]),
                       "psp_checkpoint": psp_path.name, "psp_sha256": psp_sha},
            "export": {"exporter": "torch.onnx.export(dynamo=True) + onnxscript constant folding",
                       "parity_provider": par.PROVIDER, "versions": _versions()},
        }
        manifest = record_domain_reference(stage.path, manifest, domain_samples, progress)
        manifest["export"]["seconds"] = round(time.perf_counter() - start, 2)
        write_manifest(stage.path, manifest)
        stage.commit()
    progress(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return manifest


def _write_torch_weights(path: Path, generator, psp, progress: Progress) -> dict[str, Any]:
    """weights.safetensors for the torch backend; its manifest entry."""
    from svgan.models import save_torch_weights

    save_torch_weights(path, generator, psp)
    os.chmod(path, 0o666 & ~_umask())  # safetensors creates it 0600, unlike every other file of the bundle
    size = path.stat().st_size
    progress(f"torch weights: {path.name}, {size / 1e6:.1f} MB")
    return {"file": path.name, "sha256": sha256_file(path), "bytes": size,
            "holds": "G's EMA weights (generator.*) and pSp (psp.*: encoder, decoder, latent_avg) with their configs"}


def _reference(spec, generator, decoder, psp, w_avg, refs, large: int):
    """Seeded parity inputs for one graph and PyTorch's outputs on them."""
    import torch

    from . import onnx_graphs as og
    from . import parity as par

    c = generator.config
    small = 3
    if spec.name == "generator_init":  # the reference is the run's own generator, not the export view
        inputs = (torch.randn(small, c.latent_dim, generator=par.seeded(31)),)
        return inputs, og.torch_outputs(og.GeneratorInit.reference(generator), inputs, spec.output_names)
    if spec.name == "generator_step":
        with torch.no_grad():
            state, _ = generator.init(torch.randn(small, c.latent_dim, generator=par.seeded(32)))
        inputs = (torch.randn(small, c.latent_dim, generator=par.seeded(33)), *state)
        return inputs, og.torch_outputs(og.GeneratorStep.reference(generator), inputs, spec.output_names)
    if spec.name == "mapping":
        inputs = (torch.randn(small, decoder.config.style_dim, generator=par.seeded(34)),)
    elif spec.name == "synthesis":
        inputs = (par.wplus_inputs(decoder, w_avg, large),)
        return inputs, par.reference_synthesis(decoder, inputs[0])
    elif spec.name == "encoder":
        image = refs.get("synthesis", {}).get("image")
        if image is None:
            image = par.reference_synthesis(decoder, par.wplus_inputs(decoder, w_avg, large))["image"]
        inputs = (par.encoder_inputs(torch.from_numpy(image), psp.input_size),)
    else:  # pragma: no cover
        raise ValueError(spec.name)
    return inputs, og.torch_outputs(spec.module, inputs, spec.output_names)


def _fp16_variant(spec, fp32_path: Path, inputs, reference, directory: Path, progress: Progress, tag: str):
    """Write NAME_fp16.onnx, measure it against the fp32 PyTorch outputs; keep it only when within the bounds.
    Returns (manifest fp16 entry or None, parity record)."""
    from . import fp16 as fp16_mod
    from . import onnx_graphs as og
    from . import parity as par

    progress(f"{tag}: fp16 variant")
    path = directory / f"{fp16_mod.fp16_name(spec.name)}.onnx"
    fp16_mod.convert_to_fp16(fp32_path, path)
    og.check_onnx(path)
    try:
        session = par.ort_session(path)
        got, seconds = par.run_ort(session, {n: t.numpy() for n, t in zip(spec.input_names, inputs)})
        del session
    except Exception as e:  # onnxruntime's CPU provider lacks an fp16 kernel: say so, measure nothing
        path.unlink(missing_ok=True)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        progress(f"{tag}: fp16 variant dropped: onnxruntime (CPU) cannot run it, parity not measured ({reason})")
        return None, {"measured": False, "reason": f"onnxruntime CPU cannot run the fp16 graph: {reason}"}
    record = par.check_fp16(spec.name, reference, got)
    record.update(provider=par.PROVIDER, ort_seconds=round(seconds, 4), measured=True)
    if not record["passed"]:
        path.unlink()
        progress(f"{tag}: fp16 variant dropped: outside the parity bound ({record})")
        record["dropped"] = True
        return None, record
    entry = {"file": path.name, "sha256": sha256_file(path), "dtype": "float16", "io_dtype": GRAPH_DTYPE,
             "bytes": path.stat().st_size}
    entry.update({k: record[k] for k in ("psnr_db", "max_abs_error") if k in record})
    return entry, record
