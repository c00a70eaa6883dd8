"""Services talk only through NATS: none imports another's modules."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES_DIR = Path(__file__).resolve().parents[1] / "services"
SERVICES = ("gateway", "processor", "logsink", "history", "conductor")
SHARED = ("contract", "runtime")
# Writing and reading jobs: a library of the two services that create jobs (the gateway for
# clients, the conductor for flows and schedules), standing on the shared packages alone.
JOBS_USERS = ("gateway", "conductor")


def imported_jobline_packages(path: Path) -> set[str]:
    """The `jobline.<package>` each import of the file names (relative imports resolved from the
    file's place under services/; elsewhere `from ..x import y` counts as package x)."""
    here = path.resolve().relative_to(SERVICES_DIR).parent.parts if path.resolve().is_relative_to(SERVICES_DIR) else None
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif isinstance(node, ast.ImportFrom) and node.level >= 1 and here is not None:
            base = here[:len(here) - (node.level - 1)]
            modules = [".".join(("jobline", *base, *([node.module] if node.module else [])))]
        elif isinstance(node, ast.ImportFrom) and node.level >= 2:
            modules = ["jobline." + (node.module or "").split(".")[0]]  # from ..x import y
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == "jobline" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_each_service_imports_only_itself_and_the_shared_contract() -> None:
    for service in SERVICES:
        allowed = {service, *SHARED, *(("jobs",) if service in JOBS_USERS else ())}
        for path in (SERVICES_DIR / service).rglob("*.py"):
            foreign = imported_jobline_packages(path) - allowed
            assert not foreign, f"{path.relative_to(SERVICES_DIR)} imports jobline.{', jobline.'.join(sorted(foreign))}"


def test_the_shared_packages_import_no_service() -> None:
    for package in SHARED:
        for path in (SERVICES_DIR / package).rglob("*.py"):
            used = imported_jobline_packages(path) - set(SHARED)
            assert not used, f"{path.relative_to(SERVICES_DIR)} imports a service: {used}"
    for path in (SERVICES_DIR / "jobs").rglob("*.py"):
        used = imported_jobline_packages(path) - {"jobs", *SHARED}
        assert not used, f"{path.relative_to(SERVICES_DIR)} imports a service: {used}"
    # The wire contract itself depends on nothing but itself.
    for path in (SERVICES_DIR / "contract").rglob("*.py"):
        assert imported_jobline_packages(path) <= {"contract"}, path


def test_the_client_library_stands_on_the_contract_alone() -> None:
    """`jobline.client` is what other apps install and import: it speaks HTTP to a gateway and
    knows only the wire contract; the CLI uses it (one client in the code base)."""
    for path in (SERVICES_DIR / "client").rglob("*.py"):
        assert imported_jobline_packages(path) <= {"client", "contract"}, path
    for path in (SERVICES_DIR / "cli").rglob("*.py"):
        assert "gateway" not in imported_jobline_packages(path), path
    assert not (SERVICES_DIR / "cli" / "client.py").exists()


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from jobline.processor.worker import Worker\nimport jobline.logsink.store\nfrom ..gateway import x\n")
    assert imported_jobline_packages(bad) == {"processor", "logsink", "gateway"}
    # A relative import inside a service is resolved from where the file stands.
    inside = SERVICES_DIR / "gateway" / "live" / "websocket.py"
    assert imported_jobline_packages(inside) >= {"gateway", "contract"}
    assert "http" not in imported_jobline_packages(inside)
