"""Docs are part of the product: every setting and command is documented."""

from __future__ import annotations

from pathlib import Path

from cadlink.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented_with_its_default() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    rows = {
        line.split("|")[1].strip(" `"): line
        for line in doc.splitlines()
        if line.startswith("| `CADLINK_")
    }
    for name, field in Settings.model_fields.items():
        env = f"CADLINK_{name.upper()}"
        assert env in rows, f"{env} is not in docs/configuration.md"
        default = field.default
        # A boolean is documented as its environment value is written: `true`, `false`.
        shown = str(default).lower() if isinstance(default, bool) else default
        if isinstance(default, (int, float, str)) and default not in ("",) and name != "secret_key":
            assert f"`{shown}`" in rows[env], f"{env}: default {default!r} not documented"
    documented = set(rows)
    declared = {f"CADLINK_{n.upper()}" for n in Settings.model_fields}
    assert documented == declared, documented ^ declared


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:]]
    assert [c for c in commands if c] == ["make run", "make test"]


def test_docs_exist() -> None:
    for name in (
        "architecture.md", "configuration.md", "benchmarks.md", "privacy.md", "api.md",
        "deployment.md",
    ):  # fmt: skip
        assert (ROOT / "docs" / name).stat().st_size > 500, name
