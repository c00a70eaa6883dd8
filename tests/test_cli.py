"""The `jobline` command, run as a subprocess against the real stack."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from jobline.runtime.embedded_nats import EmbeddedNats

from .helpers import Stack

pytestmark = pytest.mark.slow




async def jobline(stack: Stack, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobline.cli.main", *args, "--url", stack.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


FAST = ["--param", "step_seconds=0.1", "--param", "ticks_per_step=2", "--param", 'steps=["A","B"]']


async def test_submit_wait_shows_progress_and_exits_0_on_success(stack: Stack) -> None:
    code, out, err = await jobline(stack, "submit", "demo", *FAST, "--wait")
    assert code == 0, out + err
    assert "A: started" in out and "completed" in out


async def test_watch_exit_codes_for_failure_and_cancel(stack: Stack) -> None:
    code, out, _ = await jobline(stack, "submit", "demo", *FAST, "--param", "fail_at_step=B", "--json")
    job_id = json.loads(out)["id"]
    code, out, err = await jobline(stack, "watch", job_id)
    assert code == 1, out + err
    assert "failed" in out

    code, out, _ = await jobline(stack, "submit", "demo", "--param", "step_seconds=5", "--json")
    slow = json.loads(out)["id"]
    watcher = asyncio.create_task(jobline(stack, "watch", slow, "--json"))
    code, out, _ = await jobline(stack, "cancel", slow, "--json")
    assert code == 0 and json.loads(out)["status"] in ("cancelled", "cancelling")
    code, out, _ = await watcher
    assert code == 3
    last = json.loads(out.strip().splitlines()[-1])
    # The job may have ended before the watcher connected: then its snapshot says so.
    assert last["event"] == "cancelled" or last["data"]["job"]["status"] == "cancelled"


async def test_jobs_logs_and_replay_as_json(stack: Stack) -> None:
    code, out, _ = await jobline(stack, "submit", "demo", *FAST, "--wait", "--json")
    assert code == 0
    events = [json.loads(line) for line in out.strip().splitlines()]
    job_id = events[-1]["data"]["job_id"]
    code, out, _ = await jobline(stack, "jobs", "--status", "completed", "--json")
    assert job_id in [j["id"] for j in json.loads(out)]
    code, out, _ = await jobline(stack, "logs", job_id, "--follow", "--json")
    assert [json.loads(line)["message"] for line in out.strip().splitlines()] == [
        "A: started", "A: finished", "B: started", "B: finished"]
    code, out, _ = await jobline(stack, "replay", job_id, "--speed", "100", "--json")
    replayed = [json.loads(line)["event"] for line in out.strip().splitlines()]
    assert replayed[0] == "snapshot" and replayed[-2:] == ["completed", "replay_end"]
    code, out, err = await jobline(stack, "watch", "01nosuchjob")
    assert code == 2 and "no job" in err


async def test_tail_prints_raw_events_with_subject_and_sequence(stack: Stack, nats_server: EmbeddedNats) -> None:
    tail = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobline.cli.main", "tail", "--nats-url", nats_server.url,
        "--namespace", stack.names.namespace, "--all", "--count", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _code, _, _ = await jobline(stack, "submit", "noop")
    out, err = await asyncio.wait_for(tail.communicate(), 30)
    lines = out.decode().strip().splitlines()
    assert len(lines) == 3, err.decode()
    assert lines[0].startswith(f"[{stack.names.jobs_stream} #") and ".created.noop " in lines[0]
    assert '"kind":"created"' in lines[0]


def watched_job_id(out: str) -> str:
    """The job id in `submit --wait --json` output: its first event is the snapshot (a job that
    ended before the stream opened has nothing else)."""
    return str(json.loads(out.strip().splitlines()[0])["data"]["job"]["id"])


async def test_jobs_search_export_and_stats_over_history(stack: Stack, tmp_path: Path) -> None:
    code, out, _ = await jobline(stack, "submit", "demo", *FAST, "--param", "fail_at_step=B", "--wait", "--json")
    failed = watched_job_id(out)
    code, out, _ = await jobline(stack, "submit", "noop", "--param", "height=720", "--priority", "7", "--owner", "acme",
                                 "--tag", "video", "--tag", "hd", "--wait", "--json")
    tall = watched_job_id(out)
    code, out, _ = await jobline(stack, "jobs", "--param", "height=720", "--json")
    assert [(j["id"], j["priority"], j["owner"], j["tags"]) for j in json.loads(out)] == [(tall, 7, "acme", ["video", "hd"])]
    code, out, _ = await jobline(stack, "jobs", "--owner", "acme", "--tag", "hd,video", "--json")
    assert [j["id"] for j in json.loads(out)] == [tall]
    code, out, _ = await jobline(stack, "jobs", "--error", "fail_at_step", "--since", "10m", "--json")
    assert [j["id"] for j in json.loads(out)] == [failed]
    code, out, _ = await jobline(stack, "jobs", "--since", "yesterday-ish")
    assert code == 2  # argparse refuses a time it cannot read

    target = tmp_path / "jobs.jsonl"
    code, _, err = await jobline(stack, "export", "--events", "-o", str(target))
    assert code == 0 and "exported 2 job(s)" in err
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [job["id"] for job in lines] == [tall, failed]
    assert next(e["event"]["kind"] for e in lines[1]["events"]) == "created"
    assert lines[1]["events"][-1]["event"]["kind"] == "failed"
    code, out, _ = await jobline(stack, "export", "--status", "completed")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [tall]

    code, out, err = await jobline(stack, "stats", "--window", "hour")
    assert code == 0, err
    assert "2 job(s) in the history" in out and "demo" in out and "noop" in out
    code, out, err = await jobline(stack, "stats", "--window", "hour", "--owner", "nobody-here")
    assert code == 0 and "0 job(s) in the history (owner nobody-here)" in out, (out, err)

    # Every live job a filter matches, at once.
    code, out, _ = await jobline(stack, "submit", "noop", "--owner", "acme", "--delay", "600", "--json")
    later = json.loads(out)["id"]
    code, out, _ = await jobline(stack, "cancel", "--status", "scheduled", "--owner", "acme", "--dry-run")
    assert code == 0 and "1 would be cancelled" in out
    code, out, _ = await jobline(stack, "cancel", "--status", "scheduled", "--owner", "acme", "--json")
    assert code == 0 and json.loads(out) == {"matched": 1, "cancelled": 1, "cancelling": 0, "more": False,
                                             "dry_run": False}
    code, out, _ = await jobline(stack, "jobs", "--status", "cancelled", "--json")
    assert [j["id"] for j in json.loads(out)] == [later]


async def test_schedules_create_list_show_pause_resume_and_delete(stack: Stack) -> None:
    code, out, err = await jobline(stack, "schedules", "create", "ticker", "--cron", "* * * * * *", "--type", "noop",
                                   "-p", "n=1", "--tz", "Europe/Berlin", "--overlap", "skip", "--json")
    assert code == 0, err
    made = json.loads(out)
    assert made["job"] == {"type": "noop", "params": {"n": 1}} and made["timezone"] == "Europe/Berlin"
    assert made["overlap"] == "skip" and len(made["next_runs"]) == 5

    async def made_jobs() -> int:
        return int(json.loads((await jobline(stack, "schedules", "show", "ticker", "--json"))[1])["jobs_created"])

    async with asyncio.timeout(20):
        while await made_jobs() < 1:
            pass  # each `show` is a whole process start: its own pace
    code, out, _ = await jobline(stack, "schedules", "list", "--json")
    assert code == 0 and [s["name"] for s in json.loads(out)] == ["ticker"]
    code, out, _ = await jobline(stack, "schedules", "pause", "ticker", "--json")
    assert code == 0 and json.loads(out)["paused"] is True
    code, out, _ = await jobline(stack, "schedules", "resume", "ticker")
    assert code == 0 and "active" in out
    assert (await jobline(stack, "schedules", "delete", "ticker"))[0] == 0
    code, _, err = await jobline(stack, "schedules", "show", "ticker")
    assert code != 0 and "no schedule" in err
    code, _, err = await jobline(stack, "schedules", "create", "bad", "--cron", "* *", "--type", "noop")
    assert code != 0 and "fields" in err
    code, _, err = await jobline(stack, "schedules", "create", "bad")
    assert code == 2 and "--cron and --type" in err


async def test_queues_pause_resume_and_limit(stack: Stack) -> None:
    code, out, err = await jobline(stack, "queues", "pause", "demo", "--json")
    assert code == 0 and json.loads(out)["paused"] is True, err
    code, out, _ = await jobline(stack, "queues", "limit", "demo", "--concurrency", "2", "--rate", "10", "--per", "2",
                                 "--json")
    limited = json.loads(out)
    assert (limited["concurrency"], limited["rate_max"], limited["rate_window_s"]) == (2, 10, 2.0)
    code, out, _ = await jobline(stack, "queues", "--json")
    assert code == 0 and {q["type"]: q["paused"] for q in json.loads(out)}["demo"] is True
    code, out, _ = await jobline(stack, "queues", "resume", "demo")
    assert code == 0 and "active" in out
    code, out, _ = await jobline(stack, "queues", "limit", "demo", "--concurrency", "none", "--json")
    assert json.loads(out)["concurrency"] is None and json.loads(out)["rate_max"] == 10
    code, _, err = await jobline(stack, "queues", "pause", "no-such-type")
    assert code != 0 and "no processor serves" in err


async def test_submit_a_batch_from_a_jsonl_file_and_wait_with_one_bar(stack: Stack, tmp_path: Path) -> None:
    specs = tmp_path / "specs.jsonl"
    good = {"type": "demo", "params": {"steps": ["A"], "step_seconds": 0.05, "ticks_per_step": 1}}
    bad = {"type": "demo", "params": {"steps": ["A"], "step_seconds": 0.01, "fail_at_step": "A"}, "max_attempts": 1}
    specs.write_text("\n".join(json.dumps(s) for s in [good] * 12 + [bad]) + "\n")
    code, out, err = await jobline(stack, "submit", "--batch", str(specs), "--wait")
    assert code == 1, out + err  # one job failed
    assert "13/13 ended" in out and "12 completed, 1 failed" in out
    specs.write_text(json.dumps(good) + "\n")
    code, out, _ = await jobline(stack, "submit", "--batch", str(specs), "--wait", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and lines[0]["event"] == "snapshot" and lines[-1]["event"] == "batch_completed"
    specs.write_text(json.dumps(good) + "\n" + json.dumps({"type": "no-such-type"}) + "\n")
    code, _, err = await jobline(stack, "submit", "--batch", str(specs))
    assert code != 0 and "jobs[1]" in err


async def test_submit_a_flow_from_a_json_file_and_wait_for_its_root(stack: Stack, tmp_path: Path) -> None:
    good = {"type": "demo", "params": {"steps": ["A"], "step_seconds": 0.05, "ticks_per_step": 1}}
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"job": {"type": "gather"}, "children": [{"name": "a", "job": good},
                                                                       {"name": "b", "job": good, "depends_on": ["a"]}]}))
    code, out, err = await jobline(stack, "submit", "--flow", str(flow), "--wait", "--json")
    assert code == 0, out + err
    last = json.loads(out.strip().splitlines()[-1])
    assert last["event"] == "completed" and set(last["data"]["result"]) == {"a", "b"}
    code, _, err = await jobline(stack, "submit", "demo", "--flow", str(flow))
    assert code != 0 and "one of" in err
