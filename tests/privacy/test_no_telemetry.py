"""Nothing about the dashboard API's requests leaves the server through OpenTelemetry.

FastAPI traces every request through OpenTelemetry's global tracer provider by default (the
span carries the path and the query string: site ids, filters). Without an SDK that is a
no-op; with a provider installed by anything else in the process, it would be exported. The
app turns FastAPI's telemetry off; a plain FastAPI app, as the control, is traced.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace

from cadlink_fixtures import Running


class _RecordingTracer(trace.NoOpTracer):
    def __init__(self, spans: list[str]) -> None:
        self.spans = spans

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        self.spans.append(name)
        return super().start_span(name, *args, **kwargs)


class _RecordingProvider(trace.TracerProvider):
    """A configured provider (as an SDK's would be) that notes each span started."""

    def __init__(self) -> None:
        self.spans: list[str] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _RecordingTracer(self.spans)


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[_RecordingProvider]:
    recording = _RecordingProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: recording)
    yield recording


def test_a_plain_fastapi_app_would_be_traced(provider: _RecordingProvider) -> None:
    control = FastAPI()

    @control.get("/api/v1/analytics/dashboard")
    def dashboard() -> dict[str, bool]:
        return {"success": True}

    with TestClient(control) as client:
        assert client.get("/api/v1/analytics/dashboard?siteId=s").status_code == 200
    assert provider.spans  # the method sees spans: the test below can fail


def test_the_dashboard_api_starts_no_span(provider: _RecordingProvider, running: Running) -> None:
    r = running.client.get(
        "/api/v1/analytics/dashboard", params={"siteId": running.site_id}, headers=running.auth
    )
    assert r.status_code == 200, r.text
    assert running.client.get("/api/health").status_code == 200
    assert provider.spans == []
