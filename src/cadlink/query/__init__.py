"""Meaning: report specs → plans (every decision, the site filter included) → dialect SQL."""
