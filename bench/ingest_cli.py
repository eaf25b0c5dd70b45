"""`python -m bench ingest [options]`: run the ingest benchmark and record it."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import ingest, ingest_report, report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench ingest", description=ingest.__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measurement")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument(
        "--rounds", type=int, default=3, help="peak measurements per server (the median counts)"
    )
    parser.add_argument("--no-write", action="store_true", help=f"do not update {report.DOCS.name}")
    parser.add_argument("--keep", action="store_true", help="keep server logs and data")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy profiles into DIR")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="CADLINK_X=VALUE",
        help="run `cadlink serve` with a non-default setting (an experiment: not written)",
    )
    parser.add_argument(
        "--traffic",
        choices=("uniform", "varied"),
        default="uniform",
        help="wrk's visitors: one user agent from the loopback address (uniform), or each its "
        "own from 2,000 agents and 50,000 networks (varied; an experiment: not written)",
    )
    args = parser.parse_args(argv)
    settings: list[tuple[str, str]] = []
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("CADLINK_"):
            parser.error("--set takes CADLINK_NAME=VALUE")
        settings.append((key, value))
    opts = ingest.Options(
        seconds=args.seconds,
        connections=args.connections,
        rounds=max(1, args.rounds),
        profile_dir=args.profile,
        keep=args.keep,
        settings=tuple(settings),
        varied=args.traffic == "varied",
    )
    result = ingest.run(opts)
    print(ingest_report.render(result))
    if args.no_write or args.profile or settings or opts.varied:
        print(f"(an experiment: not written to {report.DOCS})")
    else:
        ingest_report.write(result)
        print(f"written to {report.DOCS}")


if __name__ == "__main__":
    main()
