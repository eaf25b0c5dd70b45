"""Fixtures of the dashboard's browser tests; they live in dashboard_harness.py with helpers."""

from dashboard_harness import browser, context, dashboard, page

__all__ = ["browser", "context", "dashboard", "page"]
