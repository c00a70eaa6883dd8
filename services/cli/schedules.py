"""`jobline schedules …`: list, show, create, pause, resume and delete recurring schedules."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .exit_codes import EXIT_OK

if TYPE_CHECKING:  # the parser is built on every `jobline` start (also `up`): the client loads when used
    from jobline.client import Client, ScheduleView


ACTIONS = ("list", "show", "create", "pause", "resume", "delete")


def add_parser(command: Any, param: Any) -> None:
    help = ("recurring schedules: list | show NAME | create NAME --cron EXPR --type TYPE | pause NAME | resume NAME "
            "| delete NAME")
    schedules = command("schedules", help)
    schedules.add_argument("action", nargs="?", choices=ACTIONS, default="list")
    schedules.add_argument("name", nargs="?", help="the schedule (lowercase letters, digits, '-' and '_')")
    schedules.add_argument("--cron", help="create: 5 fields (minute hour day month weekday), or 6 with seconds "
                                          "first, or @daily etc.")
    schedules.add_argument("--type", help="create: the job type each tick submits")
    schedules.add_argument("--param", "-p", action="append", type=param, default=[], metavar="KEY=VALUE",
                           help="create: a job parameter (VALUE is JSON if it parses); repeatable")
    schedules.add_argument("--tz", default="UTC", help="create: IANA time zone of the cron expression (default UTC)")
    schedules.add_argument("--overlap", choices=("allow", "skip"), default="allow",
                           help="create: skip = no new run while the previous one has not ended")
    schedules.add_argument("--catchup", type=float, metavar="SECONDS",
                           help="create: ticks missed for less than this still run (default: the gateway's)")
    schedules.add_argument("--timeout", type=float, metavar="SECONDS", help="create: each job's run time limit")
    schedules.add_argument("--paused", action="store_true", help="create: create it paused")
    schedules.add_argument("--json", action="store_true")


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.action != "list" and not args.name:
        parser.error(f"schedules {args.action} needs the schedule's NAME")
    if args.action == "create" and not (args.cron and args.type):
        parser.error("schedules create needs --cron and --type")


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _show(schedule: ScheduleView) -> None:
    from .commands import console

    state = "paused" if schedule.paused else "active"
    console.print(f"[bold]{schedule.name}[/bold]  {schedule.cron}  ({schedule.timezone}, {state}, overlap "
                  f"{schedule.overlap}, catch-up {schedule.catchup_window_s:g}s)")
    console.print(f"job: {json.dumps(schedule.job)}")
    console.print("next runs: " + (", ".join(schedule.next_runs) or "-"))
    console.print(f"jobs made: {schedule.jobs_created}, last {schedule.last_job_id or '-'} (tick {_when(schedule.last_tick)})")
    if schedule.missed:
        console.print(f"missed ticks: {schedule.missed_total}")
        for missed in schedule.missed[-5:]:
            console.print(f"  {_when(missed.tick)} ×{missed.count}: {missed.reason}")


def run(client: Client, args: argparse.Namespace) -> int:
    import msgspec
    from rich.table import Table

    from .commands import console

    action, as_json = args.action, args.json
    if action == "list":
        schedules = client.schedules()
        if as_json:
            print(json.dumps(msgspec.to_builtins(schedules)))
            return EXIT_OK
        table = Table("name", "cron", "time zone", "state", "next run", "jobs", "missed")
        for s in schedules:
            table.add_row(s.name, s.cron, s.timezone, "paused" if s.paused else "active",
                          s.next_runs[0] if s.next_runs else "-", str(s.jobs_created), str(s.missed_total))
        console.print(table)
        return EXIT_OK
    if action == "delete":
        client.delete_schedule(args.name)
        print(json.dumps({"name": args.name, "deleted": True})) if as_json else console.print(f"deleted {args.name}")
        return EXIT_OK
    if action == "create":
        options = {"timeout_s": args.timeout} if args.timeout is not None else {}
        schedule = client.create_schedule(args.name, args.cron, args.type, dict(args.param), timezone=args.tz,
                                          overlap=args.overlap, catchup_window_s=args.catchup, paused=args.paused,
                                          **options)
    elif action == "pause":
        schedule = client.pause_schedule(args.name)
    elif action == "resume":
        schedule = client.resume_schedule(args.name)
    else:
        schedule = client.schedule(args.name)
    print(json.dumps(msgspec.to_builtins(schedule))) if as_json else _show(schedule)
    return EXIT_OK
