"""Click parameter types the command-line tools share."""

from __future__ import annotations

import ipaddress
import json
import math
import os
from pathlib import Path

import click

from svgan.atomic import atomic_write_text


def _require_writable_folder(kind: click.ParamType, path: Path, folder: Path,
                             param, ctx) -> None:  # type: ignore[no-untyped-def]
    """Refuse `path` (click's usage error) unless `folder`, where it will be written, is a writable folder."""
    folder = folder if str(folder) else Path(".")
    if not folder.is_dir():
        kind.fail(f"{path}: the folder {folder} does not exist", param, ctx)
    if not os.access(folder, os.W_OK | os.X_OK):
        kind.fail(f"{path}: the folder {folder} is not writable", param, ctx)


class OutputFile(click.Path):
    """A file the tool will write: refused before any work starts when its folder is missing or not writable,
    so that no run ends in an error after its work is done. "-" (stdout) passes when `allow_dash`."""

    def __init__(self, allow_dash: bool = False) -> None:
        super().__init__(dir_okay=False, path_type=Path, allow_dash=allow_dash)

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        path = super().convert(value, param, ctx)
        if str(path) == "-":
            return path
        _require_writable_folder(self, path, path.parent, param, ctx)
        return path


class OutputDir(click.Path):
    """A folder the tool will create or fill: refused before any work starts when it is a file, or when it (or,
    while it does not exist yet, its parent) is not a writable folder."""

    def __init__(self) -> None:
        super().__init__(file_okay=False, path_type=Path)

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        path = super().convert(value, param, ctx)
        _require_writable_folder(self, path, path if path.exists() else path.parent, param, ctx)
        return path


class IntList(click.ParamType):
    """Comma-separated integers in [min, max], e.g. "1,8,16" -> (1, 8, 16)."""

    name = "N,N,..."

    def __init__(self, min: int = 1, max: int | None = None) -> None:
        self.min, self.max = min, max

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(int(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"expected comma-separated integers, got {value!r}", param, ctx)
        if any(n < self.min or (self.max is not None and n > self.max) for n in numbers):
            bound = f"from {self.min} to {self.max}" if self.max is not None else f"at least {self.min}"
            self.fail(f"every number must be {bound}, got {value!r}", param, ctx)
        return numbers


class Device(click.ParamType):
    """A torch device name: cpu, cuda or cuda:N (checked for availability where it is used)."""

    name = "cpu|cuda|cuda:N"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        text = str(value)
        if text in ("cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
            return text
        self.fail(f"expected cpu, cuda or cuda:N, got {value!r}", param, ctx)


class HostName(click.ParamType):
    """An address to listen on: an IP address or a host name (letters, digits, dots and dashes)."""

    name = "HOST"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        text = str(value)
        try:
            ipaddress.ip_address(text)
            return text
        except ValueError:
            pass
        labels = text.split(".")
        if 0 < len(text) <= 253 and all(0 < len(label) <= 63 and label.replace("-", "").isalnum()
                                        and label.isascii() for label in labels):
            return text
        self.fail(f"expected an IP address or a host name, got {value!r}", param, ctx)


class FiniteRange(click.FloatRange):
    """click's FloatRange without nan and ±inf, which compare False with every bound and so slip through it."""

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class RayAddress(click.ParamType):
    """A Ray cluster's address as `ray.init` takes it: auto, host:port or ray://host:port (reached only later)."""

    name = "auto|HOST:PORT|ray://HOST:PORT"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        text = str(value)
        if text == "auto":
            return text
        host, colon, port = text.removeprefix("ray://").rpartition(":")
        if colon and port.isascii() and port.isdigit() and 0 < int(port) < 65536:
            HostName().convert(host.strip("[]"), param, ctx)
            return text
        self.fail(f"expected auto, HOST:PORT or ray://HOST:PORT, got {value!r}", param, ctx)


def write_summary(json_out: Path | None, summary: dict) -> None:
    """A tool's JSON summary: to stdout for "-", else to the file, atomically (a kill never leaves half a JSON)."""
    if json_out is None:
        return
    text = json.dumps(summary, indent=2)
    if str(json_out) == "-":
        click.echo(text)
    else:
        atomic_write_text(json_out, text + "\n")
