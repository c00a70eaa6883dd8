"""The `jobline` command."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobline", description="Event-sourced job tracking on NATS JetStream.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="run the whole system here: embedded NATS (unless NATS_URL is set), "
                                   "gateway, processor, logsink and the web UI")
    args = parser.parse_args(argv)
    if args.command == "up":
        from .launcher import up

        return up()
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
