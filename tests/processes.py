"""Services as real separate processes (`python -m jobline.<service>`), for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats, start_nats_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(nats_url: str, names: Names, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBLINE_", "NATS_"))}
    env.update(NATS_URL=nats_url, JOBLINE_NAMESPACE=names.namespace, JOBLINE_DATA_DIR=str(data_dir),
               JOBLINE_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1", JOBLINE_OPS_PORT="0", JOBLINE_JOBS_MAX_BYTES=str(32 << 20),
               JOBLINE_LOGS_MAX_BYTES=str(32 << 20))
    env.update(extra)  # a test's own settings win
    return env


@dataclass
class ServiceProcess:
    """A child process whose output is read line by line; waits are on lines it prints."""

    name: str
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    _watchers: list[tuple[re.Pattern[str], asyncio.Future[re.Match[str]]]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, name: str, args: list[str], env: dict[str, str]) -> ServiceProcess:
        process = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self = cls(name=name, process=process)
        self._reader = asyncio.create_task(self._read())
        return self

    @classmethod
    async def service(cls, service: str, env: dict[str, str]) -> ServiceProcess:
        return await cls.start(service, [sys.executable, "-m", f"jobline.{service}"], env)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            for pattern, future in list(self._watchers):
                match = pattern.search(line)
                if match and not future.done():
                    future.set_result(match)
        for _, future in self._watchers:
            if not future.done():
                future.set_exception(AssertionError(f"{self.name} exited before printing the awaited line:\n" + self.output()))

    async def wait_for_line(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        compiled = re.compile(pattern)
        for line in self.lines:
            if match := compiled.search(line):
                return match
        future: asyncio.Future[re.Match[str]] = asyncio.get_running_loop().create_future()
        self._watchers.append((compiled, future))
        if self._reader is not None and self._reader.done():
            raise AssertionError(f"{self.name} has exited:\n{self.output()}")
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise AssertionError(f"{self.name} did not print /{pattern}/ in {timeout}s:\n{self.output()}") from None

    def output(self) -> str:
        return "\n".join(self.lines[-60:])

    def send(self, sig: signal.Signals) -> None:
        if self.process.returncode is None:
            self.process.send_signal(sig)

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20.0) -> int:
        self.send(sig)
        try:
            async with asyncio.timeout(timeout):
                code = await self.process.wait()
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout}s:\n{self.output()}") from None
        if self._reader is not None:
            await self._reader
        return code


async def stop_all(processes: list[ServiceProcess], check: Callable[[str, int], None] | None = None) -> None:
    codes = await asyncio.gather(*(p.stop() for p in processes), return_exceptions=True)
    for process, code in zip(processes, codes, strict=True):
        if isinstance(code, BaseException):
            raise code
        if check is not None:
            check(process.name, code)


def restart_nats(server: EmbeddedNats, how: signal.Signals) -> EmbeddedNats:
    """Stop the server with `how` (SIGTERM or SIGKILL) and start it again on the same port and
    store, so that clients reconnect to the URL they know."""
    server.process.send_signal(how)
    server.process.wait(10)
    return start_nats_server(server.store_dir, port=int(server.url.rsplit(":", 1)[1]))


# What each service prints once it is up (a regex; the gateway's names its URL).
READY_LINES = {
    "gateway": r"gateway listening on (http://\S+)",
    "processor": r"processing ",
    "logsink": r"logsink consuming",
    "history": r"history consuming",
    "conductor": r"conductor running",
}


async def ready(process: ServiceProcess, timeout: float = 60.0) -> re.Match[str]:
    """Wait until a service process says it is up (the gateway: the match's group 1 is its URL)."""
    service = process.name.split("-")[0]
    return await process.wait_for_line(READY_LINES[service], timeout=timeout)


async def gateway_url(process: ServiceProcess, timeout: float = 60.0) -> str:
    return (await ready(process, timeout)).group(1)


@dataclass
class System:
    """Services as separate processes against one NATS URL, each started and waited for by name
    (`processor-2` is a second processor). `task_modules` ({module name: source}) are written
    beside the data folder and loaded by the processors."""

    nats_url: str
    names: Names
    root: Path
    settings: dict[str, str] = field(default_factory=dict)
    task_modules: dict[str, str] = field(default_factory=dict)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    url: str = ""
    _started: int = 0

    def env(self) -> dict[str, str]:
        extra: dict[str, str] = {"JOBLINE_PORT": "0"}
        if self.task_modules:
            folder = self.root / "tasks"
            folder.mkdir(parents=True, exist_ok=True)
            for module, source in self.task_modules.items():
                (folder / f"{module}.py").write_text(source)
            extra.update(JOBLINE_TASK_MODULES=",".join(self.task_modules), PYTHONPATH=str(folder))
        return service_env(self.nats_url, self.names, self.root / "data", **{**extra, **self.settings})

    async def start(self, name: str) -> ServiceProcess:
        process = await ServiceProcess.start(name, [sys.executable, "-m", f"jobline.{name.split('-')[0]}"], self.env())
        self.processes[name] = process
        match = await ready(process)
        if name.startswith("gateway"):
            self.url = match.group(1)
        return process

    async def start_all(self, processors: int = 1, *, logsink: bool = True, history: bool = False,
                        gateway: bool = True, conductors: int = 1) -> None:
        if logsink:
            await self.start("logsink")
        if history:
            await self.start("history")
        for i in range(processors):
            await self.start(f"processor-{i}")
        for i in range(conductors):
            await self.start(f"conductor-{i}")
        if gateway:
            await self.start("gateway")

    @property
    def processors(self) -> list[ServiceProcess]:
        return [p for name, p in self.processes.items() if name.startswith("processor") and p.process.returncode is None]

    def by_pid(self, pid: int) -> ServiceProcess:
        return next(p for p in self.processes.values() if p.process.pid == pid)

    def forget(self, process: ServiceProcess) -> None:
        """Stop tracking a process the test stopped (or killed) itself."""
        self.processes = {name: p for name, p in self.processes.items() if p is not process}

    async def add_processor(self) -> ServiceProcess:
        self._started += 1
        return await self.start(f"processor-added{self._started}")

    async def stop(self) -> None:
        running = [p for p in self.processes.values() if p.process.returncode is None]
        for p in running:
            p.send(signal.SIGCONT)  # a frozen process cannot stop
        await stop_all(running)

    def lines_matching(self, text: str) -> list[str]:
        return [f"{name}: {line}" for name, p in self.processes.items() for line in p.lines if text in line.lower()]
