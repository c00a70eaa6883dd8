"""The HTTP-side commands of `jobline`: submit, watch, jobs, logs, replay, cancel, retry, delete, signal."""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

from jobline.client import Client
from jobline.contract.vocabulary import TERMINAL_KINDS

from .exit_codes import EXIT_BY_STATUS, EXIT_ERROR, EXIT_OK, TERMINAL

console = Console(highlight=False)
LEVEL_STYLE = {"error": "red", "critical": "bold red", "warning": "yellow", "debug": "dim"}


def guess_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _print_json(value: Any) -> None:
    print(msgspec.json.encode(value).decode(), flush=True)  # (plain data and the contract's Structs alike)


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def _log_line(line: dict[str, Any]) -> Text:
    # Text objects: a log line is shown as it is, never interpreted as markup.
    text = Text(f"{_clock(line['ts'])} ", style="dim")
    text.append(line["message"], style=LEVEL_STYLE.get(line.get("level", "info"), ""))
    return text


def read_specs(path: Path) -> list[dict[str, Any]]:
    lines = sys.stdin.read().splitlines() if str(path) == "-" else path.read_text().splitlines()
    specs = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                specs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"error: {path}:{number} is not JSON: {exc}") from None
    return specs


def submit_flow(client: Client, args: argparse.Namespace) -> int:
    text = sys.stdin.read() if str(args.flow) == "-" else args.flow.read_text()
    try:
        flow = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"error: {args.flow} is not JSON: {exc}") from None
    accepted = client.submit_flow(flow)
    if args.json and not args.wait:
        _print_json(accepted)
    elif not args.json:
        console.print(f"submitted flow {accepted.id} ({len(accepted.jobs)} jobs)")
    return watch(client, accepted.id, args.json) if args.wait else EXIT_OK


def submit_batch(client: Client, args: argparse.Namespace) -> int:
    accepted = client.submit_batch(read_specs(args.batch))
    batch_id, total = accepted.id, len(accepted.jobs)
    if not args.wait:
        _print_json(accepted) if args.json else console.print(f"submitted batch {batch_id} ({total} jobs)")
        return EXIT_OK
    counts: dict[str, int] = {}
    events = client.watch_batch(batch_id)
    if args.json:
        for event in events:
            data = event.json()
            _print_json({"event": event.kind, "data": data})
            counts = data.get("counts", counts)
    else:
        console.print(f"batch {batch_id}: {total} jobs")
        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[eta]}"))
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(f"0/{total} ended", total=total, eta="")
            for event in events:
                data = event.json()
                counts = data.get("counts", counts)
                ended = data.get("ended", 0)
                eta = data.get("eta_s")
                progress.update(task, completed=data.get("progress", 0) * total, description=f"{ended}/{total} ended",
                                eta=f"ETA {eta:.0f}s" if eta else "")
                if event.kind == "job_ended" and data["status"] != "completed":
                    progress.console.print(Text(f"{data['job_id']} {data['status']}: {data.get('error') or ''}",
                                                style="red"))
        console.print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    return EXIT_OK if set(counts) <= {"completed"} else EXIT_BY_STATUS["failed"]


def watch(client: Client, job_id: str, as_json: bool) -> int:
    status = "pending"
    events = client.events(f"/api/jobs/{job_id}/events", until=TERMINAL_KINDS)
    if as_json:
        for event in events:
            data = event.json()
            _print_json({"id": str(event.id) if event.id is not None else None, "event": event.kind, "data": data})
            status = _status_after(event.kind, data, status)
        return EXIT_BY_STATUS.get(status, EXIT_ERROR)
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[eta]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(job_id, total=100, eta="")
        for event in events:
            data = event.json()
            if event.kind in ("snapshot", "reset"):
                job = data["job"]
                status = job["status"]
                for line in data["logs"]:
                    progress.console.print(_log_line(line))
                progress.update(task, completed=(job["progress"] or (1 if status == "completed" else 0)) * 100,
                                description=f"{job['type']} · {job['step'] or status}")
            elif event.kind == "logged":
                progress.console.print(_log_line(data))
            elif event.kind == "progressed":
                eta = data.get("eta_s")
                progress.update(task, completed=(data["fraction"] or 0) * 100,
                                eta=f"ETA {eta:.0f}s" if eta else "")
            elif event.kind == "step_started":
                progress.update(task, description=f"step {data['name']}")
            elif event.kind == "started" and data["attempt"] > 1:
                progress.console.print(Text(f"attempt {data['attempt']} started", style="yellow"))
            elif event.kind == "retrying":
                progress.console.print(Text(f"attempt {data['attempt']} failed: {data['error']}; retrying in "
                                            f"{data['delay_s']:.1f}s", style="yellow"))
            status = _status_after(event.kind, data, status)
            if status in TERMINAL:
                progress.update(task, description=status, eta="",
                                completed=100 if status == "completed" else progress.tasks[0].completed)
    job = client.get_json(f"/api/jobs/{job_id}")
    if job["status"] == "completed":
        console.print(Text(f"completed: {json.dumps(job['result'])}", style="green"))
    else:
        console.print(Text(f"{job['status']}: {job.get('error') or ''}", style="red"))
    for artifact in job.get("artifacts", []):
        console.print(Text(f"artifact {artifact['name']}: {client.url}{artifact['url']}"))
    return EXIT_BY_STATUS.get(job["status"], EXIT_ERROR)


