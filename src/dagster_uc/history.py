"""Deployment history kept beside the values document: records and never-reused tags.

Pure functions only. The history lives in the values ConfigMap under its own key; it is what
makes tags never reused (the highest tag per Dagster version and name) and what rollback reads
(the most recent records of each name).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from dagster_uc.versioning import split_version_tag, version_key

#: Records kept per deployed name: what `rollback` can go back to without `--to`.
HISTORY_LIMIT = 20
#: A name deleted longer ago than this keeps only its highest tags (no records).
FORGET_RECORDS_AFTER = dt.timedelta(days=30)


@dataclass(frozen=True)
class DeploymentRecord:
    """Who put which image of a deployment on the cluster, when, from which commit."""

    tag: str
    by: str
    at: str
    action: str = "deploy"
    commit: str | None = None
    branch: str | None = None
    cicd: bool = False

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> DeploymentRecord:
        return cls(
            tag=str(data.get("tag", "")),
            by=str(data.get("by", "")),
            at=str(data.get("at", "")),
            action=str(data.get("action", "deploy")),
            commit=data.get("commit"),
            branch=data.get("branch"),
            cicd=bool(data.get("cicd", False)),
        )


@dataclass
class DeploymentHistory:
    """Every tag ever used by one deployment name, and its most recent records."""

    tags: list[str] = field(default_factory=list)
    records: list[DeploymentRecord] = field(default_factory=list)

    def with_tag(self, tag: str) -> DeploymentHistory:
        tags = self.tags if tag in self.tags else [*self.tags, tag]
        return DeploymentHistory(tags=list(tags), records=list(self.records))

    def with_record(self, record: DeploymentRecord) -> DeploymentHistory:
        records = [*self.records, record][-HISTORY_LIMIT:]
        return DeploymentHistory(tags=self.with_tag(record.tag).tags, records=records)

    def previous_tag(self, current: str | None) -> str | None:
        """The tag deployed before `current`, from the records (rollback's default target)."""
        deployed = [r.tag for r in self.records if r.action != "delete"]
        seen_current = current is None
        for tag in reversed(deployed):
            if not seen_current:
                seen_current = tag == current
                continue
            if tag != current:
                return tag
        return None


def history_from_document(doc: dict[str, Any] | None) -> dict[str, DeploymentHistory]:
    result: dict[str, DeploymentHistory] = {}
    for name, data in ((doc or {}).get("deployments") or {}).items():
        data = data or {}
        result[str(name)] = DeploymentHistory(
            tags=[str(t) for t in data.get("tags") or []],
            records=[DeploymentRecord.from_mapping(r) for r in data.get("records") or []],
        )
    return result


def history_to_document(history: dict[str, DeploymentHistory]) -> dict[str, Any]:
    return {
        "deployments": {
            name: {
                "tags": list(h.tags),
                "records": [
                    {k: v for k, v in asdict(r).items() if v not in (None, False)}
                    for r in h.records
                ],
            }
            for name, h in sorted(history.items())
        }
    }


def highest_tags(tags: Iterable[str]) -> list[str]:
    """The highest `<version>-<N>` tag per Dagster version, oldest version first: all that
    `next_tag` needs to never hand a tag out twice. Other tags are left out."""
    highest: dict[str, tuple[int, str]] = {}
    for tag in tags:
        parts = split_version_tag(tag)
        if parts is not None and parts[1] >= highest.get(parts[0], (-1, ""))[0]:
            highest[parts[0]] = (parts[1], tag)
    return [highest[v][1] for v in sorted(highest, key=version_key)]


def compact_history(
    history: Mapping[str, DeploymentHistory],
    live_tags: Mapping[str, str | None],
    now: dt.datetime,
) -> dict[str, DeploymentHistory]:
    """The history with only what the guarantees need (pure; run before every write).

    - tags: the highest per Dagster version (never reused), plus those of the kept records
      and the tag deployed now (image prune protects them), and for a deployed name its last
      HISTORY_LIMIT reservations;
    - a deployed name (in `live_tags`, name -> current tag) keeps its last HISTORY_LIMIT
      records (rollback);
    - a deleted name keeps its last deploy and its delete (revive and image prune use them),
      and none once it was deleted more than FORGET_RECORDS_AFTER ago.
    """
    result: dict[str, DeploymentHistory] = {}
    for name, entry in history.items():
        live = name in live_tags
        if live:
            records = list(entry.records[-HISTORY_LIMIT:])
        else:
            records = _deleted_window(entry.records, now)
        wanted = {r.tag for r in records}
        if live:
            wanted.update(entry.tags[-HISTORY_LIMIT:])
        current = live_tags.get(name)
        if current:
            wanted.add(current)
        wanted.update(highest_tags([*entry.tags, *wanted]))
        tags = [t for t in dict.fromkeys([*entry.tags, *sorted(wanted)]) if t in wanted]
        if tags or records:
            result[name] = DeploymentHistory(tags=tags, records=records)
    return result


def _deleted_window(records: list[DeploymentRecord], now: dt.datetime) -> list[DeploymentRecord]:
    """The records kept for a name that is not deployed: its last deploy and what followed it
    (the delete), or none when that was long ago."""
    if not records:
        return []
    last = records[-1]
    at = _parse_at(last.at)
    if at is not None and now - at > FORGET_RECORDS_AFTER:
        return []
    deployed = next((r for r in reversed(records) if r.action != "delete"), None)
    return [r for r in (deployed, last) if r is not None] if deployed is not last else [last]


def _parse_at(text: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
