"""Deployment history kept beside the values document: records and never-reused tags.

Pure functions only. The history lives in the values ConfigMap under its own key; it is what
makes tags never reused (the highest tag per Dagster version and name) and what rollback reads
(the most recent records of each name).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

HISTORY_LIMIT = 20


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
