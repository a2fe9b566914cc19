"""`python -m svgan.export.domain BUNDLE`: add (or renew) the in-domain reference of a bundle exported without it.

`svgan-export` records `domain_reference` itself; this is for bundles made before it did, such as the shipped
demo world's. It runs the bundle's own ONNX graphs (no torch, no training data) and rewrites only manifest.json,
atomically; the manifest is not among the sha256-checked files, so `--verify` still passes.
"""

from __future__ import annotations

from pathlib import Path

import click

from svgan.errors import one_line_errors
from svgan.runtime.bundle import load_bundle
from svgan.runtime.domain import REFERENCE_SAMPLES

from .bundle import record_domain_reference, write_manifest

TOOL = "svgan-export domain"


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("bundle_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--samples", default=REFERENCE_SAMPLES, type=click.IntRange(min=1),
              help="Random faces of the bundle's generator to re-encode (seed 0, as svgan-export).")
@one_line_errors(TOOL)
def main(bundle_dir: Path, samples: int) -> None:
    """Measure how well the bundle's pSp reconstructs its own generator's faces and record it in manifest.json."""
    bundle = load_bundle(bundle_dir, verify=True)
    manifest = record_domain_reference(bundle.path, bundle.manifest, samples,
                                       progress=lambda message: click.echo(f"{TOOL}: {message}", err=True))
    write_manifest(bundle.path, manifest)


if __name__ == "__main__":
    main()