def _status_after(kind: str, data: dict[str, Any], status: str) -> str:
    if kind in ("snapshot", "reset"):
        return str(data["job"]["status"])
    if kind in TERMINAL:
        return kind
    if kind == "started":
        return "running"
    return status


def _when(ts: float) -> str:
    """A clock time today, a date and time before."""
    moment = datetime.fromtimestamp(ts)
    return moment.strftime("%H:%M:%S" if moment.date() == datetime.now().date() else "%Y-%m-%d %H:%M")


def job_filters(args: argparse.Namespace) -> dict[str, Any]:
    """The `GET /api/jobs` query parameters for the filter options."""
    filters: dict[str, Any] = {
        "status": args.status, "type": args.type, "created_after": args.since, "created_before": args.until,
        "finished_after": args.finished_since, "finished_before": args.finished_until, "error": args.error,
        "owner": args.owner, "tag": args.tag,
    }
    for root, pairs in (("params", args.param), ("result", args.result)):
        for key, value in pairs:
            filters[f"{root}.{key}"] = value if isinstance(value, str) else json.dumps(value)
    return filters


def job_rows(client: Client, filters: dict[str, Any], page_size: int = 500) -> Iterator[dict[str, Any]]:
    """Every matching job as the API sends it (JSON objects), newest first, over a stable cursor."""
    query = {k: v for k, v in filters.items() if v is not None}
    while True:
        page = client.get_json("/api/jobs", **query, limit=page_size)
        yield from page["jobs"]
        if page["next_before"] is None:
            return
        query["before"] = page["next_before"]


def export(client: Client, args: argparse.Namespace) -> int:
    """Every matching job as one JSON line (with `events` when asked), newest first."""
    out = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
    count = 0
    try:
        for job in job_rows(client, job_filters(args)):
            if args.events:
                job["events"] = client.get_json(f"/api/jobs/{job['id']}/timeline")["events"]
            out.write(json.dumps(job, separators=(",", ":")) + "\n")
            count += 1
    finally:
        if args.output:
            out.close()
    print(f"exported {count} job(s)", file=sys.stderr)
    return EXIT_OK


def stats(client: Client, args: argparse.Namespace) -> int:
    narrowed = {"owner": args.owner, "tag": args.tag}
    counts = client.get_json("/api/stats/counts", **narrowed)
    activity = client.get_json("/api/stats/activity", window=args.window, **narrowed)
    whose = " ".join(f"{key} {value}" for key, value in narrowed.items() if value)
    table = Table("type", *counts["by_status"], "total",
                  title=f"{counts['total']} job(s) in the history" + (f" ({whose})" if whose else ""))
    for job_type, by_status in sorted(counts["by_type"].items()):
        table.add_row(job_type, *(str(by_status.get(s, 0)) for s in counts["by_status"]), str(sum(by_status.values())))
    console.print(table)
    runs = Table("type", "ran", "p50", "p90", "p99", "max", title=f"run times, last {args.window}")

    def seconds(value: float | None) -> str:
        return "" if value is None else f"{value:.3g}s"

    for row in activity["durations"]:
        runs.add_row(row["type"], str(row["count"]), seconds(row["p50_s"]), seconds(row["p90_s"]),
                     seconds(row["p99_s"]), seconds(row["max_s"]))
    console.print(runs)
    return EXIT_OK


