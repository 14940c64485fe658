"""`deployment deploy` end to end: real podman, registry, Helm and kubectl, emulated API server."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.conftest import GUI, Stack

NAME = "demo-project--feat-hello"
WEBSERVER = "dagster-dagster-webserver"
DAEMON = "dagster-daemon"


def image_env(image: str) -> list[str]:
    done = subprocess.run(
        ["podman", "image", "inspect", image, "--format", "{{json .Config.Env}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def mark_webserver_restart(stack: Stack, stamp: str) -> None:
    """Set the webserver's restart stamp, to see afterwards whether a deploy replaced it."""
    annotations = {"kubectl.kubernetes.io/restartedAt": stamp}
    patch = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
    stack.emulator.patch("apps/v1", "deployments", stack.namespace, WEBSERVER, patch)


@pytest.mark.parametrize("helm_major", [3, 4], indirect=True, ids=["helm3", "helm4"])
def test_first_deploy_registers_builds_rolls_out_and_reloads_dagster(stack: Stack) -> None:
    stack.write_config(dagster_reload="restart")  # reload mode: tests/e2e/test_reload.py
    result = stack.ok("deployment", "deploy", "--timeout", "60")

    assert stack.tags(NAME) == ["1.8.4-0"]
    entry = stack.entry(NAME)
    assert entry is not None
    assert entry["image"]["repository"] == f"{stack.registry.host}/{stack.prefix}/{NAME}"
    assert entry["image"]["tag"] == "1.8.4-0"
    assert entry["dagsterApiGrpcArgs"] == ["-f", "/app/demo_project/definitions.py"]
    assert entry["annotations"]["dagster-uc.io/branch"] == "feat/hello"
    assert stack.locations() == ["demo-project:feat-hello"]
    deployment = stack.deployment(NAME)
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.8.4-0")
    assert deployment["status"].get("readyReplicas") == 1
    assert stack.restarted_at(WEBSERVER) and stack.restarted_at(DAEMON)
    assert f"{GUI}/locations/demo-project:feat-hello/assets" in result.stdout
    assert "BRANCH_NAME=feat-hello" in image_env(f"{entry['image']['repository']}:1.8.4-0")
    assert "dagster-user-code" in stack.helm("list", "-q")


