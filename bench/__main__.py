"""`python -m bench` runs every benchmark with its defaults; `python -m bench NAME [options]`
runs one (`python -m bench NAME --help` for its options). Results go to docs/benchmarks.md.

A benchmark is a module with `main(argv: list[str] | None)`; register it in BENCHMARKS.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS: dict[str, str] = {
    "ingest": "bench.ingest_cli",  # collect API under load vs bare ASGI (~2.5 min)
    "query": "bench.query",  # dashboard reports on N demo events vs hand-written SQL
    "render": "bench.dashboard_render",  # overview in Chromium vs pre-loaded API answers
    "queue": "bench.queue",  # Redis queue -> PostgreSQL by workers vs a spool loader (~1 min)
}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks: " + ", ".join(BENCHMARKS))
        return
    if args and not args[0].startswith("-"):
        name, rest = args[0], args[1:]
        if name not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
        importlib.import_module(BENCHMARKS[name]).main(rest)
        return
    if args:
        raise SystemExit("options belong to one benchmark: python -m bench NAME [options]")
    for name, module in BENCHMARKS.items():
        print(f"== bench {name}", flush=True)
        importlib.import_module(module).main([])


if __name__ == "__main__":
    main()
