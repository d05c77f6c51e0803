"""The aggregator's memory over a long run: its resident set sampled while a fleet streams through it.

``smartzone aggregate`` and ``smartzone simulate`` run as their own processes, as an operator runs them, on the
project's Mosquitto (generated logins) with a SQLite database, and anvil as the chain (``node_modules/.bin/anvil``;
``--embedded-chain`` keeps the chain in the aggregator's process, whose in-memory blocks then count too). The
aggregator's RSS is read from ``/proc/<pid>/status`` every ``--every`` seconds. Printed: RSS after the first
minute (the baseline: imports, registry, caches warm), at the end, the largest, and the ratio end / baseline
(flat ≈ 1).

    python -m bench.memory [--vehicles 1000] [--minutes 10] [--speed 1] [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from smartzone.broker import free_port, mosquitto, mosquitto_binary, wait_open
from smartzone.broker_access import Role, generate, url_for

OPERATOR = "smartzone-demo"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def rss_mb(pid: int) -> float | None:
    """Resident set of ``pid`` in MB, or None once it has ended."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def smartzone(*args: str, env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-m", "smartzone.cli", *args], env=env, text=True, **kwargs
    )


@contextmanager
def chain(binary: Path | None) -> Iterator[str | None]:
    """An anvil node on a free loopback port (None: no node, the aggregator embeds its chain)."""
    if binary is None:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen(
        [str(binary), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_open(port, 30):
            raise SystemExit("anvil did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0, help="simulated minutes")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--quick", action="store_true", help="a smoke: 50 vehicles, 1 simulated minute at 10x")
    parser.add_argument("--embedded-chain", action="store_true", help="py-evm inside the aggregator, not anvil")
    args = parser.parse_args(argv)
    if args.quick:
        args.vehicles, args.minutes, args.speed, args.every = 50, 1.0, 10.0, 1.0
    binary = mosquitto_binary()
    if binary is None:
        raise SystemExit("bench.memory needs the mosquitto binary")
    access = generate("smartzone", [OPERATOR])
    anvil = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "anvil"
    with (
        tempfile.TemporaryDirectory(prefix="smartzone-memory-") as folder,
        mosquitto(binary, access=access) as broker,
        chain(None if args.embedded_chain or not anvil.exists() else anvil) as chain_url,
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTZONE_")}
        env.update(SMARTZONE_DATA_DIR=folder, SMARTZONE_LOG_LEVEL="WARNING", SMARTZONE_EPOCH_SECONDS="10")
        if chain_url:
            env["SMARTZONE_CHAIN_URL"] = chain_url
        say(f"chain: {chain_url or 'embedded py-evm in the aggregator'}")
        subprocess.run([sys.executable, "-m", "smartzone.cli", "db", "upgrade"], env=env, check=True,
                       capture_output=True)  # fmt: skip
        aggregator = smartzone(
            "aggregate",
            env={**env, "SMARTZONE_MQTT_URL": url_for(access.find(Role.AGGREGATOR), broker.url)},
            stdout=subprocess.PIPE,
        )
        try:
            assert aggregator.stdout is not None
            line = aggregator.stdout.readline()
            if not line.startswith("aggregating"):
                raise SystemExit(f"the aggregator did not start: {line}")
            say(f"aggregator pid {aggregator.pid}; running {args.vehicles} vehicles for {args.minutes:g} simulated "
                f"minutes at {args.speed:g}x")  # fmt: skip
            simulator = smartzone(
                "simulate", "--vehicles", str(args.vehicles), "--minutes", str(args.minutes),
                "--speed", str(args.speed),
                env={**env, "SMARTZONE_MQTT_URL": url_for(access.find(Role.GATEWAY, OPERATOR), broker.url)},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            started = time.monotonic()
            samples: list[tuple[float, float]] = []
            while simulator.poll() is None:
                time.sleep(args.every)
                mb = rss_mb(aggregator.pid)
                if mb is None:
                    raise SystemExit("the aggregator ended during the run")
                samples.append((time.monotonic() - started, mb))
                if len(samples) % max(1, int(60 / args.every)) == 0:
                    say(f"  {samples[-1][0]:6.0f} s: aggregator RSS {mb:.1f} MB")
            time.sleep(args.every)
            end = rss_mb(aggregator.pid)
        finally:
            aggregator.terminate()
            aggregator.wait(timeout=60)
    if not samples or end is None:
        raise SystemExit("no samples")
    warm = [mb for t, mb in samples if t >= min(60.0, samples[-1][0] / 2)]
    baseline, largest = warm[0], max(mb for _, mb in samples)
    print(
        f"aggregator RSS: {baseline:.1f} MB after warm-up, {end:.1f} MB at the end, largest {largest:.1f} MB"
        f"; end / warm-up {end / baseline:.2f}; {len(samples)} samples every {args.every:g} s over "
        f"{samples[-1][0]:.0f} s; {args.vehicles} vehicles, {args.minutes:g} simulated minutes at {args.speed:g}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
