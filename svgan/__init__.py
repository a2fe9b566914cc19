"""svgan: StyleVideoGAN as software — train (svgan.training), export (svgan.export), stream (svgan.runtime).

The subpackages live in the repository's top-level folders (`models/`, `training/`, `export/`, `runtime/`,
and above them `world/`, the demo world, and `bench/`, the benchmark drivers); `pyproject.toml` maps them
under `svgan`. The demo world's trained bundle and unseen actor ship as package data in `svgan/demo_world/`,
so `svgan-stream` and `make demo` work without arguments.
"""

from pathlib import Path

__version__ = "0.1.0"

DEMO_WORLD = Path(__file__).resolve().parent / "demo_world"
