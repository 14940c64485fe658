"""The values ConfigMap stays within Kubernetes' limits: the history of 500 branches deployed
and deleted (written directly, in the form earlier versions let it grow to) is compacted by
the next command, every command keeps working, and no tag is handed out twice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml

from dagster_uc.state import MAX_CONFIGMAP_BYTES, data_size, dump_yaml
from tests.e2e.conftest import VALUES_CM, Stack
from tests.e2e.test_reliability import NAME, assert_consistent, entry_tag, new_commit

pytestmark = pytest.mark.e2e

HISTORY_KEY = "dagster-uc-history.yaml"


def grown_history(
    names: list[str], deployed_at: dt.datetime, records: int, longer: int = 0
) -> dict[str, Any]:
    """Every name deployed 30 times then deleted; every tag kept, and its last `records` (one
    more for the first `longer` names)."""
    deployments: dict[str, Any] = {}
    for index, name in enumerate(names):
        records_here = records + 1 if index < longer else records
        at = (deployed_at + dt.timedelta(minutes=index)).strftime("%Y-%m-%dT%H:%M:%SZ")
        tags = [f"1.8.4-{n}" for n in range(30)]
        kept = [
            {
                "tag": tag,
                "by": "runner@fv-az123-456.internal.cloudapp.net",
                "at": at,
                "action": "deploy",
                "commit": "3f2a9c1d4b5e6f708192a3b4c5d6e7f8091a2b3c",
                "branch": f"feature/{name}",
            }
            for tag in tags[-(records_here - 1) :]
        ]
        kept.append({"tag": tags[-1], "by": "ann@laptop", "at": at, "action": "delete"})
        deployments[name] = {"tags": tags, "records": kept}
    return {"deployments": deployments}


def nearly_full_history(names: list[str], deployed_at: dt.datetime) -> str:
    """The grown history as large as a ConfigMap holds, less 8 KiB: the point where, before
    compaction, the next deploy's write was refused (422) and no command could repair it."""
    limit = 1024 * 1024 - 8 * 1024
    records = next(
        r
        for r in range(20, 1, -1)
        if len(yaml.safe_dump(grown_history(names, deployed_at, r))) < limit
    )
    shorter = len(yaml.safe_dump(grown_history(names, deployed_at, records)))
    longer = len(yaml.safe_dump(grown_history(names, deployed_at, records + 1)))
    per_name = (longer - shorter) / len(names)
    text = yaml.safe_dump(
        grown_history(names, deployed_at, records, int((limit - shorter) / per_name) - 1)
    )
    assert len(text) < limit
    return text


def configmap_size(stack: Stack) -> int:
    configmap = stack.configmap(VALUES_CM)
    assert configmap is not None
    return data_size(configmap["data"])


def test_500_deleted_branches_are_compacted_and_every_command_still_works(stack: Stack) -> None:
    names = [f"demo-project--feature-jira-{i:04d}-some-branch" for i in range(499)] + [NAME]
    recently = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    stack.emulator.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": VALUES_CM, "namespace": stack.namespace},
            "data": {
                "yaml": yaml.safe_dump({"deployments": []}),
                HISTORY_KEY: nearly_full_history(names, recently),
            },
        }
    )
    assert configmap_size(stack) > 1000 * 1024

    stack.ok("deployment", "deploy", "--timeout", "60")

    assert entry_tag(stack, NAME) == "1.8.4-30", "a tag of the deleted deployment came back"
    assert configmap_size(stack) < 256 * 1024
    history = stack.history()["deployments"]
    assert set(history) == set(names)
    assert history[names[0]]["tags"] == ["1.8.4-29"]
    assert [r["action"] for r in history[names[0]]["records"]] == ["deploy", "delete"]

    new_commit(stack)
    stack.ok("deployment", "deploy", "--timeout", "60")
    assert entry_tag(stack, NAME) == "1.8.4-31"
    assert NAME in stack.ok("deployment", "list").stdout
    stack.ok("deployment", "rollback", "-n", NAME, "--timeout", "60")
    assert entry_tag(stack, NAME) == "1.8.4-30"
    stack.ok("deployment", "delete", "-n", NAME)
    stack.ok("deployment", "revive", "-n", NAME, "-t", "1.8.4-31", "--timeout", "60")
    assert entry_tag(stack, NAME) == "1.8.4-31"
    stack.ok("image", "prune", "--keep", "1", "--dry-run")
    stack.ok("lock", "status")
    new_commit(stack)
    stack.ok("deployment", "deploy", "--timeout", "60")
    assert entry_tag(stack, NAME) == "1.8.4-32"
    assert configmap_size(stack) < 256 * 1024
    assert_consistent(stack)


def test_a_write_that_would_pass_900_kib_is_refused_and_nothing_is_written(
    stack: Stack,
) -> None:
    """Hundreds of live deployments with a large environment fill the values ConfigMap to
    just under the limit (compaction cannot help: the values themselves are big); the deploy's
    first write, its tag reservation, stops the command before anything is built or written,
    saying what to prune."""
    live = [
        {
            "name": f"demo-project--feature-{i:04d}",
            "image": {"repository": f"{stack.registry.host}/{stack.prefix}/x", "tag": "1.8.4-0"},
            "env": [{"name": f"SETTING_{n}", "value": "x" * 200} for n in range(8)],
        }
        for i in range(440)
    ]
    document: dict[str, Any] = {"deployments": live, "notes": "x"}
    size = data_size({"yaml": dump_yaml(document)})
    document["notes"] = "x" * (1 + MAX_CONFIGMAP_BYTES - 10 - size)
    stack.emulator.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": VALUES_CM, "namespace": stack.namespace},
            "data": {"yaml": dump_yaml(document)},
        }
    )
    before = stack.configmap(VALUES_CM)
    assert before is not None and configmap_size(stack) == MAX_CONFIGMAP_BYTES - 10

    result = stack.run("deployment", "deploy", "--timeout", "60")

    assert result.returncode == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert f"ConfigMap {VALUES_CM} would hold 900 KiB for 440 deployments" in errors[0]
    assert "nothing was written" in errors[0]
    assert "dagster-uc deployment prune" in errors[0]
    after = stack.configmap(VALUES_CM)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert stack.tags(NAME) == [], "an image was built although the state could not be written"
