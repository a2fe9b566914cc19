"""Errors meant for the user, the CLI wrapper that prints them as one line, and graceful Ctrl-C.

Every error caused by bad input (a missing or corrupt checkpoint, an image without a face, an unusable
video or run directory) derives from `UserError`; the command-line tools print its message as one line
and exit with status 1, never with a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

F = TypeVar("F", bound=Callable[..., object])


class UserError(ValueError):
    """Bad input; `str(error)` is one line for the user."""


def fail(tool: str, message: str, code: int = 1) -> NoReturn:
    print(f"{tool}: error: {message}", file=sys.stderr)
    sys.exit(code)


def one_line_errors(tool: str) -> Callable[[F], F]:
    """Decorate a CLI entry point: `UserError` and OS errors become `tool: error: ...`, exit 1; Ctrl-C exits 130."""

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def run(*args: object, **kwargs: object) -> object:
            try:
                return func(*args, **kwargs)
            except UserError as e:
                fail(tool, str(e))
            except OSError as e:
                fail(tool, f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
            except KeyboardInterrupt:
                fail(tool, "interrupted", code=130)

        return run  # type: ignore[return-value]

    return wrap


class StopFlag:
    """A SIGINT handler for long loops: the first Ctrl-C only sets the flag (the loop finishes its step,
    saves its work and ends); a second Ctrl-C raises KeyboardInterrupt at once. Stopping at a step boundary
    also keeps KeyboardInterrupt from firing inside native code (FFmpeg, onnxruntime, an optimiser step)."""

    def __init__(self, notice: Callable[[], None] = lambda: None) -> None:
        self.requested = False
        self.notice = notice

    def __call__(self) -> bool:
        return self.requested

    def handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.notice()
