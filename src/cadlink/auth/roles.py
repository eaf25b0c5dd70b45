"""Roles, from most to least powerful."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """ADMIN manages users and sites; ANALYST reads and exports data; VIEWER only reads."""

    ADMIN = "ADMIN"
    ANALYST = "ANALYST"
    VIEWER = "VIEWER"
