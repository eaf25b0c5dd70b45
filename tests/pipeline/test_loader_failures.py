"""A loader whose store or queue is down logs the first failure with its traceback, then a line
a minute, and says when loading works again: not a traceback every second for an hour."""

from __future__ import annotations

import logging

import pytest

from cadlink.pipeline.loader import Failures


def test_a_run_of_failures_is_logged_once_then_summarised(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = Failures()
    with caplog.at_level(logging.INFO, logger="cadlink.pipeline.loader"):
        for _ in range(50):
            try:
                raise ConnectionError("queue unreachable")
            except ConnectionError as e:
                failures.failed(e)
    records = [r for r in caplog.records if r.name == "cadlink.pipeline.loader"]
    assert len(records) == 1  # fifty failures within a minute: one line
    assert records[0].exc_info is not None and "failed" in records[0].getMessage()
    caplog.clear()

    monkeypatch.setattr(Failures, "EVERY", 0.0)  # a minute later
    failures.failed(ConnectionError("queue unreachable"))
    assert "still failing (51 in" in caplog.text and "queue unreachable" in caplog.text
    caplog.clear()

    failures.recovered()
    assert "works again after 51 failed batches" in caplog.text
    caplog.clear()
    failures.recovered()  # nothing was failing: nothing to say
    assert caplog.text == ""
