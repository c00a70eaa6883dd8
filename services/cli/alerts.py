"""`jobline alerts …`: failure alert rules — list, set NAME, delete NAME."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from .exit_codes import EXIT_OK

if TYPE_CHECKING:  # the parser is built on every `jobline` start (also `up`): the client loads when used
    from jobline.client import Client

ACTIONS = ("list", "set", "delete")


def add_parser(command: Any) -> None:
    alerts = command("alerts", "failure alert rules: list | set NAME [--type T] [--failures N] [--window SECONDS] "
                               "[--rate SHARE] [--webhook URL] | delete NAME")
    alerts.add_argument("action", nargs="?", choices=ACTIONS, default="list")
    alerts.add_argument("name", nargs="?", help="the rule's name")
    alerts.add_argument("--type", help="the job type it watches (default: every type)")
    alerts.add_argument("--failures", type=int, default=5, help="fires with at least this many failed jobs (default 5)")
    alerts.add_argument("--window", type=float, default=600.0, metavar="SECONDS",
                        help="… that ended within this many seconds (default 600)")
    alerts.add_argument("--rate", type=float, metavar="SHARE", help="… and at least this share of the jobs that ended")
    alerts.add_argument("--webhook", metavar="URL", help="sent one alert when it fires and one when it resolves")
    alerts.add_argument("--json", action="store_true")


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.action != "list" and not args.name:
        parser.error(f"alerts {args.action} needs the rule's NAME")


def run(client: Client, args: argparse.Namespace) -> int:
    import msgspec
    from rich.table import Table

    from .commands import console

    if args.action == "delete":
        client.delete_alert(args.name)
        console.print(f"deleted {args.name}")
        return EXIT_OK
    if args.action == "set":
        records = [client.set_alert(args.name, type=args.type, min_failures=args.failures, window_s=args.window,
                                    min_rate=args.rate, webhook_url=args.webhook)]
    else:
        records = client.alerts()
    if args.json:
        rows = msgspec.to_builtins(records)
        print(json.dumps(rows if args.action == "list" else rows[0]))
        return EXIT_OK
    table = Table("name", "state", "type", "rule", "failures now", "webhook")
    for r in records:
        rule = f"≥ {r.rule.min_failures} in {r.rule.window_s:g}s" + (f", ≥ {r.rule.min_rate:.0%}" if r.rule.min_rate else "")
        table.add_row(r.name, "FIRING" if r.state.firing else "ok", r.rule.type or "(every type)", rule,
                      str(r.state.failures), r.rule.webhook_url or "-")
    console.print(table)
    return EXIT_OK
