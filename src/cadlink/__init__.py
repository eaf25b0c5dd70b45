"""CADLINK Analytics: self-hosted, first-party, privacy-first analytics."""

__version__ = "0.1.0"
