"""All-or-nothing outputs: a result is written under a temporary name beside its target and renamed into place.

A process killed at any moment (`kill -9`, a full disk, Ctrl-C) leaves either the previous file or the new one
under the final name, never half of one. The temporary is `.NAME.<pid>.partial` in the target's folder (same file
system, so the rename is atomic; hidden, and with a suffix no reader looks for). A killed writer cannot remove it,
so the next write of the same target removes every such temporary whose process is gone.

Disk errors while writing are re-raised as `OSError` naming the *target* (not the temporary), which
`svgan.errors.one_line_errors` prints as one line. Some writers swallow the `OSError` of a failed write and raise
an opaque error of their own instead (torch.save: "unexpected pos"), so the file object handed to the writer
records the first write error, and that error is the one raised.

Torch-free and numpy-free: the runtime uses it too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

PARTIAL_SUFFIX = ".partial"


def partial_path(target: str | os.PathLike[str]) -> Path:
    """This process's temporary name for `target`: `.NAME.<pid>.partial` beside it."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}{PARTIAL_SUFFIX}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_partials(target: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries of `target` (files or directories) left by processes that no longer run; returns
    them. A live writer's temporary is left alone, so two writers of one target never delete each other's work."""
    target = Path(target)
    prefix = f".{target.name}."
    removed = []
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        pid = entry.name[len(prefix):-len(PARTIAL_SUFFIX)]
        if not (entry.name.startswith(prefix) and entry.name.endswith(PARTIAL_SUFFIX) and pid.isdigit()):
            continue
        if int(pid) == os.getpid() or _process_alive(int(pid)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def naming(error: OSError, target: str | os.PathLike[str]) -> OSError:
    """`error` as an OSError that names `target` (what the user asked for), keeping its errno."""
    return OSError(error.errno, error.strerror or str(error), os.fspath(target))


class _RecordingFile:
    """A binary file that remembers the first OSError of a write, for writers that swallow it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self._raw.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def __getattr__(self, name: str) -> object:  # flush, tell, seek, ...: as the real file
        return getattr(self._raw, name)


@contextlib.contextmanager
def atomic_output(target: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file to write `target`'s content to; it becomes `target` only when the block ends without error.

    On any error (or a kill) `target` is untouched; an OSError of the write is re-raised naming `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target)
    tmp = partial_path(target)
    try:
        try:
            with open(tmp, "wb") as raw:
                file = _RecordingFile(raw)
                try:
                    yield file  # type: ignore[misc]
                except Exception as e:
                    if file.error is not None and not isinstance(e, OSError):
                        raise naming(file.error, target) from None
                    raise
        except OSError as e:  # a write, or the close's final flush, or opening the temporary
            raise naming(e, target) from None
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(target: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Write `target` atomically with `write(file)`; returns `target` as a Path."""
    with atomic_output(target) as f:
        write(f)
    return Path(target)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write `text` (UTF-8) to `target` atomically."""
    return atomic_write(target, lambda f: f.write(text.encode()))
