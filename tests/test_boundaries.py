"""Services talk only through NATS: none imports another's modules."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES_DIR = Path(__file__).resolve().parents[1] / "services"
SERVICES = ("gateway", "processor", "logsink")
SHARED = ("contract", "runtime")


def imported_jobline_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
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
        for path in (SERVICES_DIR / service).rglob("*.py"):
            foreign = imported_jobline_packages(path) - {service, *SHARED}
            assert not foreign, f"{path.relative_to(SERVICES_DIR)} imports jobline.{', jobline.'.join(sorted(foreign))}"


def test_the_shared_packages_import_no_service() -> None:
    for package in SHARED:
        for path in (SERVICES_DIR / package).rglob("*.py"):
            used = imported_jobline_packages(path) - set(SHARED)
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