def submit(client: Client, args: argparse.Namespace) -> int:
    if args.batch is not None:
        return submit_batch(client, args)
    if args.flow is not None:
        return submit_flow(client, args)
    params = dict(args.param)
    if args.file is not None:
        stored = client.upload(args.file, content_type=guess_type(args.file))
        params["upload"] = stored.id
    job = client.submit(args.type, params, idempotency_key=args.idempotency_key, delay_s=args.delay,
                        run_at=args.at, concurrency_key=args.concurrency_key, priority=args.priority,
                        owner=args.owner, tags=args.tag or None, unique_key=args.unique_key,
                        unique_mode=args.unique_mode, unique_window_s=args.unique_window)
    if args.json and not args.wait:
        _print_json(msgspec.to_builtins(job.aio.accepted))
    elif not args.json:
        console.print(f"submitted {job.id}" + (" (scheduled)" if job.aio.accepted and
                                               job.aio.accepted.status == "scheduled" else ""))
    else:
        print(job.id, file=sys.stderr)
    return watch(client, job.id, args.json) if args.wait else EXIT_OK


def list_jobs(client: Client, args: argparse.Namespace) -> int:
    query = {k: v for k, v in job_filters(args).items() if v is not None}
    rows = client.get_json("/api/jobs", **query, limit=args.limit)["jobs"]
    if args.json:
        _print_json(rows)
        return EXIT_OK
    table = Table("id", "type", "status", "progress", "created")
    for job in rows:
        table.add_row(job["id"], job["type"], job["status"], f"{round((job['progress'] or 0) * 100)}%",
                      _when(job["created_at"]))
    console.print(table)
    return EXIT_OK


def logs(client: Client, args: argparse.Namespace) -> int:
    if args.follow:
        for event in client.events(f"/api/jobs/{args.id}/logs?follow=1", until=TERMINAL_KINDS):
            if event.kind == "logged":
                _print_json(event.json()) if args.json else console.print(_log_line(event.json()))
        return EXIT_OK
    for row in map(msgspec.to_builtins, client.logs(args.id)):
        _print_json(row) if args.json else console.print(_log_line(row))
    return EXIT_OK


def replay(client: Client, args: argparse.Namespace) -> int:
    path = f"/api/jobs/{args.id}/events?replay={args.speed}&from={args.offset}"
    for event in client.events(path, until=frozenset({"replay_end"})):
        data = event.json()
        if args.json:
            _print_json({"id": str(event.id) if event.id is not None else None, "event": event.kind, "data": data})
        elif event.kind == "logged":
            console.print(_log_line(data))
        elif event.kind == "progressed" and data.get("fraction") is not None:
            console.print(Text(f"{_clock(data['ts'])} progress {data['fraction'] * 100:.0f}%", style="dim"))
        elif event.kind not in ("snapshot", "replay_end"):
            detail = data.get("name") or data.get("error") or ""
            console.print(Text(f"{_clock(data['ts'])} {event.kind} {detail}".rstrip()))
    return EXIT_OK


def cancel(client: Client, args: argparse.Namespace) -> int:
    if args.id is None:
        if not args.status:
            console.print("give a job id, or --status (and more filters) for every job it matches")
            return EXIT_ERROR
        if args.detach and not args.dry_run:
            return _detached(client.start_cancel_matching(args.status, type=args.type, owner=args.owner, tag=args.tag),
                             args.json)
        done = client.cancel_matching(args.status, type=args.type, owner=args.owner, tag=args.tag,
                                      dry_run=args.dry_run, on_progress=None if args.json else _progress("cancelled"))
        _print_json(done) if args.json else console.print(
            (f"{done['matched']} would be cancelled" if args.dry_run else
             f"{done['matched']} matched: {done['cancelled']} cancelled, {done['cancelling']} stopping")
            + (" (more match: run it again)" if done["more"] else ""))
        return EXIT_OK
    status = client.cancel(args.id)
    _print_json({"id": args.id, "status": status}) if args.json else console.print(f"{args.id}: {status}")
    return EXIT_OK


def _progress(verb: str) -> Callable[[int, int], None]:
    """A bulk action's progress on standard error, as the gateway streams it (a line each time on a
    pipe, one line rewritten on a terminal)."""
    live = sys.stderr.isatty()
    start, end = ("\r", "") if live else ("", "\n")

    def show(done: int, matched: int) -> None:
        if matched:
            print(f"{start}{done} of {matched} {verb}", end=end, file=sys.stderr, flush=True)
        if live and matched and done == matched:
            print(file=sys.stderr)

    return show


