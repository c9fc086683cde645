"""The repository stands on its own: data ships inside the package, nothing points at material outside the
repository, and no test skips (for want of data or anything else)."""
from __future__ import annotations

import re
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np

from linsim.data import LI2022_FILE, LI2022_PERCENTS, li2022_file, li2022_spectra

REPO = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", "__pycache__", "runs", "build", "dist", ".hypothesis", ".pytest_cache", ".venv", "wheels"}
# Built from pieces so that this file does not match itself: a sibling folder of team notes, their name and
# their section codes (also as bytes, because `git grep` searches binary files too).
OUTSIDE = re.compile(b"shared" + b"/" + b"|theory" + b" note|sec" + b" [0-9]|\xc2\xa7" + b"[0-9]")


def repo_files() -> list[Path]:
    """Tracked files (``git ls-files``), or every file under the repository when it is not a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
        return [REPO / p for p in out.decode().split("\0") if p and (REPO / p).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [p for p in REPO.rglob("*") if p.is_file() and not (set(p.relative_to(REPO).parts) & SKIP_DIRS)]


def test_no_file_points_outside_the_repository():
    offenders = []
    for path in repo_files():
        m = OUTSIDE.search(path.read_bytes())
        if m:
            offenders.append(f"{path.relative_to(REPO)}: {m.group(0)!r}")
    assert not offenders, "files referring to material outside the repository:\n" + "\n".join(offenders)


def test_li2022_spectra_ship_with_the_package_and_their_licence():
    spectra = li2022_spectra()
    assert list(spectra) == [str(p) for p in LI2022_PERCENTS]
    for sv in spectra.values():
        assert sv.shape == (512,) and np.all(np.diff(sv) <= 0) and sv[0] > 0  # descending singular values
    folder = resources.files("linsim.data").joinpath("li2022")
    assert "MIT License" in folder.joinpath("LICENSE").read_text()
    assert "Li, Efros" in folder.joinpath("README.md").read_text()
    assert li2022_file().name == LI2022_FILE
    # the build ships them: they are listed as package data
    assert "li2022/*.npz" in (REPO / "pyproject.toml").read_text()


def test_no_test_skips():
    pattern = re.compile(r"pytest\.skip\(|mark\.skip|skipif\(|importorskip\(|mark\.xfail")
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "tests").rglob("*.py")
        if p.name != Path(__file__).name and pattern.search(p.read_text())
    ]
    assert not offenders, f"tests that can skip: {offenders}"


def test_links_in_readme_and_docs_resolve():
    """Every relative link or image in README.md and docs/*.md points at a file of the repository."""
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    missing = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in link.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                missing.append(f"{page.relative_to(REPO)} -> {target}")
    assert not missing, "broken links:\n" + "\n".join(missing)


def test_python_m_linsim_data_prints_the_shipped_file():
    import sys

    out = subprocess.run([sys.executable, "-m", "linsim.data"], capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out) == li2022_file() and Path(out).is_file()
