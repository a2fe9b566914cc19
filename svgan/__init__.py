"""svgan: StyleVideoGAN as software — train (svgan.training), export (svgan.export), stream (svgan.runtime).

The subpackages live in the repository's top-level folders (`models/`, `training/`, `export/`,
`runtime/`); `pyproject.toml` maps them under `svgan`.
"""

__version__ = "0.1.0"
