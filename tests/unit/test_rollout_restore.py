"""Undoing a failed change (`rollout.reverted`) and retrying API reads (`kube_retry`)."""

from __future__ import annotations

import httpx2
import pytest

from dagster_uc.kube_retry import RetryingTransport, retry_after_s
from dagster_uc.rollout import reverted
from dagster_uc.state import StateSnapshot
from dagster_uc.values import DeploymentHistory, DeploymentRecord


def entry(name: str, tag: str) -> dict[str, object]:
    return {"name": name, "image": {"repository": f"r/{name}", "tag": tag}}


def record(tag: str) -> DeploymentRecord:
    return DeploymentRecord(tag=tag, by="dev@host", at="2024-01-01T00:00:00Z")


def snapshot(*entries: dict[str, object], **history: DeploymentHistory) -> StateSnapshot:
    return StateSnapshot(values={"deployments": list(entries), "keep": 1}, history=history)


BEFORE = snapshot(
    entry("a", "1.8.4-0"),
    entry("b", "1.8.4-3"),
    a=DeploymentHistory(tags=["1.8.4-0"], records=[record("1.8.4-0")]),
)
AFTER = snapshot(
    entry("a", "1.8.4-1"),
    entry("b", "1.8.4-3"),
    a=DeploymentHistory(
        tags=["1.8.4-0", "1.8.4-1"], records=[record("1.8.4-0"), record("1.8.4-1")]
    ),
)


def test_reverting_an_untouched_state_gives_the_state_before() -> None:
    restored = reverted(AFTER, BEFORE, AFTER)

    assert restored.values == BEFORE.values
    assert restored.history["a"].records == [record("1.8.4-0")]
    assert restored.history["a"].tags == ["1.8.4-0", "1.8.4-1"], "a tag is never handed out twice"


def test_reverting_keeps_what_others_changed_meanwhile() -> None:
    current = snapshot(
        entry("a", "1.8.4-1"),
        entry("b", "1.8.4-4"),
        entry("c", "1.8.4-0"),
        a=DeploymentHistory(
            tags=["1.8.4-0", "1.8.4-1", "1.8.4-2"], records=AFTER.history["a"].records
        ),
        c=DeploymentHistory(tags=["1.8.4-0"], records=[record("1.8.4-0")]),
    )

    restored = reverted(current, BEFORE, AFTER)

    assert restored.values["deployments"] == [
        entry("a", "1.8.4-0"),
        entry("b", "1.8.4-4"),
        entry("c", "1.8.4-0"),
    ]
    assert restored.values["keep"] == 1
    assert restored.history["a"].tags == ["1.8.4-0", "1.8.4-1", "1.8.4-2"]
    assert restored.history["a"].records == [record("1.8.4-0")]
    assert restored.history["c"] == current.history["c"]


def test_reverting_an_added_location_removes_it() -> None:
    added = snapshot(entry("a", "1.8.4-0"), entry("b", "1.8.4-3"), entry("new", "1.8.4-0"))
    current = snapshot(entry("a", "1.8.4-5"), entry("b", "1.8.4-3"), entry("new", "1.8.4-0"))

    restored = reverted(current, BEFORE, added)

    assert [e["name"] for e in restored.values["deployments"]] == ["a", "b"]


@pytest.mark.parametrize(
    ("header", "expected"), [(None, 0.2), ("1", 1.0), ("60", 3.0), ("soon", 0.2), ("-4", 0.0)]
)
def test_retry_after_is_honoured_within_a_cap(header: str | None, expected: float) -> None:
    assert retry_after_s(header, 0.2) == expected


def transport(answers: list[int | Exception]) -> tuple[RetryingTransport, list[str]]:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.method)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx2.Response(answer)

    return RetryingTransport(httpx2.MockTransport(handler), sleep=lambda _s: None), seen


def test_reads_are_retried_on_transient_failures() -> None:
    retrying, seen = transport([503, httpx2.ConnectError("refused"), 500, 200])
    with httpx2.Client(transport=retrying, base_url="http://api") as client:
        assert client.get("/api/v1/namespaces/x/configmaps/y").status_code == 200
    assert seen == ["GET"] * 4


def test_reads_give_up_after_a_few_attempts() -> None:
    retrying, seen = transport([503, 503, 503, 503, 200])
    with httpx2.Client(transport=retrying, base_url="http://api") as client:
        assert client.get("/x").status_code == 503
    assert len(seen) == 4


def test_writes_and_answers_that_mean_no_are_never_repeated() -> None:
    retrying, seen = transport([503, 404])
    with httpx2.Client(transport=retrying, base_url="http://api") as client:
        assert client.put("/x", content=b"{}").status_code == 503
        assert client.get("/x").status_code == 404
    assert seen == ["PUT", "GET"]
