"""Click parameter types the command-line tools share."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from svgan.atomic import atomic_write_text


class OutputFile(click.Path):
    """A file the tool will write: refused before any work starts when its folder is missing or not writable,
    so that no run ends in an error after its work is done. "-" (stdout) passes when `allow_dash`."""

    def __init__(self, allow_dash: bool = False) -> None:
        super().__init__(dir_okay=False, path_type=Path, allow_dash=allow_dash)

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        path = super().convert(value, param, ctx)
        if str(path) == "-":
            return path
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            self.fail(f"{path}: the folder {folder} does not exist", param, ctx)
        if not os.access(folder, os.W_OK | os.X_OK):
            self.fail(f"{path}: the folder {folder} is not writable", param, ctx)
        return path


def write_summary(json_out: Path | None, summary: dict) -> None:
    """A tool's JSON summary: to stdout for "-", else to the file, atomically (a kill never leaves half a JSON)."""
    if json_out is None:
        return
    text = json.dumps(summary, indent=2)
    if str(json_out) == "-":
        click.echo(text)
    else:
        atomic_write_text(json_out, text + "\n")