def test_redeploy_gets_a_new_tag_and_does_not_reload_dagster(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    webserver_stamp = stack.restarted_at(WEBSERVER)
    stack.git("commit", "-q", "--allow-empty", "-m", "second")
    stack.ok("deployment", "deploy")

    assert stack.tags(NAME) == ["1.8.4-0", "1.8.4-1"]
    assert stack.entry(NAME)["image"]["tag"] == "1.8.4-1"  # type: ignore[index]
    assert stack.restarted_at(WEBSERVER) == webserver_stamp
    assert stack.deployment(NAME)["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        ":1.8.4-1"
    )  # type: ignore[index]
    history = stack.history()["deployments"][NAME]
    assert history["tags"] == ["1.8.4-0", "1.8.4-1"]
    assert [r["commit"] for r in history["records"]] == [
        stack.git("rev-parse", "HEAD~1"),
        stack.git("rev-parse", "HEAD"),
    ]


def test_dry_run_prints_the_plan_and_changes_nothing(stack: Stack) -> None:
    result = stack.ok("deployment", "deploy", "--dry-run")

    assert f"{stack.prefix}/{NAME}:1.8.4-0" in result.stdout
    assert "+  location_name: demo-project:feat-hello" in result.stdout.replace("+    ", "+  ")
    assert stack.configmap("dagster-user-deployments-values-yaml") is None
    assert stack.tags(NAME) == []
    assert (
        stack.emulator.get(
            "coordination.k8s.io/v1", "leases", stack.namespace, "dagster-uc-semaphore"
        )
        is None
    )


def test_suffix_and_explicit_name(stack: Stack) -> None:
    stack.ok("deployment", "deploy", "-s", "try2")
    assert stack.entry("demo-project--feat-hello-try2") is not None
    stack.ok("deployment", "deploy", "--deployment-name", "demo-project:custom")
    assert stack.entry("demo-project--custom") is not None
    assert stack.locations() == ["demo-project:feat-hello-try2", "demo-project:custom"]
    bad = stack.run("deployment", "deploy", "-n", "Not_Valid!")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(stack.values()["deployments"]) == 2


def test_skip_build_deploys_the_newest_existing_image(stack: Stack) -> None:
    missing = stack.run("deployment", "deploy", "--skip-build")
    assert missing.returncode == 2 and "--skip-build" in missing.stderr
    assert stack.configmap("dagster-user-deployments-values-yaml") is None

    stack.ok("deployment", "deploy")
    stack.ok("deployment", "deploy", "--skip-build")
    assert stack.tags(NAME) == ["1.8.4-0"]
    assert stack.entry(NAME)["image"]["tag"] == "1.8.4-0"  # type: ignore[index]


def test_force_reloads_dagster_for_an_existing_location(stack: Stack) -> None:
    stack.ok("deployment", "deploy")
    mark_webserver_restart(stack, "x")
    stack.ok("deployment", "deploy", "--skip-build")
    assert stack.restarted_at(WEBSERVER) == "x", "an image update alone reloads nothing"
    stack.ok("deployment", "deploy", "--force", "--skip-build")
    assert stack.restarted_at(WEBSERVER) not in (None, "x")


def test_cicd_names_the_deployment_after_the_environment(stack: Stack) -> None:
    stack.write_config(cicd=True, environment="acc")
    result = stack.ok("deployment", "deploy", env={"CICD": "TRUE"})
    entry = stack.entry("demo-project--acc")
    assert entry is not None, result.output
    assert entry["annotations"].get("dagster-uc.io/cicd") == "true"
    assert "BRANCH_NAME=acc" in image_env(f"{entry['image']['repository']}:1.8.4-0")
    webserver = stack.restarted_at(WEBSERVER)
    mark_webserver_restart(stack, "x")
    stack.ok("deployment", "deploy", "--skip-build")
    assert stack.restarted_at(WEBSERVER) != "x", "cicd always reloads Dagster"
    assert webserver is not None


def test_no_wait_returns_after_the_rollout_without_waiting(stack: Stack) -> None:
    stack.emulator.hold_unready(stack.namespace, f"deployment={NAME}")
    result = stack.ok("deployment", "deploy", "--no-wait")
    assert "rolled out" in result.stderr
    assert stack.entry(NAME)["image"]["tag"] == "1.8.4-0"  # type: ignore[index]


def test_env_var_override_and_missing_build_variable(stack: Stack) -> None:
    stack.write_config(docker_env_vars=["DEMO_TOKEN"])
    missing = stack.run("deployment", "deploy")
    assert missing.returncode == 2
    assert "DEMO_TOKEN" in missing.stderr and "Traceback" not in missing.stderr
    assert stack.configmap("dagster-user-deployments-values-yaml") is None
    stack.ok("deployment", "deploy", env={"DEMO_TOKEN": "s3cr3t-value"})
    assert stack.tags(NAME) == ["1.8.4-0"]


@pytest.mark.parametrize("source", ["tgz", "repository", "oci"])
def test_chart_from_a_package_a_chart_repository_and_oci(
    stack: Stack, source: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from stack.chart import package_chart, push_oci_chart, serve_chart_repo

    if source == "tgz":
        tgz = package_chart(tmp_path / "pkg", "1.8.4")
        stack.write_config(helm_chart_path=str(tgz))
        stack.ok("deployment", "deploy")
    elif source == "repository":
        with serve_chart_repo(tmp_path / "repo", ("1.8.3", "1.8.4")) as url:
            stack.write_config(helm_chart_path=None, helm_chart_repository=url)
            stack.ok("deployment", "deploy")
    else:
        tgz = package_chart(tmp_path / "pkg", "1.8.4")
        push_oci_chart(tgz, stack.registry.host, f"{stack.prefix}-charts")
        stack.write_config(
            helm_chart_path=None,
            container_registry_chart_path=f"{stack.prefix}-charts/dagster-user-deployments",
        )
        stack.ok("deployment", "deploy")
    assert stack.deployment(NAME) is not None
    chart = json.loads(stack.helm("list", "-o", "json"))[0]["chart"]
    assert chart == "dagster-user-deployments-1.8.4"


def test_registry_with_basic_auth_from_the_podman_auth_file(stack: Stack) -> None:
    from stack.registry import LocalRegistry

    with LocalRegistry("htpasswd") as private:
        auth_dir = stack.project.parent / "run" / "containers"
        auth_dir.mkdir(parents=True, exist_ok=True)
        (auth_dir / "auth.json").write_text(private.auth_file.read_text())
        stack.write_config(container_registry=private.host)
        stack.ok("deployment", "deploy")
        stack.ok("deployment", "deploy")
        import httpx

        tags = httpx.get(
            f"{private.url}/v2/{stack.prefix}/{NAME}/tags/list",
            auth=(private.username or "", private.password or ""),
        ).json()["tags"]
        assert sorted(tags) == ["1.8.4-0", "1.8.4-1"]
        (auth_dir / "auth.json").unlink()
        refused = stack.run("deployment", "deploy")
        assert refused.returncode == 1
        assert private.host in refused.stderr and "Traceback" not in refused.stderr
        assert private.password not in refused.output  # type: ignore[operator]


def test_az_login_with_a_fake_az_logs_podman_in(stack: Stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import stat

    from stack.registry import LocalRegistry

    acr_user = "00000000-0000-0000-0000-000000000000"
    with LocalRegistry("htpasswd", username=acr_user) as private:
        fake = tmp_path / "fakebin" / "az"
        fake.parent.mkdir()
        fake.write_text(
            "#!/usr/bin/env python3\nimport json\n"
            f"print(json.dumps({{'accessToken': {private.password!r}, 'loginServer': 'x'}}))\n"
        )
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
        stack.write_config(container_registry=private.host, use_az_login=True)
        path = f"{fake.parent}{os.pathsep}{stack.env['PATH']}"
        result = stack.ok("deployment", "deploy", env={"PATH": path})
        assert private.password not in result.output  # type: ignore[operator]
        assert stack.entry(NAME)["image"]["repository"].startswith(private.host)  # type: ignore[index]


def test_a_chart_that_cannot_be_rendered_stops_before_anything_is_built(stack: Stack) -> None:
    stack.write_config(helm_chart_path=str(stack.project / "no-such-chart"))
    result = stack.run("deployment", "deploy")
    assert result.returncode == 1
    assert "helm template" in result.stderr and "no-such-chart" in result.stderr
    assert stack.tags(NAME) == []
    assert stack.configmap("dagster-user-deployments-values-yaml") is None
