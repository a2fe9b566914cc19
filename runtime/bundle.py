"""The exported bundle (`svgan-export` output, DESIGN §8), read with numpy alone.

A bundle is a directory: `manifest.json` describing every graph (file, sha256, inputs/outputs, parity
measured at export), the ONNX graphs `generator_init`, `generator_step`, `mapping`, `synthesis`,
`encoder`, optionally TensorRT engines, the PCA basis of the training codes (`pca.npz`), the W average
for truncation (`w_avg.npy`) and, unless exported without them, the torch backend's weights
(`weights.safetensors`, read by `runtime/torch_backend.py`). The manifest's `domain_reference` (absent in bundles
exported before it existed) is how well the bundle's pSp reconstructs its own faces (runtime/domain.py).

Format versions: 1 named the run and pSp checkpoint by absolute paths of the exporting machine and carried no
torch weights; 2 (this one) is self-contained. A version-1 bundle is refused with a one-line error that says to
re-export it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svgan.errors import UserError

BUNDLE_FORMAT = "svgan-bundle"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
GRAPHS = ("generator_init", "generator_step", "mapping", "synthesis", "encoder")


class BundleError(UserError):
    """A bundle that cannot be used (one line for the user)."""


@dataclass(frozen=True)
class PCA:
    """The offset trick's basis: mean mu [D] and orthonormal components U^T [k, D], D = n_styles * 512."""

    mean: np.ndarray
    components: np.ndarray


@dataclass
class Bundle:
    """An opened bundle. Every file is checked against its sha256 in the manifest the first time it is used
    (`checked`): a stream reads only the graphs it runs, about 1.2 GB of a 1024 bundle's 3.1 GB, and hashing runs
    at about 1.2 GB/s on one CPU core, so checking lazily costs a 1024 stream about one second instead of three
    (docs/NOTES.md, session 8). `verify` checks every file at once (`svgan-stream --verify`)."""

    path: Path
    manifest: dict[str, Any]
    _checked: set[str] = field(default_factory=set, repr=False, compare=False)

    @property
    def resolution(self) -> int:
        return int(self.manifest["resolution"])

    @property
    def n_styles(self) -> int:
        return int(self.manifest["n_styles"])

    @property
    def style_dim(self) -> int:
        return int(self.manifest["style_dim"])

    @property
    def latent_dim(self) -> int:
        return int(self.manifest["latent_dim"])

    @property
    def state_sizes(self) -> list[int]:
        return [int(n) for n in self.manifest["state_sizes"]]

    @property
    def fps(self) -> float:
        return float(self.manifest.get("fps", 25.0))

    @property
    def burn_in(self) -> int:
        """G's steps from `init(i)` before a stream's first frame (0 in bundles from before it existed)."""
        return int(self.manifest.get("burn_in", 0))

    @property
    def encoder_input_size(self) -> int:
        """Side of the aligned faces the encoder reads (256 for pSp's FFHQ encoder; bundles before it was recorded)."""
        return int(self.manifest.get("encoder_input_size", 256))

    @property
    def truncation_psi(self) -> float:
        return float(self.manifest.get("truncation_psi", 0.7))

    def checked(self, entry: dict[str, Any]) -> Path:
        """The file a manifest entry names, after (once per bundle) comparing its sha256 with the entry's."""
        name = entry["file"]
        if name not in self._checked:
            path = self.path / name
            if not path.is_file():
                raise BundleError(f"{self.path} is incomplete: {name} is missing")
            if sha256_file(path) != entry["sha256"]:
                raise BundleError(f"{self.path} is corrupt or modified: {name}: sha256 differs from the manifest")
            self._checked.add(name)
        return self.path / name

    def graph_file(self, name: str, fp16: bool = False) -> Path:
        entry = self.manifest["graphs"][name]
        if fp16:
            if not entry.get("fp16"):
                raise BundleError(f"{self.path} has no fp16 variant of {name}; export it with --fp16")
            entry = entry["fp16"]
        if entry.get("external_data"):
            self.checked(entry["external_data"])
        return self.checked(entry)

    def engine_file(self, name: str) -> Path:
        engines = self.manifest.get("engines") or {}
        if name not in engines:
            raise BundleError(f"{self.path} has no TensorRT engine for {name}; export it with --trt")
        return self.checked(engines[name])

    def pca(self) -> PCA:
        with np.load(self.checked(self.manifest["files"]["pca"]), allow_pickle=False) as d:
            return PCA(mean=d["mean"].astype(np.float32), components=d["components"].astype(np.float32))

    def torch_weights_file(self) -> Path:
        """weights.safetensors: what the torch backend runs."""
        entry = self.manifest["files"].get("torch_weights")
        if not entry:
            raise BundleError(f"{self.path} carries no torch weights (exported with --no-torch-weights); use "
                              "--backend ort, or re-export it without --no-torch-weights")
        return self.checked(entry)

    def w_avg(self) -> np.ndarray:
        return np.load(self.checked(self.manifest["files"]["w_avg"]), allow_pickle=False).astype(np.float32)

    def problems(self) -> list[str]:
        """Files missing or differing from their sha256 in the manifest (reads every byte: seconds at 1024)."""
        found = []
        for name, digest in manifest_files(self.manifest).items():
            path = self.path / name
            if not path.is_file():
                found.append(f"{name}: missing")
            elif sha256_file(path) != digest:
                found.append(f"{name}: sha256 differs from the manifest")
        return found

    def verify(self) -> None:
        problems = self.problems()
        if problems:
            raise BundleError(f"{self.path} is corrupt or modified: {problems[0]}"
                              + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def manifest_files(manifest: dict[str, Any]) -> dict[str, str]:
    """Every file the manifest names, with its sha256: graphs (their external data and fp16 variants),
    files (PCA, W average) and engines."""
    files: dict[str, str] = {}
    for entry in manifest["graphs"].values():
        for part in (entry, entry.get("external_data"), entry.get("fp16")):
            if part:
                files[part["file"]] = part["sha256"]
    for entry in (*manifest.get("files", {}).values(), *(manifest.get("engines") or {}).values()):
        files[entry["file"]] = entry["sha256"]
    return files


def load_bundle(path: str | os.PathLike, verify: bool = False) -> Bundle:
    """Open a bundle directory; every problem is a one-line `BundleError`."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"not an svgan bundle: {manifest_path} not found (make one with svgan-export)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{manifest_path} is not valid JSON: {e}") from None
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{manifest_path} is not an svgan bundle manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path} has bundle format version {manifest.get('format_version')}; this svgan reads "
                          f"version {FORMAT_VERSION}: re-export it with svgan-export")
    missing = [name for name in GRAPHS if name not in manifest.get("graphs", {})]
    if missing:
        raise BundleError(f"{manifest_path} lists no graph '{missing[0]}'")
    burn_in = manifest.get("burn_in", 0)
    if not isinstance(burn_in, int) or isinstance(burn_in, bool) or burn_in < 0:
        raise BundleError(f"{manifest_path}: burn_in must be a whole number of G steps >= 0, got {burn_in!r}")
    for name in manifest_files(manifest):
        if not (path / name).is_file():
            raise BundleError(f"{path} is incomplete: {name} is missing")
    bundle = Bundle(path=path, manifest=manifest)
    if verify:
        bundle.verify()
    return bundle
