"""A flow's plan: every job of the tree with its id, its place, and what it waits for — checked
(names, dependencies among siblings, no cycle, size, depth) before anything is stored. Pure: the
same request planned under the same root id gives the same ids (a retry makes the same jobs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobline.contract.events import ChildRef
from jobline.contract.flows import MAX_FLOW_JOBS
from jobline.contract.names import is_valid_job_id
from jobline.contract.submissions import FlowChild, FlowSubmission, JobSubmission
from jobline.contract.vocabulary import ChildFailurePolicy
from jobline.jobs.errors import Invalid

from ..http.limits import MAX_FLOW_DEPTH


@dataclass
class Planned:
    """One job of the flow as it will be stored."""

    id: str
    path: str  # where its spec is in the request (`children[1].children[0]`): for problems
    submission: JobSubmission
    name: str | None
    parent: str | None
    weight: float
    on_child_failure: ChildFailurePolicy
    depends_on: list[str] = field(default_factory=list)  # ids
    children: list[ChildRef] = field(default_factory=list)

    @property
    def blocked_on(self) -> list[str]:
        return [c.id for c in self.children] + self.depends_on


def _refused(path: str, detail: str) -> Invalid:
    return Invalid(detail, title="Invalid flow", key=path)


def plan(root_id: str, submission: FlowSubmission) -> list[Planned]:
    """Every job of the flow in depth-first order, with ids, names and what each waits for;
    Invalid naming the place of the first bad name, dependency, depth or cycle."""
    planned: list[Planned] = []
    root = Planned(id=root_id, path="job", submission=submission.job, name=None, parent=None, weight=1.0,
                    on_child_failure=submission.on_child_failure)
    planned.append(root)

    def expand(parent: Planned, children: list[FlowChild], path: str, depth: int) -> None:
        if not children and parent.parent is None:
            raise _refused("children", "a flow has at least one child")
        if children and depth > MAX_FLOW_DEPTH:
            raise _refused(path, f"{path}: a flow is at most {MAX_FLOW_DEPTH} levels deep below its root")
        mine: list[Planned] = []
        for index, child in enumerate(children):
            where = f"{path}[{index}]"
            name = child.name if child.name is not None else str(index)
            if not is_valid_job_id(name):
                raise _refused(f"{where}.name", f"{where}: a name has 1 to 64 letters, digits, '-' or '_'")
            if any(m.name == name for m in mine):
                raise _refused(f"{where}.name", f"{where}: two children named {name!r}")
            if not 0 < child.weight <= 1e6:
                raise _refused(f"{where}.weight", f"{where}: weight must be above 0")
            if len(planned) >= MAX_FLOW_JOBS:
                raise _refused("children", f"a flow has at most {MAX_FLOW_JOBS} jobs")
            node = Planned(id=f"{root_id}-{len(planned)}", path=f"{where}.job", submission=child.job, name=name,
                            parent=parent.id, weight=child.weight, on_child_failure=child.on_child_failure)
            planned.append(node)
            mine.append(node)
            expand(node, child.children, f"{where}.children", depth + 1)
        by_name = {m.name: m for m in mine}
        for index, child in enumerate(children):
            where = f"{path}[{index}].depends_on"
            for wanted in child.depends_on:
                if wanted not in by_name:
                    raise _refused(where, f"{path}[{index}] depends on {wanted!r}: no sibling has that name")
                if wanted == mine[index].name:
                    raise _refused(where, f"{path}[{index}] depends on itself")
                mine[index].depends_on.append(by_name[wanted].id)
        _check_no_cycle(mine, path)
        parent.children = [ChildRef(id=m.id, name=m.name or "", weight=m.weight) for m in mine]

    expand(root, submission.children, "children", 1)
    return planned


def _check_no_cycle(siblings: list[Planned], path: str) -> None:
    after = {s.id: set(s.depends_on) for s in siblings}
    done: set[str] = set()
    while len(done) < len(after):
        ready = [i for i, deps in after.items() if i not in done and deps <= done]
        if not ready:
            stuck = sorted(s.name or "" for s in siblings if s.id not in done)
            raise _refused(f"{path}", f"{path}: depends_on makes a cycle among {', '.join(stuck)}")
        done.update(ready)
