"""`linsim figures`: regenerate the figures in figures/ from the recipes in experiments/.

A recipe is a file ``experiments/<name>.py`` defining ``make(out: Path) -> list[Path]``; it computes with the
library and writes ``<out>/<name>.png`` plus the data behind it, atomically.
"""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from linsim.cli._app import app, cli_command
from linsim.errors import LinsimError


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


def run_recipe(path: Path, out: Path) -> list[Path]:
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"linsim_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.make(out))


@app.command()
@cli_command
def figures(
    only: Optional[List[str]] = typer.Argument(None, help="recipe names to run [default: all]"),
    experiments: Optional[Path] = typer.Option(None, help="folder of recipes [default: ./experiments]"),
    out: Path = typer.Option(Path("figures"), help="where figures and their data are written"),
    list_only: bool = typer.Option(False, "--list", help="list the recipes and exit"),
) -> None:
    """Regenerate the papers' figures (each from a recipe in experiments/) into figures/."""
    folder = find_experiments(experiments)
    found = recipes(folder)
    if list_only:
        for name, path in found.items():
            doc = path.read_text().split('"""')[1].strip().splitlines()[0] if '"""' in path.read_text() else ""
            typer.echo(f"{name:<28} {doc}")
        return
    names = list(only) if only else list(found)
    unknown = [n for n in names if n not in found]
    if unknown:
        raise LinsimError(f"unknown figure recipe(s) {', '.join(unknown)}; available: {', '.join(found)}")
    for i, name in enumerate(names, 1):
        t0 = time.perf_counter()
        typer.echo(f"[{i}/{len(names)}] {name} ...", nl=False)
        try:
            written = run_recipe(found[name], out)
        except (LinsimError, SystemExit) as err:  # a recipe's own bad-input report (e.g. missing data)
            typer.echo("")
            raise LinsimError(f"figure recipe {name}: {str(err).removeprefix('error: ')}") from None
        except Exception as err:  # noqa: BLE001  (a broken recipe: say which, in one line)
            typer.echo("")
            typer.echo(f"error: figure recipe {name} failed: {type(err).__name__}: {err}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f" {time.perf_counter() - t0:.1f}s -> {', '.join(str(p) for p in written)}")
