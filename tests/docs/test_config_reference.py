"""docs/configuration.md's key reference is generated from the config model and kept in step."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from dagster_uc.config import Config

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"


def generator():
    spec = importlib.util.spec_from_file_location(
        "gen_config_docs", ROOT / "scripts/gen_config_docs.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_config_docs"] = module
    spec.loader.exec_module(module)
    return module


def test_page_is_current_with_the_model() -> None:
    assert generator().main(["--check"]) == 0, (
        "docs/configuration.md is stale: run `python scripts/gen_config_docs.py`"
    )


def test_every_key_has_a_row_with_its_description() -> None:
    page = PAGE.read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| [^|]+ \| (.*) \|$", page, flags=re.M))
    assert set(rows) == set(Config.model_fields)
    for name, field in Config.model_fields.items():
        assert field.description, f"config key {name} has no description"
        assert rows[name].startswith(field.description.replace("|", "\\|"))


def test_check_fails_when_the_model_changes(tmp_path: Path, monkeypatch) -> None:
    gen = generator()
    stale = tmp_path / "configuration.md"
    stale.write_text(PAGE.read_text(encoding="utf-8").replace("| `namespace` |", "| `nmspace` |"))
    monkeypatch.setattr(gen, "PAGE", stale)
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0
    assert stale.read_text() == PAGE.read_text(encoding="utf-8")


def test_types_and_defaults_read_naturally() -> None:
    page = PAGE.read_text(encoding="utf-8")
    assert "| `namespace` | text | **required** |" in page
    assert "| `cicd` | boolean | `false` |" in page
    assert "| `dagster_gui_url` | text or none | none |" in page
    assert (
        "| `image_pull_policy` | one of `IfNotPresent`, `Always`, `Never` | `IfNotPresent` |"
        in page
    )
    assert "| `deploy_lock_lease_seconds` | integer | `30` |" in page
