"""Watches: plain, from a resourceVersion, with selectors, Helm 4's watch-list, timeouts."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

from stack.emulator import Emulator

from .conftest import cm

CMS = "/api/v1/namespaces/dagster/configmaps"


def read_events(
    http: httpx.Client, url: str, params: dict[str, Any], count: int, then: Any = None
) -> list[dict[str, Any]]:
    """Open a watch, run `then` (in a thread) once it is open, collect `count` events."""
    events: list[dict[str, Any]] = []
    with http.stream("GET", url, params={"watch": "1", "timeoutSeconds": "20", **params}) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/json"
        if then is not None:
            threading.Thread(target=then).start()
        for line in r.iter_lines():
            if line:
                events.append(json.loads(line))
            if len(events) >= count:
                break
    return events


def test_watch_from_resource_version_replays_changes(http: httpx.Client) -> None:
    start = http.get(CMS).json()["metadata"]["resourceVersion"]
    http.post(CMS, json=cm("w1"))
    http.patch(
        f"{CMS}/w1",
        json={"data": {"k": "2"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    http.delete(f"{CMS}/w1")
    events = read_events(http, CMS, {"resourceVersion": start}, 3)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[1]["object"]["data"] == {"k": "2"}
    assert events[0]["object"]["kind"] == "ConfigMap"
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(start)


def test_watch_without_resource_version_starts_with_current_state(http: httpx.Client) -> None:
    http.post(CMS, json=cm("existing"))
    events = read_events(http, CMS, {}, 3, then=lambda: http.post(CMS, json=cm("later")))
    names = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert ("ADDED", "existing") in names and ("ADDED", "later") in names


def test_field_selector_watch_sees_only_that_object(http: httpx.Client) -> None:
    start = http.get(CMS).json()["metadata"]["resourceVersion"]
    http.post(CMS, json=cm("other"))
    http.post(CMS, json=cm("target"))
    events = read_events(
        http, CMS, {"resourceVersion": start, "fieldSelector": "metadata.name=target"}, 1
    )
    assert [e["object"]["metadata"]["name"] for e in events] == ["target"]


def test_label_selector_watch_reports_objects_leaving_the_selection(http: httpx.Client) -> None:
    start = http.get(CMS).json()["metadata"]["resourceVersion"]
    http.post(CMS, json=cm("lab", labels={"sel": "yes"}))
    http.patch(
        f"{CMS}/lab",
        json={"metadata": {"labels": {"sel": "no"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    events = read_events(http, CMS, {"resourceVersion": start, "labelSelector": "sel=yes"}, 2)
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


def test_watch_list_sends_initial_events_then_bookmark(http: httpx.Client) -> None:
    http.post(CMS, json=cm("wl1"))
    params = {
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
    }
    current = len(http.get(CMS).json()["items"])
    events = read_events(http, CMS, params, current + 1)
    assert all(e["type"] == "ADDED" for e in events[:-1])
    bookmark = events[-1]
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(bookmark["object"]["metadata"]["resourceVersion"]) >= max(
        int(e["object"]["metadata"]["resourceVersion"]) for e in events[:-1]
    )


def test_watch_ends_after_timeout_seconds(http: httpx.Client) -> None:
    with http.stream(
        "GET",
        CMS,
        params={
            "watch": "true",
            "timeoutSeconds": "1",
            "resourceVersion": http.get(CMS).json()["metadata"]["resourceVersion"],
        },
    ) as r:
        body = r.read()
    assert body == b""


def test_watch_of_single_object_path(http: httpx.Client) -> None:
    start = http.get(CMS).json()["metadata"]["resourceVersion"]
    http.post(CMS, json=cm("one"))
    http.post(CMS, json=cm("two"))
    events = read_events(http, f"{CMS}/two", {"resourceVersion": start}, 1)
    assert events[0]["object"]["metadata"]["name"] == "two"


def test_stop_closes_open_watches(emu: Emulator) -> None:
    client = httpx.Client(base_url=emu.url, timeout=30, trust_env=False)
    lines: list[bytes] = []

    def watch() -> None:
        try:
            with client.stream("GET", CMS, params={"watch": "1"}) as r:
                for line in r.iter_lines():
                    lines.append(line.encode())
        except httpx.HTTPError:
            pass

    t = threading.Thread(target=watch)
    t.start()
    while not lines:
        t.join(0.02)
    emu.stop()
    t.join(30)
    assert not t.is_alive()
    client.close()
