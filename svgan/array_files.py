"""Reading the .npy / .npz files a user hands to svgan: never a pickle, and every way the bytes can be wrong
(empty, truncated, not an archive, an archive of something else) one `UserError` line naming the file."""

from __future__ import annotations

import os

import numpy as np

from svgan.errors import UserError


NPY_MAGIC, ZIP_MAGIC = b"\x93NUMPY", (b"PK\x03\x04", b"PK\x05\x06")


def _read(path: str | os.PathLike, what: str) -> object:
    try:
        with open(path, "rb") as f:
            head = f.read(6)
        # Checked here because numpy takes any other bytes for a pickle and says so, which misleads.
        if not head.startswith((NPY_MAGIC, *ZIP_MAGIC)):
            raise UserError(f"cannot read {what} {path}: not an .npy or .npz file")
        return np.load(path, allow_pickle=False)
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a folder, not a file") from None
    except Exception as e:  # noqa: BLE001 - numpy's parsers fail on garbage with EOFError, ValueError, zip errors...
        raise UserError(f"cannot read {what} {path}: {_reason(e)}") from None


def _reason(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error).strip() else type(error).__name__


def read_npz(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    """Every array of an .npz archive, loaded (an .npy or anything else is refused)."""
    archive = _read(path, what)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UserError(f"{path} is not an .npz archive (the {what} is one)")
    try:
        with archive:
            return {name: archive[name] for name in archive.files}
    except Exception as e:  # noqa: BLE001 - a member can be corrupt while the archive's index is fine
        raise UserError(f"cannot read {what} {path}: {_reason(e)}") from None


def read_npy(path: str | os.PathLike, what: str) -> np.ndarray:
    """The single array of an .npy file (an .npz archive is refused)."""
    array = _read(path, what)
    if not isinstance(array, np.ndarray):
        if hasattr(array, "close"):
            array.close()
        raise UserError(f"{path} is not a single array (.npy); the {what} is one")
    return array