def _detached(operation: dict[str, Any], as_json: bool) -> int:
    _print_json(operation) if as_json else console.print(
        f"operation {operation['id']} {operation['status']} (follow it: jobline operation {operation['id']})")
    return EXIT_OK


def _summary(op: dict[str, Any]) -> str:
    counts = (f"{op['cancelled']} cancelled, {op['cancelling']} stopping" if op["action"] == "cancel"
              else f"{op['deleted']} deleted")
    error = f" — {op['error']}" if op.get("error") else ""
    return f"operation {op['id']} ({op['action']}): {op['status']}, {op['done']} of {op['matched']} done: {counts}{error}"


def list_operations(client: Client, args: argparse.Namespace) -> int:
    found = client.operations()
    if args.json:
        _print_json(found)
        return EXIT_OK
    for op in found:
        console.print(_summary(op))
    if not found:
        console.print("no operation")
    return EXIT_OK


def follow_operation(client: Client, args: argparse.Namespace) -> int:
    verb = "cancelled" if client.operation(args.id)["action"] == "cancel" else "deleted"
    final = client.wait_operation(args.id, on_progress=None if args.json else _progress(verb))
    _print_json(final) if args.json else console.print(_summary(final))
    return EXIT_OK if final["status"] == "done" else EXIT_ERROR


def retry(client: Client, args: argparse.Namespace) -> int:
    filters = {k: v for k, v in job_filters(args).items() if k != "status"}
    done = client.retry_matching(args.status, dry_run=args.dry_run, **filters)
    if args.json:
        _print_json(done)
    elif args.dry_run:
        shown = ", ".join(done["retried"]) + (" …" if done["matched"] > len(done["retried"]) else "")
        console.print(f"{done['matched']} job(s) would run again" + (f": {shown}" if shown else ""))
    elif done["batch"] is None:
        console.print("no job matches")
    else:
        console.print(f"{done['matched']} matched: {done['created']} new job(s) in batch {done['batch']} "
                      f"(the Batches page follows it)")
    return EXIT_OK


def delete(client: Client, args: argparse.Namespace) -> int:
    if args.id is not None:
        client.delete(args.id)
        _print_json({"id": args.id, "deleted": True}) if args.json else console.print(f"{args.id}: deleted")
        return EXIT_OK
    if not args.status:
        console.print("give a job id, or --status (and more filters) for every ended job it matches")
        return EXIT_ERROR
    filters = {k: v for k, v in job_filters(args).items() if k != "status"}
    if args.detach and not args.dry_run:
        return _detached(client.start_delete_matching(args.status, **filters), args.json)
    done = client.delete_matching(args.status, dry_run=args.dry_run, on_progress=None if args.json else
                                  _progress("deleted"), **filters)
    _print_json(done) if args.json else console.print(
        (f"{done['matched']} would be deleted" if args.dry_run else f"{done['matched']} matched: {done['deleted']} deleted")
        + (" (more match: run it again)" if done["more"] else ""))
    return EXIT_OK


def token(client: Client, args: argparse.Namespace) -> int:
    def listed(raw: str | None) -> list[str] | None:
        return [part.strip() for part in raw.split(",") if part.strip()] if raw else None

    print(client.stream_token(listed(args.jobs), owner=args.owner, tags=listed(args.tag) or (),
                              rights=listed(args.rights) or (), types=listed(args.types), expires_in=args.expires_in))
    return EXIT_OK


def signal(client: Client, args: argparse.Namespace) -> int:
    sent = client.signal(args.id, args.name, args.data)
    _print_json(sent) if args.json else console.print(
        f"{args.id}: signal {args.name} sent; " + ("it resumes now" if sent["resumes"] else
                                                   "kept until the job waits for it (it resumes then)"))
    return EXIT_OK


COMMANDS: dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "submit": submit, "watch": lambda client, args: watch(client, args.id, args.json), "jobs": list_jobs,
    "export": export, "stats": stats, "logs": logs, "replay": replay,
    "cancel": cancel, "retry": retry, "signal": signal, "delete": delete, "token": token,
    "operations": list_operations, "operation": follow_operation,
}


def run_command(client: Client, args: argparse.Namespace) -> int:
    command = COMMANDS.get(args.command)
    return command(client, args) if command is not None else EXIT_ERROR
