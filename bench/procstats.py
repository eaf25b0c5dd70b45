"""CPU time and memory of a running process, read from /proc (Linux only)."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One reading: CPU seconds (user + system, all threads) and resident memory in MB (10^6)."""

    cpu_seconds: float
    rss_mb: float
    peak_rss_mb: float  # VmHWM: the high-water mark since the process started


def sample(pid: int) -> ProcSample:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces; the fields after its ')' are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    status = _status(pid)
    return ProcSample(
        cpu_seconds=(utime + stime) / _TICKS,
        rss_mb=status.get("VmRSS", 0) * 1024 / 1e6,
        peak_rss_mb=status.get("VmHWM", 0) * 1024 / 1e6,
    )


@dataclass(frozen=True, slots=True)
class CpuSplit:
    """CPU seconds of a server by where they were spent."""

    main: float  # the main thread: the event loop, i.e. the request path
    threads: float  # its other threads (cadlink: the loader, DuckDB's workers, fsync)
    children: float  # its child processes (cadlink: the enrichment process)
    # Times the scheduler took the core from the main thread while it could still run
    # (nonvoluntary context switches): how often the request path waits for a core.
    main_preempted: int = 0

    def __sub__(self, other: CpuSplit) -> CpuSplit:
        return CpuSplit(
            self.main - other.main,
            self.threads - other.threads,
            self.children - other.children,
            self.main_preempted - other.main_preempted,
        )


def _cpu(stat_path: Path) -> float:
    stat = stat_path.read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_split(pid: int) -> CpuSplit:
    """CPU seconds of `pid`'s main thread, its other threads and its live children."""
    main = threads = 0.0
    preempted = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            cpu = _cpu(task / "stat")
        except OSError:  # a thread that ended meanwhile
            continue
        if task.name == str(pid):
            main = cpu
            preempted = _status_value(task / "status", "nonvoluntary_ctxt_switches")
        else:
            threads += cpu
    kids = 0.0
    for child in children(pid):
        try:
            kids += _cpu(Path(f"/proc/{child}/stat"))
        except OSError:
            continue
    return CpuSplit(main, threads, kids, preempted)


def _status_value(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """Live child processes of `pid` (e.g. `cadlink serve`'s enrichment process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def tree_sample(pid: int) -> ProcSample:
    """`sample` summed over `pid` and its live children: CPU, RSS and peak RSS (the sum of
    each process's high-water mark, an upper bound of the tree's peak)."""
    total = sample(pid)
    for child in children(pid):
        try:
            part = sample(child)
        except OSError:
            continue
        total = ProcSample(
            total.cpu_seconds + part.cpu_seconds,
            total.rss_mb + part.rss_mb,
            total.peak_rss_mb + part.peak_rss_mb,
        )
    return total


def _status(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])  # kB
    return values


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": os.uname().release,
    }


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICKS  # guest time is already inside user


def children_cpu_seconds() -> float:
    """CPU seconds of our finished child processes (the load generators)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])
