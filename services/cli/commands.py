"""The HTTP-side commands of `jobline`: submit, watch, jobs, logs, replay, cancel."""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

from .client import Gateway
from .exit_codes import EXIT_BY_STATUS, EXIT_ERROR, EXIT_OK, TERMINAL

console = Console(highlight=False)
LEVEL_STYLE = {"error": "red", "critical": "bold red", "warning": "yellow", "debug": "dim"}


def guess_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _print_json(value: Any) -> None:
    print(json.dumps(value), flush=True)


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def _log_line(line: dict[str, Any]) -> Text:
    # Text objects: a log line is shown as it is, never interpreted as markup.
    text = Text(f"{_clock(line['ts'])} ", style="dim")
    text.append(line["message"], style=LEVEL_STYLE.get(line.get("level", "info"), ""))
    return text


def watch(gateway: Gateway, job_id: str, as_json: bool) -> int:
    status = "pending"
    if as_json:
        for event in gateway.stream(f"/api/jobs/{job_id}/events"):
            _print_json({"id": event.id, "event": event.kind, "data": event.data})
            status = _status_after(event.kind, event.data, status)
        return EXIT_BY_STATUS.get(status, EXIT_ERROR)
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[eta]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(job_id, total=100, eta="")
        for event in gateway.stream(f"/api/jobs/{job_id}/events"):
            data = event.data
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
    job = gateway.job(job_id)
    if job["status"] == "completed":
        console.print(Text(f"completed: {json.dumps(job['result'])}", style="green"))
    else:
        console.print(Text(f"{job['status']}: {job.get('error') or ''}", style="red"))
    for artifact in job.get("artifacts", []):
        console.print(Text(f"artifact {artifact['name']}: {gateway_url(gateway)}{artifact['url']}"))
    return EXIT_BY_STATUS.get(job["status"], EXIT_ERROR)


def gateway_url(gateway: Gateway) -> str:
    return str(gateway._http.base_url).rstrip("/")  # noqa: SLF001 - the client's own base URL


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
    }
    for root, pairs in (("params", args.param), ("result", args.result)):
        for key, value in pairs:
            filters[f"{root}.{key}"] = value if isinstance(value, str) else json.dumps(value)
    return filters


def export(gateway: Gateway, args: argparse.Namespace) -> int:
    """Every matching job as one JSON line (with `events` when asked), newest first."""
    out = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
    count = 0
    try:
        for page in gateway.job_pages(job_filters(args)):
            for job in page:
                if args.events:
                    job["events"] = gateway.timeline(job["id"])
                out.write(json.dumps(job, separators=(",", ":")) + "\n")
                count += 1
    finally:
        if args.output:
            out.close()
    print(f"exported {count} job(s)", file=sys.stderr)
    return EXIT_OK


def stats(gateway: Gateway, window: str) -> int:
    counts = gateway.get("/api/stats/counts")
    activity = gateway.get("/api/stats/activity", window=window)
    table = Table("type", *counts["by_status"], "total", title=f"{counts['total']} job(s) in the history")
    for job_type, by_status in sorted(counts["by_type"].items()):
        table.add_row(job_type, *(str(by_status.get(s, 0)) for s in counts["by_status"]), str(sum(by_status.values())))
    console.print(table)
    runs = Table("type", "ran", "p50", "p90", "p99", "max", title=f"run times, last {window}")

    def seconds(value: float | None) -> str:
        return "" if value is None else f"{value:.3g}s"

    for row in activity["durations"]:
        runs.add_row(row["type"], str(row["count"]), seconds(row["p50_s"]), seconds(row["p90_s"]),
                     seconds(row["p99_s"]), seconds(row["max_s"]))
    console.print(runs)
    return EXIT_OK


def run_command(gateway: Gateway, args: argparse.Namespace) -> int:
    match args.command:
        case "submit":
            params = dict(args.param)
            if args.file is not None:
                stored = gateway.upload(args.file, guess_type(args.file))
                params["upload"] = stored["id"]
            accepted = gateway.submit(args.type, params, args.idempotency_key)
            if args.json and not args.wait:
                _print_json(accepted)
            elif not args.json:
                console.print(f"submitted {accepted['id']}")
            else:
                print(accepted["id"], file=sys.stderr)
            return watch(gateway, accepted["id"], args.json) if args.wait else EXIT_OK
        case "watch":
            return watch(gateway, args.id, args.json)
        case "jobs":
            rows = gateway.jobs(job_filters(args), args.limit)
            if args.json:
                _print_json(rows)
                return EXIT_OK
            table = Table("id", "type", "status", "progress", "created")
            for job in rows:
                table.add_row(job["id"], job["type"], job["status"], f"{round((job['progress'] or 0) * 100)}%",
                              _when(job["created_at"]))
            console.print(table)
            return EXIT_OK
        case "export":
            return export(gateway, args)
        case "stats":
            return stats(gateway, args.window)
        case "logs":
            if args.follow:
                for event in gateway.stream(f"/api/jobs/{args.id}/logs?follow=1"):
                    if event.kind == "logged":
                        _print_json(event.data) if args.json else console.print(_log_line(event.data))
                return EXIT_OK
            rows = gateway.logs(args.id)
            for row in rows:
                _print_json(row) if args.json else console.print(_log_line(row))
            return EXIT_OK
        case "replay":
            path = f"/api/jobs/{args.id}/events?replay={args.speed}&from={args.offset}"
            for event in gateway.stream(path):
                if args.json:
                    _print_json({"id": event.id, "event": event.kind, "data": event.data})
                elif event.kind == "logged":
                    console.print(_log_line(event.data))
                elif event.kind == "progressed" and event.data.get("fraction") is not None:
                    console.print(Text(f"{_clock(event.data['ts'])} progress {event.data['fraction'] * 100:.0f}%", style="dim"))
                elif event.kind not in ("snapshot", "replay_end"):
                    detail = event.data.get("name") or event.data.get("error") or ""
                    console.print(Text(f"{_clock(event.data['ts'])} {event.kind} {detail}".rstrip()))
            return EXIT_OK
        case "cancel":
            answer = gateway.cancel(args.id)
            _print_json(answer) if args.json else console.print(f"{args.id}: {answer['status']}")
            return EXIT_OK
    return EXIT_ERROR
