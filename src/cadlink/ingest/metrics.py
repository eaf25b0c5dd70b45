"""Counters for the collect path: plain integers, read by the Prometheus collector on scrape.

Incrementing a dict entry costs tens of nanoseconds; a labelled prometheus_client counter
costs a lock and a lookup per call, which shows on a path meant to take a few microseconds.
"""

from __future__ import annotations

from collections import Counter


class IngestMetrics:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()  # by outcome: accepted, rejected, limited, ...
        self.events_accepted = 0
        self.events_rejected: Counter[str] = Counter()  # by reason
        self.events_dropped: Counter[str] = Counter()  # accepted but not stored on purpose (dnt)

    def reject(self, reason: str, events: int = 1) -> None:
        self.requests["rejected"] += 1
        self.events_rejected[reason] += events
