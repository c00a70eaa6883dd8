"""The flow's rules as data (contract/flows.py: `transition`), without NATS: what each signal or
spawn request does to a record, and which actions it takes in which order."""

from __future__ import annotations

import random

from jobline.contract.flows import (
    CreateChild,
    FailUnrun,
    FlowNode,
    FlowRecord,
    FlowSignal,
    NodeStatus,
    Release,
    Resume,
    SpawnedChild,
    SpawnRequest,
    ready,
    transition,
)
from jobline.contract.vocabulary import ChildFailurePolicy

W, R = NodeStatus.WAITING, NodeStatus.RELEASED


def record(**nodes: FlowNode) -> FlowRecord:
    return FlowRecord(root="root", created_at=0.0, nodes=dict(nodes))


def fan(policy: ChildFailurePolicy = ChildFailurePolicy.FAIL) -> FlowRecord:
    """root waits for a and b; b depends on a."""
    return record(root=FlowNode(blocked_on=["a", "b"], on_child_failure=policy, status=W),
                  a=FlowNode(parent="root", name="a", status=R),
                  b=FlowNode(parent="root", name="b", blocked_on=["a"], status=W))


def signal(job_id: str, status: str) -> FlowSignal:
    return FlowSignal(flow="root", job_id=job_id, status=status)


def test_a_dependant_is_released_once_what_it_waits_for_ends_and_the_parent_last() -> None:
    start = fan()
    step = transition(start, signal("a", "completed"), now=1.0)
    assert step.before == [Release("b")] and step.after == []
    assert step.record is not None and step.record.nodes["b"].status is R and step.record.nodes["a"].status is NodeStatus.ENDED
    assert start.nodes["b"].status is W, "the record given is not changed"
    last = transition(step.record, signal("b", "completed"), now=2.0)
    assert last.before == [Release("root")]
    again = transition(last.record, signal("b", "completed"), now=3.0)  # a redelivered signal
    assert again.before == [], "a job is released once"


def test_a_failed_child_fails_its_dependants_and_its_parent_unrun_under_fail() -> None:
    step = transition(fan(), signal("a", "failed"), now=1.0)
    assert step.before == [FailUnrun("b", "did not run: a did not complete")]
    step = transition(step.record, signal("b", "failed"), now=2.0)
    assert step.before == [FailUnrun("root", "did not run: a, b did not complete")]


def test_ignore_and_continue_run_the_parent_all_the_same() -> None:
    for policy in (ChildFailurePolicy.IGNORE, ChildFailurePolicy.CONTINUE):
        step = transition(fan(policy), signal("a", "failed"), now=1.0)
        assert step.before == [Release("b")]  # (the parent judges its children's dependencies)
        step = transition(step.record, signal("b", "completed"), now=2.0)
        assert step.before == [Release("root")]


def test_a_spawn_adds_children_after_the_write_and_the_parent_resumes_after_them() -> None:
    spawn = SpawnRequest(flow="job", parent="job", created_subject="jobs.job.created.fanout", children=[
        SpawnedChild(id="job-1", name="p0", job={"type": "noop"}), SpawnedChild(id="job-2", name="p1", job={"type": "noop"})])
    step = transition(None, spawn, now=1.0)  # a job outside any flow: it becomes the root of one
    assert step.record is not None and step.before == []
    assert step.after == [CreateChild("job", "job", spawn.children[0]), CreateChild("job", "job", spawn.children[1])]
    parent = step.record.nodes["job"]
    assert parent.status is NodeStatus.SPAWNING and parent.blocked_on == ["job-1", "job-2"]
    for child in ("job-1", "job-2"):  # both end before the parent's attempt says it is suspended
        step = transition(step.record, FlowSignal(flow="job", job_id=child, status="completed"), now=2.0)
        assert step.before == [], "not resumed before its attempt ended"
    step = transition(step.record, FlowSignal(flow="job", job_id="job", status="suspended"), now=3.0)
    assert len(step.before) == 1 and isinstance(step.before[0], Resume)
    resume = step.before[0]
    assert (resume.flow, resume.job_id, resume.resumed, [c.id for c in resume.children]) == \
        ("job", "job", 1, ["job-1", "job-2"])
    again = transition(step.record, spawn, now=4.0)  # a redelivered spawn request adds nothing
    assert again.record is not None and again.record.nodes["job"].status is R and len(again.record.nodes) == 3


def test_a_signal_about_a_stranger_or_a_lost_record_changes_nothing() -> None:
    assert transition(None, signal("a", "completed"), now=1.0).record is None
    assert transition(fan(), signal("nobody", "completed"), now=1.0).record is None


def test_in_any_order_every_job_is_released_or_failed_exactly_once() -> None:
    """A random tree and random end orders: however the signals arrive (and repeat), each job that
    waits gets one action, never before all it waits for ended, the root last."""
    for seed in range(200):
        rng = random.Random(seed)
        nodes: dict[str, FlowNode] = {"root": FlowNode(status=W)}
        names = [f"j{i}" for i in range(rng.randint(2, 8))]
        for name in names:
            nodes[name] = FlowNode(parent="root", name=name, status=R)
            nodes["root"].blocked_on = [*nodes["root"].blocked_on, name]
        for name in names[1:]:
            if rng.random() < 0.5:  # depends on an earlier sibling: a DAG
                nodes[name].blocked_on = [rng.choice(names[:names.index(name)])]
                nodes[name].status = W
        current: FlowRecord | None = FlowRecord(root="root", created_at=0.0, nodes=nodes)
        actions: dict[str, int] = {}
        ended: set[str] = set()
        for _ in range(200):
            assert current is not None
            runnable = [j for j, n in current.nodes.items() if n.status is R and j not in ended]
            if not runnable:
                break
            job_id = rng.choice(runnable)
            ended.add(job_id)
            outcome = rng.choice(["completed", "completed", "failed"])
            for _ in range(rng.choice([1, 1, 2])):  # redelivered now and then
                step = transition(current, FlowSignal(flow="root", job_id=job_id, status=outcome), now=1.0)
                for action in step.before:
                    assert isinstance(action, Release | FailUnrun)
                    actions[action.job_id] = actions.get(action.job_id, 0) + 1
                    waited = current.nodes[action.job_id].blocked_on
                    assert all(current.nodes[w].status is NodeStatus.ENDED or w == job_id for w in waited)
                    if isinstance(action, FailUnrun):
                        ended.add(action.job_id)  # (its own end signal comes back later)
                current = step.record or current
        assert all(count == 1 for count in actions.values()), (seed, actions)  # never twice
        assert current is not None and ready(current) == []  # nothing left that could go and did not
