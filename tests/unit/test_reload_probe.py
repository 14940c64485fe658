"""The pure parts of the webserver reload: where Dagster listens in its pod, what the in-pod
program's answer means, and which locations a workspace document names."""

from __future__ import annotations

import json

import pytest

from dagster_uc.reload import PROBE, parse_probe, webserver_url, workspace_locations
from dagster_uc.workspace import workspace_document


@pytest.mark.parametrize(
    ("argv", "url", "workspace"),
    [
        (  # Dagster's chart
            [
                "/bin/bash",
                "-c",
                "dagster-webserver -h 0.0.0.0 -p 80 -w /dagster-workspace/workspace.yaml",
            ],
            "http://127.0.0.1:80/graphql",
            "/dagster-workspace/workspace.yaml",
        ),
        (  # the chart with dagsterWebserver.pathPrefix and a read-only webserver
            [
                "/bin/bash",
                "-c",
                "dagster-webserver -h 0.0.0.0 -p 8080 -w /ws/workspace.yaml --path-prefix /dagster/ --read-only",
            ],
            "http://127.0.0.1:8080/dagster/graphql",
            "/ws/workspace.yaml",
        ),
        (  # argument list, long options with '=', Dagster's defaults
            ["dagster-webserver", "--port=3001", "--workspace=/w.yaml"],
            "http://127.0.0.1:3001/graphql",
            "/w.yaml",
        ),
        (
            ["dagster-webserver"],
            "http://127.0.0.1:3000/graphql",
            "/dagster-workspace/workspace.yaml",
        ),
    ],
)
def test_webserver_url_from_the_container_command(
    argv: list[str], url: str, workspace: str
) -> None:
    assert webserver_url(argv) == (url, workspace)


def test_workspace_locations_are_the_ui_names_of_the_generated_document() -> None:
    values = {"deployments": [{"name": "proj--feat-a"}, {"name": "proj--feat-b", "port": 4000}]}
    assert workspace_locations(workspace_document(values)) == ["proj:feat-a", "proj:feat-b"]
    assert workspace_locations({"load_from": None}) == []


def _answer(**fields: object) -> str:
    return "some warning on stdout\n" + json.dumps(fields) + "\n"


def test_a_workspace_answer_lists_locations_and_load_errors() -> None:
    probe = parse_probe(
        _answer(
            file=["a", "b"],
            reloaded=True,
            workspace={
                "__typename": "Workspace",
                "locationEntries": [
                    {
                        "name": "a",
                        "loadStatus": "LOADED",
                        "locationOrLoadError": {"__typename": "RepositoryLocation"},
                    },
                    {
                        "name": "b",
                        "loadStatus": "LOADED",
                        "locationOrLoadError": {"__typename": "PythonError", "message": "boom"},
                    },
                ],
            },
        )
    )
    assert probe.error is None and probe.reloaded and probe.shows({"a", "b"})
    assert not probe.shows({"a"})
    assert [(loc.name, loc.error) for loc in probe.locations or []] == [("a", None), ("b", "boom")]


@pytest.mark.parametrize(
    ("answer", "permanent", "words"),
    [
        (
            _answer(file=["a"], workspace={"__typename": "UnauthorizedError", "message": "no"}),
            True,
            "read-only",
        ),
        (
            _answer(file=None, file_error="FileNotFoundError: /dagster-workspace/workspace.yaml"),
            True,
            "no readable workspace file",
        ),
        (
            _answer(file=["a"], error="URLError: <urlopen error [Errno 111] Connection refused>"),
            False,
            "did not answer",
        ),
        (_answer(file=["a"], workspace={"__typename": "PythonError", "message": "x"}), False, "x"),
        ("Traceback (most recent call last):\n", False, "unexpected answer"),
    ],
)
def test_failures_say_why_and_whether_waiting_can_help(
    answer: str, permanent: bool, words: str
) -> None:
    probe = parse_probe(answer)
    assert probe.locations is None
    assert probe.error is not None and words in probe.error
    assert probe.permanent is permanent


def test_the_in_pod_program_is_valid_python() -> None:
    compile(PROBE, "<probe>", "exec")
