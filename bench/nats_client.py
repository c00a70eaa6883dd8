"""What nats-py itself costs per message on this machine (issue 25: "the client library's own cost"),
in tight loops with nothing of Jobline around them — the floor under every service's per-event cost.

    python -m bench.nats_client            # 20,000 messages a case, 3 rounds (~30 s)
    python -m bench.nats_client --smoke

Each case runs in this process on the services' event loop (uvloop); CPU is this process's own
(`time.process_time`) and the nats-server's (/proc), per message, medians of the rounds:

- `core publish`: fire-and-forget publishes, flushed at the end.
- `acked publish, 64 in flight`: JetStream publishes awaiting each PubAck (how the services write
  events), with a job event's headers (a unique `Nats-Msg-Id`, a header the size of an expected-sequence fence).
- `…, Jobline's publish_acked`: the services' own (runtime/publishing.py: the ack read by msgspec).
- `acked publish, one at a time`: the same, each awaited before the next (the processor's run chain).
- `delivered, pull + callback`: stored messages with those headers taken by a pull consumer into a
  callback, as the services' consume loop does (runtime/pull.py: a core subscription on an inbox,
  `+NXT`-style credit asked in batches).
- `delivered, headers not parsed`: the same messages published without headers (what parsing a
  job event's header block costs nats-py, by difference).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from jobline.runtime.embedded_nats import start_nats_server
from jobline.runtime.publishing import publish_acked

from . import loop
from .flood import cpu_seconds

# A job event's header block: a unique Nats-Msg-Id and a header of a fence's size (the server does not check it).
HEADERS = {"Nats-Msg-Id": "01m99hbdqcgp050ssrvyvnhsbt:1:started", "Jobline-Fence-Sequence": "1234"}
BODY = b'{"kind":"started","ts":1796713523.41,"job_id":"01m99hbdqcgp050ssrvyvnhsbt","attempt":1,"worker":"w-1"}'


async def measured(server_pid: int, n: int, work: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """(µs of this process's CPU, µs of the server's) per message for `work`."""
    ours, theirs = time.process_time(), cpu_seconds(server_pid)
    await work()
    return ((time.process_time() - ours) / n * 1e6, (cpu_seconds(server_pid) - theirs) / n * 1e6)


async def one_round(nc: Client, server_pid: int, n: int, rnd: int) -> dict[str, tuple[float, float]]:
    js = nc.jetstream()
    stream = f"CLIENT_COST_{rnd}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"cost{rnd}.>"]))
    results: dict[str, tuple[float, float]] = {}

    async def core() -> None:
        for _ in range(n):
            await nc.publish(f"nowhere{rnd}", BODY)
        await nc.flush()

    async def acked(in_flight: int, subject: str, headers: dict[str, str] | None, count: int = n,
                    ours: bool = False) -> None:
        left = iter(range(count))

        async def publisher() -> None:
            for i in left:
                if ours:
                    await publish_acked(js, subject, BODY, {**HEADERS, "Nats-Msg-Id": f"{subject}:{i}"}, 5.0)
                else:
                    await js.publish(subject, BODY, headers=headers and {**headers, "Nats-Msg-Id": f"{subject}:{i}"})

        await asyncio.gather(*(publisher() for _ in range(in_flight)))

    async def delivered(subject: str) -> None:
        durable = f"cost-{subject.replace('.', '-')}"
        await js.add_consumer(stream, ConsumerConfig(durable_name=durable, deliver_policy=DeliverPolicy.ALL,
                                                     ack_policy=AckPolicy.NONE, filter_subject=subject))
        got, done = 0, asyncio.Event()
        inbox = nc.new_inbox()

        async def on_message(msg: Msg) -> None:
            nonlocal got
            if msg.data:
                got += 1
                if got == n:
                    done.set()

        sub = await nc.subscribe(inbox, cb=on_message)
        request = json.dumps({"batch": n, "expires": 60_000_000_000}).encode()
        await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}", request, reply=inbox)
        async with asyncio.timeout(120):
            await done.wait()
        await sub.unsubscribe()

    results["core publish"] = await measured(server_pid, n, core)
    results["acked publish, 64 in flight"] = await measured(server_pid, n, lambda: acked(64, f"cost{rnd}.h", HEADERS))
    results["acked publish, 64 in flight, Jobline's publish_acked"] = await measured(
        server_pid, n, lambda: acked(64, f"cost{rnd}.ours", HEADERS, ours=True))
    results["acked publish, one at a time"] = await measured(server_pid, n // 4,
                                                             lambda: acked(1, f"cost{rnd}.one", HEADERS, n // 4))
    await acked(64, f"cost{rnd}.bare", None)  # (the same messages without headers, to deliver below)
    results["delivered, pull + callback"] = await measured(server_pid, n, lambda: delivered(f"cost{rnd}.h"))
    results["delivered, headers not parsed"] = await measured(server_pid, n, lambda: delivered(f"cost{rnd}.bare"))
    await js.delete_stream(stream)
    return results


async def main(args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_nats_server(Path(tmp) / "nats")
        nc = await nats.connect(server.url)
        try:
            rounds = [await one_round(nc, server.process.pid, args.messages, rnd) for rnd in range(args.rounds)]
        finally:
            await nc.close()
            server.stop()
    return {case: (statistics.median(r[case][0] for r in rounds), statistics.median(r[case][1] for r in rounds))
            for case in rounds[0]}


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000, help="messages a case")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only proves the tool works")
    args = parser.parse_args()
    if args.smoke:
        args.messages, args.rounds = 400, 1
    medians = loop.run(main(args))
    print(f"nats-py CPU per message, {args.messages:,} messages a case, medians of {args.rounds} round(s)\n")
    print("| case | µs in the client's process | µs in nats-server |\n|---|---:|---:|")
    for case, (ours, theirs) in medians.items():
        print(f"| {case} | {ours:.1f} | {theirs:.1f} |")


if __name__ == "__main__":
    cli()
