"""The typer application and the few helpers every command shares (error handling, output folders)."""
from __future__ import annotations

import datetime as _dt
import functools
import os
from pathlib import Path
from typing import Any, Callable

import typer

from linsim.errors import DivergenceError, LinsimError

app = typer.Typer(
    name="linsim",
    help="Executable theory of non-contrastive SSL: simulate, sweep, fixed points, spectral closed forms, metrics.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts use literal [brackets] (e.g. "[default: eta]", "linsim[dask]")
)

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


def fail(message: str) -> None:
    """Print one line to stderr and exit with code 2 (bad input)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def cli_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so a LinsimError becomes one stderr line + exit 2, a DivergenceError exit 3."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LinsimError as err:
            fail(str(err))
        except DivergenceError as err:
            typer.echo(f"diverged: {err}", err=True)
            raise typer.Exit(EXIT_DIVERGED) from None

    return wrapper


def default_out(kind: str) -> Path:
    """A fresh folder name under ./runs/ (``runs/<kind>-<UTC timestamp>-<pid>``)."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{kind}-{stamp}-{os.getpid()}"


def check_out(out: Path, force: bool) -> None:
    """Refuse to overwrite an existing non-empty output folder unless --force."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise LinsimError(f"output folder {out} already exists and is not empty (pass --force to replace it)")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="linsim")
