"""Job types: a handler function per type name, registered with `@task("name")`."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from jobline.contract.events import JobTypeInfo
from jobline.contract.names import is_valid_job_type


class PermanentError(Exception):
    """Raised by a handler for a failure that retrying cannot fix."""


class JobCancelledError(Exception):
    """Raised by `ctx.check_cancelled()` once the job has been cancelled or timed out."""


Handler = Callable[..., Any]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    handler: Handler
    params_type: type | None = None  # a msgspec Struct the raw params are converted to
    steps: list[str] | Callable[[Any], list[str]] = field(default_factory=list)
    description: str = ""
    timeout_s: float | None = None  # None: the processor's default
    max_attempts: int | None = None
    retry_backoff_s: float | None = None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)

    def parse_params(self, raw: dict[str, Any]) -> Any:
        """Raises msgspec.ValidationError naming the bad field."""
        if self.params_type is None:
            return raw
        return msgspec.convert(raw, self.params_type, strict=False)

    def plan(self, params: Any) -> list[str]:
        return list(self.steps(params) if callable(self.steps) else self.steps)

    def info(self) -> JobTypeInfo:
        example: dict[str, Any] = {}
        if self.params_type is not None:
            for f in msgspec.structs.fields(self.params_type):
                if f.default is not msgspec.NODEFAULT:
                    example[f.encode_name] = msgspec.to_builtins(f.default)
                elif f.default_factory is not msgspec.NODEFAULT:
                    example[f.encode_name] = msgspec.to_builtins(f.default_factory())
                else:
                    example[f.encode_name] = f"<{f.encode_name}>"  # required: the client fills it in
        default_steps = self.steps if isinstance(self.steps, list) else []
        if callable(self.steps) and self.params_type is not None:
            try:
                default_steps = self.plan(self.params_type())
            except (TypeError, msgspec.ValidationError):
                default_steps = []
        schema = msgspec.json.schema(self.params_type) if self.params_type is not None else {}
        return JobTypeInfo(name=self.name, description=self.description, steps=list(default_steps), params=example,
                           params_schema=schema)


class Registry:
    def __init__(self) -> None:
        self._specs: dict[str, TaskSpec] = {}

    def task(
        self,
        name: str,
        *,
        params: type | None = None,
        steps: list[str] | Callable[[Any], list[str]] | None = None,
        description: str = "",
        timeout_s: float | None = None,
        max_attempts: int | None = None,
        retry_backoff_s: float | None = None,
    ) -> Callable[[Handler], Handler]:
        if not is_valid_job_type(name):
            raise ValueError(f"invalid job type name {name!r} (lowercase letters, digits, - and _)")

        def register(handler: Handler) -> Handler:
            if name in self._specs:
                raise ValueError(f"job type {name!r} is registered twice")
            self._specs[name] = TaskSpec(
                name=name,
                handler=handler,
                params_type=params,
                steps=steps if steps is not None else [],
                description=description or (inspect.getdoc(handler) or "").split("\n")[0],
                timeout_s=timeout_s,
                max_attempts=max_attempts,
                retry_backoff_s=retry_backoff_s,
            )
            return handler

        return register

    def get(self, name: str) -> TaskSpec | None:
        return self._specs.get(name)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[TaskSpec]:
        return [self._specs[n] for n in self.names()]


# The registry user modules add to: `from jobline.processor import task`.
default_registry = Registry()
task = default_registry.task


class TaskModuleError(RuntimeError):
    """A module named in JOBLINE_TASK_MODULES cannot be imported."""


def load_task_modules(modules: tuple[str, ...]) -> None:
    """Import the built-in job types and the user's modules (JOBLINE_TASK_MODULES)."""
    importlib.import_module("jobline.processor.builtin_tasks")
    importlib.import_module("jobline.processor.video_tasks")
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:  # (also one raised inside the module: either way it cannot be used)
            raise TaskModuleError(f"cannot import the task module {module!r} named in JOBLINE_TASK_MODULES: "
                                  f"{exc}") from exc
