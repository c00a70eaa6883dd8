"""`jobline queues …`: each job type's queue — list, pause, resume, limit."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from .exit_codes import EXIT_OK

if TYPE_CHECKING:  # the parser is built on every `jobline` start (also `up`): the client loads when used
    from jobline.client import Client

ACTIONS = ("list", "pause", "resume", "limit")


def _limit(raw: str) -> int | None:
    if raw.lower() in ("none", "off", "-"):
        return None
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("a limit is 1 or more (none lifts it)")
    return value


def add_parser(command: Any) -> None:
    queues = command("queues", "job types' queues: list | pause TYPE | resume TYPE | limit TYPE [--concurrency N] "
                               "[--rate N [--per SECONDS]]")
    queues.add_argument("action", nargs="?", choices=ACTIONS, default="list")
    queues.add_argument("type", nargs="?", help="the job type")
    queues.add_argument("--concurrency", type=_limit, default=argparse.SUPPRESS, metavar="N|none",
                        help="limit: at most N of the type running at once on the whole cluster")
    queues.add_argument("--per-key", type=_limit, default=argparse.SUPPRESS, metavar="N|none",
                        help="limit: at most N of the type running at once per concurrency_key (e.g. per user)")
    queues.add_argument("--rate", type=_limit, default=argparse.SUPPRESS, metavar="N|none",
                        help="limit: at most N starts per --per seconds")
    queues.add_argument("--per", type=float, default=argparse.SUPPRESS, metavar="SECONDS",
                        help="limit: the rate window (default 1 s)")
    queues.add_argument("--json", action="store_true")


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.action != "list" and not args.type:
        parser.error(f"queues {args.action} needs the job TYPE")
    if args.action == "limit" and not ({"concurrency", "per_key", "rate", "per"} & set(vars(args))):
        parser.error("queues limit needs --concurrency, --per-key, --rate or --per")


def run(client: Client, args: argparse.Namespace) -> int:
    import msgspec
    from rich.table import Table

    from .commands import console

    if args.action == "list":
        queues = client.queues()
    elif args.action == "limit":
        given = vars(args)
        limits = {name: given[option] for option, name in (("concurrency", "concurrency"), ("per_key", "key_concurrency"),
                                                           ("rate", "rate_max"), ("per", "rate_window_s"))
                  if option in given}
        queues = [client.set_queue_limits(args.type, **limits)]
    else:
        queues = [client.pause_queue(args.type) if args.action == "pause" else client.resume_queue(args.type)]
    if args.json:
        rows = msgspec.to_builtins(queues)
        print(json.dumps(rows if args.action == "list" else rows[0]))
        return EXIT_OK
    table = Table("type", "state", "waiting", "running", "concurrency", "per key", "rate")
    for q in queues:
        rate = f"{q.rate_max}/{q.rate_window_s:g}s" if q.rate_max is not None else "-"
        table.add_row(q.type, "paused" if q.paused else "active", str(q.waiting), str(q.running),
                      str(q.concurrency) if q.concurrency is not None else "-",
                      str(q.key_concurrency) if q.key_concurrency is not None else "-", rate)
    console.print(table)
    return EXIT_OK
