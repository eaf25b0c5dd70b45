"""docs/benchmarks.md: one `## Name` section per benchmark; a run rewrites only the part of
its section between its result markers, so notes written by hand around them stay."""

from __future__ import annotations

import importlib.metadata
import platform
import re
import subprocess
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

_HEADER = """# Benchmarks

`make bench` runs every benchmark (`python -m bench`); `python -m bench NAME` runs one
(`python -m bench --help` lists them). Each benchmark rewrites its own results below, between
its `<!-- …:results -->` markers; the text around the markers is written by hand and stays.
Compare runs by the ratios, not the absolute numbers: the ratios are measured against a
reference in the same run on the same machine, so they travel between machines far better.
"""


def start_marker(name: str) -> str:
    return f"<!-- {name}:results:start -->"


def end_marker(name: str) -> str:
    return f"<!-- {name}:results:end -->"


def write_section(name: str, intro: str, results: str, path: Path = DOCS) -> None:
    """Replace the results of benchmark `name`; create its section (`intro`) if missing."""
    text = path.read_text() if path.exists() else _HEADER
    start, end = start_marker(name), end_marker(name)
    block = f"{start}\n{results.strip()}\n{end}"
    if start in text and end in text:
        pattern = re.escape(start) + r".*?" + re.escape(end)
        text = re.sub(pattern, lambda _: block, text, count=1, flags=re.DOTALL)
    else:
        text = text.rstrip() + "\n\n" + intro.strip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def versions(packages: tuple[str, ...]) -> str:
    found = [f"Python {platform.python_version()}"]
    for name in packages:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    return (
        (out.stdout or out.stderr).strip().splitlines()[0]
        if (out.stdout or out.stderr)
        else "unknown"
    )


def git_revision() -> str:
    root = DOCS.parent.parent
    rev = tool_version(["git", "-C", str(root), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return rev + (" with uncommitted changes" if dirty else "")
