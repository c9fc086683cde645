"""`linsim figures`: regenerate the figures in figures/ from the recipes in experiments/.

A recipe is a file ``experiments/<name>.py`` defining ``make(out: Path) -> list[Path]``; it computes with the
library and writes ``<out>/<name>.png`` plus the data behind it, atomically. Every requested recipe runs: a
failing one is reported in one line and the others still run; the exit status is 1 if any failed.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
import traceback
from pathlib import Path
from typing import List, Optional

import typer

from linsim.cli._app import app, cli_command
from linsim.errors import LinsimError

EXIT_RECIPE_FAILED = 1


def find_experiments(folder: Optional[Path]) -> Path:
    """The experiments folder: the given one, ./experiments, or the one beside the installed package."""
    candidates = [folder] if folder is not None else [Path.cwd() / "experiments", Path(__file__).resolve().parents[2] / "experiments"]
    for c in candidates:
        if c is not None and c.is_dir():
            return c
    raise LinsimError(f"no experiments folder found (looked in {', '.join(str(c) for c in candidates)}); pass --experiments")


def recipes(folder: Path) -> dict[str, Path]:
    """name -> path of every recipe (files not starting with '_' that define make())."""
    out = {}
    for path in sorted(folder.glob("*.py")):
        if not path.name.startswith("_") and "def make(" in path.read_text():
            out[path.stem] = path
    return out


def summary_line(path: Path) -> str:
    """The first line of a recipe's module docstring (what ``--list`` prints)."""
    text = path.read_text()
    return text.split('"""')[1].strip().splitlines()[0] if text.count('"""') >= 2 else ""


def run_recipe(path: Path, out: Path) -> list[Path]:
    """Import ``path`` as a module and call its ``make(out)``; returns the files it wrote."""
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"linsim_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.make(out))


def check_writable(out: Path) -> None:
    """Create ``out`` if needed and check that files can be written there, before any recipe computes."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LinsimError(f"cannot create output folder {out}: {err.strerror or err}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise LinsimError(f"output folder {out} is not writable")


def failure_reason(err: BaseException) -> str:
    """One line saying why a recipe failed: its own message for bad input, else the exception type and text."""
    if isinstance(err, (LinsimError, SystemExit)):
        return str(err).removeprefix("error: ")
    where = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    loc = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(err).__name__}: {err}{loc}".replace("\n", " ")


@app.command()
@cli_command
def figures(
    only: Optional[List[str]] = typer.Argument(None, help="recipe names to run [default: all]"),
    experiments: Optional[Path] = typer.Option(None, help="folder of recipes [default: ./experiments]"),
    out: Path = typer.Option(Path("figures"), help="where figures and their data are written"),
    list_only: bool = typer.Option(False, "--list", help="list the recipes and exit"),
) -> None:
    """Regenerate the figures in figures/ (one recipe each in experiments/); see docs/benchmarks.md for timings.

    Every recipe runs even if another fails; each prints its wall-clock and CPU time, and the run ends with the
    totals and the names of any failed recipes. Exit status: 0 all written, 1 some recipe failed, 2 bad arguments.
    """
    folder = find_experiments(experiments)
    found = recipes(folder)
    if list_only:
        for name, path in found.items():
            typer.echo(f"{name:<28} {summary_line(path)}")
        return
    names = list(dict.fromkeys(only)) if only else list(found)
    unknown = [n for n in names if n not in found]
    if unknown:
        raise LinsimError(f"unknown figure recipe(s) {', '.join(unknown)}; available: {', '.join(found)}")
    check_writable(out)
    failed: dict[str, str] = {}
    t_start, c_start = time.perf_counter(), time.process_time()
    for i, name in enumerate(names, 1):
        t0, c0 = time.perf_counter(), time.process_time()
        typer.echo(f"[{i}/{len(names)}] {name} ...", nl=False)
        try:
            written = run_recipe(found[name], out)
        except KeyboardInterrupt:
            typer.echo("")
            raise
        except BaseException as err:  # noqa: BLE001  (any failure of one recipe is reported; the rest still run)
            failed[name] = failure_reason(err)
            typer.echo(f" FAILED after {time.perf_counter() - t0:.1f}s")
            typer.echo(f"error: figure recipe {name} failed: {failed[name]}", err=True)
            continue
        typer.echo(f" {time.perf_counter() - t0:.1f}s wall, {time.process_time() - c0:.1f}s CPU -> "
                   f"{', '.join(str(p) for p in written)}")
    total, cpu = time.perf_counter() - t_start, time.process_time() - c_start
    ok = len(names) - len(failed)
    typer.echo(f"{ok} of {len(names)} recipes written to {out} in {total:.1f}s wall clock, {cpu:.1f}s CPU "
               f"(all threads of this process; wall > CPU means the machine was busy)")
    if failed:
        typer.echo(f"error: {len(failed)} recipe(s) failed: {', '.join(failed)}", err=True)
        raise typer.Exit(EXIT_RECIPE_FAILED)
