"""Sampling profiles of the server under load with py-spy (`pip install py-spy`).

`python -m bench ingest --profile DIR` records each measurement of `cadlink serve` into
DIR/<name>.txt (collapsed stacks, one line per distinct stack) and prints the hot spots.
py-spy costs the server some CPU, so profiled runs are not written to docs/benchmarks.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("bench: --profile needs py-spy: .venv/bin/pip install py-spy")
    return found


class Profiler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.exe = py_spy()
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: Path | None = None

    def start(self, pid: int, name: str, seconds: float) -> None:
        self._out = self.directory / (re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-") + ".txt")
        cmd = [self.exe, "record", "--pid", str(pid), "--duration", str(int(seconds))]
        cmd += [
            "--rate",
            "200",
            "--format",
            "raw",
            "--threads",
            "--nonblocking",
            "-o",
            str(self._out),
        ]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self._proc is None or self._out is None:
            return
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._out.exists():
            print(summarize(self._out), flush=True)
        self._proc = None


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def summarize(path: Path, top: int = 15) -> str:
    """Self and inclusive sample shares per function, and samples per thread."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = next((f for f in frames if f.startswith("thread ")), "thread ?")
        calls = [_short(f) for f in frames if not f.startswith(("thread ", "process "))]
        total += n
        threads[thread] += n
        if calls:
            own[calls[-1]] += n
        for fn in set(calls):
            incl[fn] += n
    if not total:
        return f"{path.name}: no samples"
    lines = [f"profile {path.name}: {total} samples (idle excluded)"]
    lines += [
        f"  thread {t.split('(')[-1].rstrip(')')}: {n / total:5.1%}"
        for t, n in threads.most_common()
    ]
    lines.append("  self time:")
    lines += [f"    {n / total:5.1%}  {fn}" for fn, n in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {n / total:5.1%}  {fn}" for fn, n in incl.most_common(top)]
    return "\n".join(lines)
