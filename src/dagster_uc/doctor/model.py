"""What a doctor check reports, and how a list of reports is shown (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "warning", "failed", "skipped"]
STATUSES: tuple[Status, ...] = ("ok", "warning", "failed", "skipped")


@dataclass(frozen=True)
class CheckResult:
    """One line of `dagster-uc doctor`: a check's name, its verdict, and for a failure the fix."""

    name: str
    status: Status
    message: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "fix": self.fix,
        }
        if self.details:
            data["details"] = self.details
        return data


def ok(name: str, message: str, **details: Any) -> CheckResult:
    return CheckResult(name, "ok", message, details=details)


def warning(name: str, message: str, fix: str | None = None, **details: Any) -> CheckResult:
    return CheckResult(name, "warning", message, fix, details=details)


def failed(name: str, message: str, fix: str | None = None, **details: Any) -> CheckResult:
    return CheckResult(name, "failed", message, fix, details=details)


def skipped(name: str, because: str) -> CheckResult:
    return CheckResult(name, "skipped", f"not checked: {because}")


_FIX_SPLIT = re.compile(r";\s+(?=[a-z`])")


def split_fix(sentence: str) -> tuple[str, str | None]:
    """dagster-uc's errors read 'what is wrong; what to do.': split them into the two parts."""
    text = sentence.strip()
    parts = _FIX_SPLIT.split(text)
    if len(parts) < 2:
        return text.rstrip("."), None
    fix = parts[-1].rstrip(".")
    return "; ".join(parts[:-1]).rstrip("."), fix[:1].upper() + fix[1:] + "."


def from_error(name: str, exc: BaseException, fix: str | None = None) -> CheckResult:
    """A failed check from an exception whose message may carry its own fix."""
    message, own_fix = split_fix(str(exc) or type(exc).__name__)
    return failed(name, message, fix or own_fix)


def one_line(text: str) -> str:
    """A message as one line (YAML and API errors can span several)."""
    return " ".join(text.split())


def exit_code(results: list[CheckResult]) -> int:
    """0 when nothing a deploy needs failed (warnings and skips alone do not fail)."""
    return 1 if any(r.status == "failed" for r in results) else 0


def summary(results: list[CheckResult]) -> str:
    failures = [r.name for r in results if r.status == "failed"]
    warnings = [r.name for r in results if r.status == "warning"]
    if failures:
        return (
            f"{len(failures)} check(s) failed ({', '.join(failures)}): fix them before deploying."
        )
    if warnings:
        return f"Ready to deploy, with {len(warnings)} warning(s) ({', '.join(warnings)})."
    return "All checks passed: ready to deploy."


def render_text(results: list[CheckResult]) -> list[str]:
    """One line per check, `status  name  message`, and an indented `fix:` under failures."""
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        lines.append(f"{r.status:<8} {r.name:<{width}}  {one_line(r.message)}")
        if r.fix and r.status in ("failed", "warning"):
            indent = " " * (9 + width + 2)
            fix_lines = r.fix.splitlines()
            lines.append(f"{indent}fix: {fix_lines[0]}")
            lines.extend(f"{indent}     {line}" for line in fix_lines[1:])
    return lines


def to_json(results: list[CheckResult], **context: Any) -> dict[str, Any]:
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    return {
        "ok": exit_code(results) == 0,
        **context,
        "counts": counts,
        "checks": [r.to_json() for r in results],
    }
