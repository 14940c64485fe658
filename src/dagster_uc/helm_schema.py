"""Charts whose values schema refers to schemas on other hosts (Dagster's does).

Helm fetches every schema a chart's `values.schema.json` refers to before it checks a single
value; when one cannot be fetched (no network, a dead host) it refuses any values. These pure
helpers recognise that failure in Helm's words and strip such references from a chart copy, so
the rest of the schema can still be checked (see `Helm.template`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

#: Helm's words for values its chart's `values.schema.json` refused, or could not be compiled.
_SCHEMA_ERROR = "values don't meet the specifications of the schema"
#: What follows them when a schema the chart refers to could not be fetched: Helm 3 (gojsonschema)
#: says `Get "<url>": dial tcp ...` or `Could not read schema from HTTP, response status is 404`;
#: Helm 4 (santhosh-tekuri/jsonschema) says `failing loading "<url>": ...`.
_SCHEMA_FETCH_FAILURE = re.compile(
    r'Could not read schema from|failing loading "|Get "https?://|no such host', re.IGNORECASE
)
_URL = re.compile(r"https?://[^\s\"]+")


def is_schema_fetch_failure(message: str) -> bool:
    """True when Helm refused the values only because a referenced schema could not be fetched
    (no network, a dead schema host): the values themselves were never checked."""
    return _SCHEMA_ERROR in message and bool(_SCHEMA_FETCH_FAILURE.search(message))


def skipped_schema_warning(fetch_error: str, referenced: list[str]) -> str:
    """The one warning line shown when Helm goes on without the schema: it names the document
    from Helm's error (Helm 3 names none on a 404), else the ones the chart refers to."""
    found = _URL.search(fetch_error)
    where = found.group(0) if found else ", ".join(referenced) or "another schema"
    return (
        f"The chart's values schema refers to {where}, "
        "which could not be fetched; the values were checked against the rest of the "
        "schema and Helm runs with --skip-schema-validation."
    )


def external_refs(schema: Any) -> set[str]:
    """The documents (without `#fragment`) that the `$ref`s of a JSON schema point to."""
    if isinstance(schema, dict):
        found = set().union(*(external_refs(v) for v in schema.values()))
        ref = schema.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            found.add(ref.split("#", 1)[0])
        return found
    if isinstance(schema, list):
        return set().union(*(external_refs(item) for item in schema))
    return set()


def without_external_refs(schema: Any) -> Any:
    """A copy of a JSON schema with every `$ref` to another document removed (the local rules,
    `#/...` references included, stay), so it can be checked without network access."""
    if isinstance(schema, dict):
        return {
            key: without_external_refs(value)
            for key, value in schema.items()
            if not (key == "$ref" and isinstance(value, str) and not value.startswith("#"))
        }
    if isinstance(schema, list):
        return [without_external_refs(item) for item in schema]
    return schema


def drop_external_refs(chart_dir: Path) -> list[str]:
    """Rewrite every `values.schema.json` of an unpacked chart (subcharts too) without them;
    returns the documents they referred to."""
    referenced: set[str] = set()
    for schema_file in chart_dir.rglob("values.schema.json"):
        schema = json.loads(schema_file.read_text(encoding="utf-8"))
        referenced |= external_refs(schema)
        schema_file.write_text(json.dumps(without_external_refs(schema)), encoding="utf-8")
    return sorted(referenced)
