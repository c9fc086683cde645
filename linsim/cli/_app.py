"""The typer application and the few helpers every command shares (error handling, exit statuses, output folders).

Exit statuses (one convention for every command; docs/outputs_and_errors.md):

==  ==========================================================================================
0   success (collapsed modes are a result, not a failure)
1   internal error (a bug: please report it) or, for ``linsim figures``, a recipe that failed
2   bad input: an invalid option or file, an output path that cannot be used, a run too large
    for the memory limit; nothing is computed and nothing is written
3   diverged: a state became non-finite or exceeded the divergence bound (simulate: the run or
    any seed of an ensemble; sweep: any grid point); the results up to then are written
4   incomplete: the solver stopped at ``max_steps`` before ``t_max`` (simulate, or any sweep
    point); the results up to then are written
5   the output could not be written (disk full, read-only file system, ...): nothing half-written
==  ==========================================================================================
"""
from __future__ import annotations

import datetime as _dt
import functools
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

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

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INCOMPLETE = 4
EXIT_WRITE_FAILED = 5


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    """Print one line to stderr and exit with ``code`` (default 2, bad input)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def describe_oserror(err: OSError) -> str:
    """One line for an OSError: what failed and where (``No space left on device: runs/x/trajectory.npz``)."""
    what = err.strerror or str(err) or type(err).__name__
    where = err.filename if err.filename is not None else None
    return f"{what}: {where}" if where else what


def cli_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command: LinsimError -> one stderr line + exit 2, DivergenceError -> exit 3, OSError (a write
    that failed: full disk, read-only file system) -> one line + exit 5. No traceback for any of them."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LinsimError as err:
            fail(str(err))
        except DivergenceError as err:
            typer.echo(f"diverged: {err}", err=True)
            raise typer.Exit(EXIT_DIVERGED) from None
        except OSError as err:
            fail(f"{describe_oserror(err)} (no file was half-written)", EXIT_WRITE_FAILED)

    return wrapper


def finish(status: str, out: Path | None, detail: str = "") -> None:
    """Exit with the status convention for a run that was written: 'diverged' -> 3, 'max_steps' -> 4, else return."""
    where = f" (results up to then are in {out})" if out is not None else ""
    if status == "diverged":
        typer.echo(f"diverged: {detail or 'a state became non-finite or exceeded the divergence bound'}{where}", err=True)
        raise typer.Exit(EXIT_DIVERGED)
    if status == "max_steps":
        typer.echo(f"incomplete: {detail or 'the solver stopped at max_steps before t_max'}{where}", err=True)
        raise typer.Exit(EXIT_INCOMPLETE)


def choices(text: str, options: Sequence[str]) -> str:
    """A help text that lists the accepted values: ``"<text> [choices: a, b, c]"``."""
    return f"{text} [choices: {', '.join(options)}]"


def default_out(kind: str) -> Path:
    """A fresh folder name under ./runs/ (``runs/<kind>-<UTC timestamp>-<pid>``)."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{kind}-{stamp}-{os.getpid()}"


def check_out(out: Path, force: bool, command: str = "run", owned: Iterable[str] = ()) -> None:
    """Before computing: refuse an unusable output folder (see :func:`linsim.io.prepare_out`; exit 2).

    A file, an ancestor that is a file, an unwritable place, a non-empty folder without ``--force``, or a
    folder holding files linsim did not write (even with ``--force``) are refused.
    """
    from linsim.io import prepare_out

    prepare_out(out, force, command, owned)


def fmt_value(x: Any, spec: str = ".4g") -> str:
    """``format(x, spec)`` for a table cell; None or NaN prints as ``-``."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="linsim")
