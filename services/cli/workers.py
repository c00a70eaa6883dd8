"""`jobline workers …`: the processors at work — list, drain ID, resume ID."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from .exit_codes import EXIT_OK

if TYPE_CHECKING:  # the parser is built on every `jobline` start (also `up`): the client loads when used
    from jobline.client import Client

ACTIONS = ("list", "drain", "resume")


def add_parser(command: Any) -> None:
    workers = command("workers", "the processors at work: list | drain ID (takes no new job, finishes its own) "
                                 "| resume ID")
    workers.add_argument("action", nargs="?", choices=ACTIONS, default="list")
    workers.add_argument("id", nargs="?", help="the worker's id (as listed)")
    workers.add_argument("--json", action="store_true")


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.action != "list" and not args.id:
        parser.error(f"workers {args.action} needs the worker's ID")


def run(client: Client, args: argparse.Namespace) -> int:
    import msgspec
    from rich.table import Table

    from .commands import console

    if args.action == "list":
        workers = client.workers()
    else:
        workers = [client.drain_worker(args.id) if args.action == "drain" else client.resume_worker(args.id)]
    if args.json:
        rows = msgspec.to_builtins(workers)
        print(json.dumps(rows if args.action == "list" else rows[0]))
        return EXIT_OK
    table = Table("id", "state", "types", "running", "slots", "done", "version", "last beat")
    now = time.time()
    for w in workers:
        table.add_row(w.id, w.state, ", ".join(w.types), str(w.running), str(w.slots), str(w.jobs_done), w.version,
                      f"{max(now - w.beat_at, 0):.0f}s ago")
    console.print(table)
    return EXIT_OK
