"""The Typer app, its error handling, and what every command shares."""

from __future__ import annotations

import os
import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from kerasdojo import __version__
from kerasdojo.errors import DojoError

CONTEXT = {"help_option_names": ["-h", "--help"]}
RUNS_DIR = "runs"


class _DojoGroup(TyperGroup):
    """Turns DojoError into one line on stderr and its exit code."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DojoError as exc:
            if os.environ.get("KERASDOJO_DEBUG", "") not in ("", "0"):
                traceback.print_exc()
            typer.echo(exc.one_line(), err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_DojoGroup,
    name="kerasdojo",
    help="Train Keras agents on Gymnasium environments, run supervised baselines, watch it all in TensorBoard.",
    no_args_is_help=True,
    context_settings=CONTEXT,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kerasdojo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """kerasdojo: a terminal sandbox for training Keras agents."""


def choices(name: str, *values: str) -> Any:
    """A ``str`` Enum of ``values`` for a Typer option or argument with fixed choices."""
    return Enum(name, {v: v for v in values}, type=str)


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)  # a long line in a log stays one line


def warn(message: str) -> None:
    """A one-line warning on stderr."""
    typer.echo(message, err=True)


RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Parent folder of run directories.")]


def bare_flags(argv: list[str]) -> list[str]:
    """``--ray`` with no address (last, or followed by another option) means ``--ray local``."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--ray" and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append("local")
    return out


def main() -> None:
    """Console entry point."""
    sys.argv[1:] = bare_flags(sys.argv[1:])
    try:
        app()
    except DojoError as exc:  # raised outside a command (should not happen, but never show a traceback)
        typer.echo(exc.one_line(), err=True)
        sys.exit(exc.exit_code)
