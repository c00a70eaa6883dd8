"""The `jobline` command: run the system, submit and watch jobs, read logs, replay, tail NATS."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from . import alerts, queues, schedules, workers
from .exit_codes import EXIT_ERROR


def _param(raw: str) -> tuple[str, Any]:
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {raw!r}")
    try:
        return key, json.loads(value)  # numbers, booleans, lists, objects
    except json.JSONDecodeError:
        return key, value  # anything else is a string


def _moment(raw: str) -> float:
    """A time as unix seconds: `30m`/`2h`/`7d`/`90s` ago, ISO 8601, or unix seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    raw = raw.strip()
    if raw[-1:] in units and raw[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(raw[:-1]) * units[raw[-1]]
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {raw!r} (30m, 2h, 7d, ISO 8601 or unix seconds)") from None
    return moment.timestamp()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jobline", description="Event-sourced job tracking on NATS JetStream.")
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument("--url", default=os.environ.get("JOBLINE_URL", "http://127.0.0.1:8000"),
                        help="the gateway (env JOBLINE_URL; default %(default)s)")
    remote.add_argument("--token", default=os.environ.get("JOBLINE_TOKEN"), help="API token (env JOBLINE_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, parents=[remote])

    commands.add_parser("up", help="run the whole system here: embedded NATS (unless NATS_URL is set), "
                                   "gateway, processor, logsink and the web UI")
    submit = command("submit", "submit a job (or a batch of them: --batch; or a flow: --flow)")
    submit.add_argument("type", nargs="?", help="the job type (not with --batch or --flow)")
    submit.add_argument("--flow", type=Path, metavar="FILE",
                        help="submit the flow in this JSON file (as POST /api/flows takes it; - for standard input); "
                             "--wait watches its root job, which ends last")
    submit.add_argument("--batch", type=Path, metavar="FILE",
                        help="submit every job of this JSON-lines file (one job per line, as POST /api/jobs takes "
                             "it; - for standard input) as one batch; --wait shows one bar for all of them")
    submit.add_argument("--param", "-p", action="append", type=_param, default=[], metavar="KEY=VALUE",
                        help="a job parameter (VALUE is JSON if it parses, else a string); repeatable")
    submit.add_argument("--file", type=Path, help="upload this file first; its id goes into the `upload` param")
    later = submit.add_mutually_exclusive_group()
    later.add_argument("--delay", type=float, metavar="SECONDS", help="run it this many seconds from now (scheduled until then)")
    later.add_argument("--at", metavar="TIME", help="run it at this RFC 3339 time, e.g. 2026-12-01T08:00:00Z")
    submit.add_argument("--idempotency-key", help="submitting again with the same key returns the same job")
    submit.add_argument("--concurrency-key", metavar="KEY",
                        help="e.g. the user id: with the type's per-key limit (queues limit --per-key) one key's "
                             "jobs wait while another's run")
    submit.add_argument("--unique-key", metavar="KEY", help="one job of the type per key: while its job has not "
                        "ended, submitting again returns it (see --unique-mode)")
    submit.add_argument("--unique-mode", choices=("active", "throttle", "debounce"),
                        help="with --unique-key: active (default), throttle (one per window) or debounce (starts a "
                             "window after the last submission)")
    submit.add_argument("--unique-window", type=float, metavar="SECONDS", help="the throttle or debounce window")
    submit.add_argument("--priority", type=int, choices=range(0, 10), metavar="0-9",
                        help="with a backlog, a higher priority starts first (default 0)")
    submit.add_argument("--owner", help="whose job it is (a tenant or user id)")
    submit.add_argument("--tag", action="append", default=[], help="a label (repeat for more)")
    submit.add_argument("--wait", action="store_true", help="watch the job until it ends (exit code as `watch`)")
    submit.add_argument("--json", action="store_true", help="print JSON")

    watch = command("watch", "a live progress bar with the current step, ETA and log lines; "
                                              "exit 0 if it completes, 1 failed, 3 cancelled, 4 expired")
    watch.add_argument("id")
    watch.add_argument("--json", action="store_true", help="print each event as a JSON line")

    def job_filters(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--status", help="one or more statuses, comma separated (completed,failed)")
        sub.add_argument("--type", help="one or more job types, comma separated")
        sub.add_argument("--since", type=_moment, metavar="WHEN",
                         help="created at or after WHEN: 30m, 2h, 7d ago, an ISO 8601 time or unix seconds")
        sub.add_argument("--until", type=_moment, metavar="WHEN", help="created before WHEN")
        sub.add_argument("--finished-since", type=_moment, metavar="WHEN", help="ended at or after WHEN")
        sub.add_argument("--finished-until", type=_moment, metavar="WHEN", help="ended before WHEN")
        sub.add_argument("--error", help="text in the job's error (case-insensitive)")
        sub.add_argument("--owner", help="one or more owners, comma separated")
        sub.add_argument("--tag", help="one or more tags, comma separated (every one of them)")
        sub.add_argument("--param", "-p", action="append", type=_param, default=[], metavar="KEY=VALUE",
                         help="a params field equal to VALUE (JSON if it parses); nested keys with dots; repeatable")
        sub.add_argument("--result", action="append", type=_param, default=[], metavar="KEY=VALUE",
                         help="a result field equal to VALUE; repeatable")

    DETACH = ("with --status: run it as a stored operation that a conductor runs (it goes on if this command "
              "stops), print its id and return; `jobline operation ID` follows it")
    jobs = command("jobs", "list and search jobs over all history, newest first")
    job_filters(jobs)
    jobs.add_argument("--limit", type=int, default=50)
    jobs.add_argument("--json", action="store_true")

    retry = command("retry", "run every ended job a filter matches again, each as a new job (retry_of the old), "
                             "in one batch: --status failed (required) and the filters of `jobs`")
    job_filters(retry)
    retry.add_argument("--dry-run", action="store_true", help="only count what would run again")
    retry.add_argument("--json", action="store_true")

    delete = command("delete", "delete an ended job from history, or every ended job a filter matches: --status "
                               "failed (and the filters of `jobs`)")
    delete.add_argument("id", nargs="?", help="the job (or, instead, a filter: --status and more)")
    job_filters(delete)
    delete.add_argument("--dry-run", action="store_true", help="with --status: only count what would be deleted")
    delete.add_argument("--detach", action="store_true", help=DETACH)
    delete.add_argument("--json", action="store_true")

    export = command("export", "every job matching the filters as JSON lines (all pages), optionally with "
                               "their events")
    job_filters(export)
    export.add_argument("--events", action="store_true", help="add each job's whole timeline (`events`)")
    export.add_argument("--output", "-o", type=Path, help="write to this file instead of standard output")

    stats = command("stats", "jobs per status and type over all history, and run times over the last hour, day or "
                             "week")
    stats.add_argument("--window", choices=("hour", "day", "week"), default="day")
    stats.add_argument("--owner", help="only these owners' jobs (comma separated)")
    stats.add_argument("--tag", help="only jobs with every one of these tags (comma separated)")

    logs = command("logs", "a job's log lines")
    logs.add_argument("id")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the job ends")
    logs.add_argument("--json", action="store_true")

    replay = command("replay", "play a job's recorded timeline back")
    replay.add_argument("id")
    replay.add_argument("--speed", type=float, default=1.0)
    replay.add_argument("--from", dest="offset", type=float, default=0.0, help="seconds after the job's creation")
    replay.add_argument("--json", action="store_true")

    cancel = command("cancel", "cancel a job, or every live job a filter matches")
    cancel.add_argument("id", nargs="?", help="the job (or, instead, a filter: --status and more)")
    cancel.add_argument("--status", help="with no id: the live statuses to cancel, e.g. pending,retrying")
    cancel.add_argument("--type", help="with --status: only jobs of these types (comma separated)")
    cancel.add_argument("--owner", help="with --status: only these owners' jobs (comma separated)")
    cancel.add_argument("--tag", help="with --status: only jobs with every one of these tags")
    cancel.add_argument("--dry-run", action="store_true", help="with --status: only count what would be cancelled")
    cancel.add_argument("--detach", action="store_true", help=DETACH)
    cancel.add_argument("--json", action="store_true")

    operations = command("operations", "the newest stored bulk operations (cancel/delete --detach), newest first")
    operations.add_argument("--json", action="store_true")
    operation = command("operation", "a stored bulk operation, followed to its end")
    operation.add_argument("id")
    operation.add_argument("--json", action="store_true")

    token = command("token", "mint a scoped token for a page (?access_token=): it reads the jobs it is made for "
                             "and, with --rights, may submit (an owner's), cancel or signal them")
    token.add_argument("--jobs", help="these jobs only (comma separated)")
    token.add_argument("--owner", help="that owner's jobs (its submissions are stamped with it)")
    token.add_argument("--tag", help="jobs with every one of these tags (comma separated)")
    token.add_argument("--rights", default="", help="beyond reading: submit,cancel,signal")
    token.add_argument("--types", help="with submit: the only types it may submit (comma separated)")
    token.add_argument("--expires-in", type=int, metavar="SECONDS", help="its life (default 300, at most 86400)")

    signal = command("signal", "send a job a signal its handler waits for (ctx.wait_for_signal); once per name")
    signal.add_argument("id", help="the job")
    signal.add_argument("name", help="the signal's name, e.g. approval")
    signal.add_argument("--data", type=json.loads, default=None, metavar="JSON",
                        help='its payload (JSON, e.g. \'{"approved": true}\'; default null)')
    signal.add_argument("--json", action="store_true")

    schedules.add_parser(command, _param)
    queues.add_parser(command)
    workers.add_parser(command)
    alerts.add_parser(command)

    tail = commands.add_parser("tail", help="print raw events from NATS with their subject and sequence "
                                            "(for when the nats CLI is not at hand)")
    tail.add_argument("subject", nargs="?", default=None, help="default: every job event (jobs.>)")
    tail.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    tail.add_argument("--namespace", default=os.environ.get("JOBLINE_NAMESPACE", ""))
    tail.add_argument("--all", action="store_true", help="from the start of the stream, not only new events")
    tail.add_argument("--count", type=int, default=0, help="stop after this many events")
    return parser


# Commands with actions of their own (`jobline queues pause TYPE`): each module checks and runs them.
GROUPS: dict[str, Any] = {"schedules": schedules, "queues": queues, "workers": workers, "alerts": alerts}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    group = GROUPS.get(args.command)
    if args.command == "submit" and [args.type, args.batch, args.flow].count(None) != 2:
        parser.error("submit needs one of a job TYPE, --batch FILE or --flow FILE")
    if group is not None:
        group.check(parser, args)
    if args.command == "retry" and not args.status:
        parser.error("retry needs --status (the ended statuses to run again, e.g. failed)")
    if args.command == "up":
        from .launcher import up

        return up()
    if args.command == "tail":
        from .tail import tail

        return asyncio.run(tail(args.nats_url, args.namespace, args.subject, args.all, args.count))
    from jobline.client import ApiError, Client, Unreachable

    from .commands import run_command

    client = Client(args.url, token=args.token)
    try:
        return int(group.run(client, args)) if group is not None else run_command(client, args)
    except ApiError as exc:
        print(f"error: {exc.detail or exc.title} ({exc.status})", file=sys.stderr)
        return EXIT_ERROR
    except Unreachable as exc:
        print(f"error: the gateway did not answer: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
