"""Publish throughput of the project's MQTT adapter against a bare paho client, in the same run.

Both publish the same simulator payloads (QoS 1 events and QoS 0 telemetry, as the simulator does) to a
Mosquitto started with the project's settings on a free loopback port, and wait until the broker has
acknowledged everything. Rounds alternate between the two; the medians and their ratio are printed.

    python bench/publish.py [--messages 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Sequence

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from sensors.codec import channel_of, encode
from sensors.mqtt import MqttClient
from sensors.topics import Channel, topic_for
from simulator.fleet import Fleet, FleetConfig
from smartzone.broker import mosquitto
from smartzone.broker_access import generate


def workload(n: int) -> list[tuple[str, bytes, int]]:
    """``n`` (topic, payload, qos) triples from a seeded fleet."""
    fleet = Fleet(FleetConfig(vehicles=200, seed=1))
    out: list[tuple[str, bytes, int]] = []
    now = 1_795_000_000_000
    while len(out) < n:
        for message in fleet.step(now):
            channel = channel_of(message)
            qos = 0 if channel is Channel.TELEMETRY else 1
            out.append((topic_for(message.operator, message.vehicle_id, channel, "bench"), encode(message), qos))
        now += 1000
    return out[:n]


Item = tuple[str, bytes, int] | tuple[str, bytes, int, bool]
"""(topic, payload, qos) or (topic, payload, qos, retain)."""


def with_retain(messages: Sequence[Item]) -> list[tuple[str, bytes, int, bool]]:
    """Every item as (topic, payload, qos, retain), made before any clock starts."""
    return [(m[0], m[1], m[2], bool(m[3]) if len(m) > 3 else False) for m in messages]


def bare_paho(
    url_port: int, messages: Sequence[Item], login: tuple[str, str] | None = None, inflight: int = 100
) -> float:
    """Seconds for a plain paho v5 client to publish ``messages`` and see them all acknowledged or sent.

    paho's own flow control: ``inflight`` QoS 1 messages on the wire, the rest queued in paho (no limit). It
    fails past about 65,535 messages not yet acknowledged: keep a round below that.
    """
    items = with_retain(messages)
    done = threading.Event()
    left = [len(items)]
    lock = threading.Lock()

    def on_publish(*_: object) -> None:
        with lock:
            left[0] -= 1
            if left[0] == 0:
                done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=MQTTProtocolVersion.MQTTv5)
    if login is not None:
        client.username_pw_set(*login)
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", url_port)
    client.loop_start()
    started = time.perf_counter()
    for topic, payload, qos, retain in items:
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc:
            raise RuntimeError(f"bare paho publish failed: {paho.error_string(info.rc)}")
    done.wait(120)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    if left[0]:
        raise RuntimeError(f"bare paho: {left[0]} messages still unacknowledged after 120 s")
    return elapsed


def adapter(url: str, messages: Sequence[Item]) -> float:
    """Seconds for the project's ``MqttClient`` to publish ``messages`` and flush."""
    items = with_retain(messages)
    client = MqttClient(url, "bench-adapter").connect()
    started = time.perf_counter()
    for topic, payload, qos, retain in items:
        client.publish(topic, payload, qos, retain)
    client.flush(120)
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    messages = workload(args.messages)
    ours: list[float] = []
    base: list[float] = []
    with mosquitto(binary, access=generate("bench", ["op"], demo=True)) as broker:  # anonymous: a demo broker
        port = int(broker.url.rsplit(":", 1)[1])
        for round_ in range(1, args.rounds + 1):
            base.append(bare_paho(port, messages))
            ours.append(adapter(broker.url, messages))
            print(
                f"round {round_}/{args.rounds}: bare paho {len(messages) / base[-1]:,.0f} msg/s, "
                f"adapter {len(messages) / ours[-1]:,.0f} msg/s",
                file=sys.stderr,
                flush=True,
            )
    rate_base = len(messages) / statistics.median(base)
    rate_ours = len(messages) / statistics.median(ours)
    print(f"messages per round: {len(messages)} ({sum(q for *_, q in messages)} at QoS 1)")
    print(f"bare paho publisher: {rate_base:,.0f} msg/s (median of {args.rounds})")
    print(f"sensors.mqtt adapter: {rate_ours:,.0f} msg/s (median of {args.rounds})")
    print(f"ratio adapter / bare paho: {rate_ours / rate_base:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
