"""``make bench``: per-message latency and throughput of scripted intakes over the REST channel.

Starts the whole product on free loopback ports with a throwaway database, then drives the
same scripted intake conversation:

1. one conversation at a time, ``--rounds`` times;
2. ``--concurrency`` conversations at once, each sending its next message as soon as the
   reply arrives (a saturation test), ``--rounds`` times;
3. ``--concurrency`` conversations at once, each pausing ``--think`` seconds between messages
   as a person reading and typing would (its msg/s is the offered load, not capacity).

It prints p50/p95 per-message latency, messages per second, and the peak resident memory
(VmHWM) of the Rasa server and the action server. Figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bot.db import migrate
from bot.run import start_stack

# One whole intake, as a visitor would type it.
SCRIPT: tuple[str, ...] = (
    "hi", "I'd like to get started", "Maria", "503 555 0199", "maria@example.com",
    "weekday mornings", "Oregon", "depression and anxiety", "about ten years", "four",
    "therapy and TMS", "no", "sertraline and lamotrigine", "my psychiatrist", "yes", "yes",
    "yes",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


async def _conversation(session: aiohttp.ClientSession, url: str,
                        think: float = 0.0) -> list[float]:
    sender = f"bench-{uuid.uuid4().hex}"
    latencies = []
    for index, message in enumerate(SCRIPT):
        if think and index:
            await asyncio.sleep(think)
        started = time.perf_counter()
        async with session.post(url, json={"sender": sender, "message": message}) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
        latencies.append(time.perf_counter() - started)
    return latencies


async def _round(url: str, concurrency: int, think: float = 0.0) -> tuple[list[float], float]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(_conversation(session, url, think) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return [latency for latencies in results for latency in latencies], elapsed


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _report(label: str, latencies: list[float], elapsed: float, messages: int) -> dict:
    figures = {
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "messages_per_s": messages / elapsed,
    }
    print(f"  {label:<28} p50 {figures['p50_ms']:7.1f} ms   p95 {figures['p95_ms']:7.1f} ms"
          f"   {figures['messages_per_s']:6.1f} msg/s   ({messages} messages)")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--think", type=float, default=3.0,
                        help="seconds each paced conversation waits between messages")
    args = parser.parse_args(argv)

    data_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    env = dict(os.environ)
    env.update({
        "BOT_DATA_DIR": str(data_dir),
        "BOT_DATABASE_URL": f"sqlite:///{data_dir / 'app.db'}",
        "BOT_TRACKER_DB": str(data_dir / "tracker.db"),
    })
    migrate.upgrade(env["BOT_DATABASE_URL"])
    print(f"Starting the stack (data in {data_dir})...")
    stack = start_stack(env=env, action_port=_free_port(), rasa_port=_free_port(),
                        demo_port=None, log_dir=data_dir / "logs")
    url = f"{stack.rasa_url}/webhooks/rest/webhook"
    try:
        asyncio.run(_round(url, 2))  # warm-up: first predictions load lazily
        print(f"Scripted intake of {len(SCRIPT)} messages, {args.rounds} rounds each:")
        for concurrency in (1, args.concurrency):
            latencies: list[float] = []
            elapsed = 0.0
            for _ in range(args.rounds):
                round_latencies, round_elapsed = asyncio.run(_round(url, concurrency))
                latencies += round_latencies
                elapsed += round_elapsed
            _report(f"{concurrency} concurrent conversation(s)", latencies, elapsed,
                    len(latencies))
        # People read and type between messages; this offers the load 20 such people make.
        latencies, elapsed = asyncio.run(_round(url, args.concurrency, args.think))
        _report(f"{args.concurrency} paced ({args.think:g} s between)", latencies, elapsed,
                len(latencies))
        print("Peak resident memory (VmHWM):")
        for name in ("rasa", "actions"):
            print(f"  {name:<8} {_peak_rss_mib(stack.processes[name].pid):7.0f} MiB")
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
