"""The ``smartzone`` command: ``up`` runs everything; ``simulate``, ``aggregate`` and ``serve`` run one part."""

from __future__ import annotations

import argparse
import errno
import logging
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from sensors.errors import SmartZoneError
from sensors.redaction import redact_url
from smartzone.accounts import add_account_commands
from smartzone.admin import add_commands
from smartzone.analyse import add_analyse_command
from smartzone.console import invalid_setting, mask_logs, masked, protect, stop_on_signals
from smartzone.record import add_record_command
from smartzone.replay import add_replay_command
from smartzone.retention import add_retention_command
from smartzone.riders import add_riders_command
from smartzone.settings import Settings
from smartzone.simulate import add_simulate_command
from smartzone.verify import add_verify_command
from smartzone.web import add_hash_password_command

log = logging.getLogger("smartzone")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smartzone`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    given = _overrides(args)
    try:
        settings = Settings(**given)
    except (ValidationError, SettingsError) as exc:
        print(f"smartzone: error: invalid settings: {invalid_setting(exc, given)}", file=sys.stderr)
        return 2
    protect(settings.secret_values())
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    mask_logs()
    for noisy in ("amqtt", "transitions", "web3", "urllib3", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    command: Callable[[Settings, argparse.Namespace], int] = args.command
    try:
        return command(settings, args)
    except SmartZoneError as exc:
        print(f"smartzone: error: {masked(str(exc))}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smartzone", description="Smart Zone shared mobility platform.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="run broker, chain, simulator, aggregator and dashboard in one process")
    up.set_defaults(command=cmd_up)
    _sim_options(up)
    add_simulate_command(sub)
    agg = sub.add_parser("aggregate", help="run an aggregator against a broker, a database and a chain")
    agg.set_defaults(command=cmd_aggregate)
    serve = sub.add_parser("serve", help="serve the dashboard and the API from a database")
    serve.set_defaults(command=cmd_serve)
    add_commands(sub)
    add_retention_command(sub)
    add_verify_command(sub)
    add_record_command(sub)
    add_replay_command(sub)
    add_riders_command(sub)
    add_account_commands(sub)
    add_analyse_command(sub)
    add_hash_password_command(sub)
    for p in (up, serve):
        p.add_argument("--port", dest="http_port", type=int, help="HTTP port (default 8000)")
        p.add_argument(
            "--host",
            dest="http_host",
            help="address to listen on (default 127.0.0.1; 0.0.0.0 lets phones on the network reach it)",
        )
    return parser


def _sim_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vehicles", type=int, help="fleet size (default 20)")
    parser.add_argument("--minutes", dest="sim_minutes", type=float, help="simulated minutes; 0 runs until stopped")
    parser.add_argument("--speed", type=float, help="simulated seconds per real second; 0 is as fast as possible")
    parser.add_argument("--seed", type=int, help="seed of the fleet and its riders (default 7)")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = ("vehicles", "sim_minutes", "speed", "seed", "http_port", "http_host")
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _progress(sim_s: float, total_s: float) -> None:
    if total_s < 10**7:
        print(f"simulated {sim_s / 60:.0f}/{total_s / 60:.0f} min", file=sys.stderr, flush=True)


def cmd_aggregate(settings: Settings, args: argparse.Namespace) -> int:
    from smartzone.instance import acquire, data_dir_database

    # one writer of the data folder's SQLite file: held until the command ends (or the process dies)
    lock = acquire(settings.data_dir, "smartzone aggregate") if data_dir_database(settings) is not None else None
    try:
        return _aggregate(settings)
    finally:
        if lock is not None:
            lock.release()


def _aggregate(settings: Settings) -> int:
    from smartzone.parts import build_aggregator, open_database

    with open_database(settings) as database:  # closed once the run has let go of the settler lock
        part = build_aggregator(
            settings,
            database,
            mqtt_url=settings.broker_url(),
            protocol=settings.mqtt_protocol,
            ca_file=settings.ca_file(),
        )
        print(
            f"aggregating from {part.client.url} into {database.url}, settling on "
            f"{redact_url(settings.chain_url) if settings.chain_url else 'embedded py-evm'} (contract {part.contract})",
            flush=True,
        )
        with stop_on_signals() as stop:
            part.run(stop)
    print(f"stopped: {part.aggregator.counters.summary()}", flush=True)
    return 0


def _server(
    settings: Settings,
    database: Any,
    *,
    broker: Any = None,
    chain_reader: Any = None,
    contract: str | None = None,
    chain_id: int | None = None,
    sender: Any = None,
    replay_url: str | None = None,
) -> tuple[Any, tuple[str, ...]]:
    """The dashboard's server and what its banner must say (a password made for this run, demo tokens).

    ``broker`` (the aggregator's ``MqttClient`` in ``up``) joins the readiness checks; ``chain_reader`` (the chain
    ``up`` runs) is served read-only at ``/rpc``, where browsers read the chain; ``sender`` (the settler's chain
    connection in ``up``) is what the chain's health is read over (else a connection to ``chain_url`` of its own);
    replays publish to ``replay_url`` (else the settings' broker)."""
    import uvicorn

    from dashboard.app import create_app
    from dashboard.health import broker_check, database_check, settlement_lag_check
    from dashboard.routes.research import AnalysisData
    from settlement.alerts import SqlAlertStore
    from smartzone.parts import read_model
    from smartzone.replay_control import ThreadedReplayControl, broker_connector
    from smartzone.web import chain_health, dashboard_setup

    checks = [database_check(database), settlement_lag_check(database, settings.ready_max_lag_s)]
    if broker is not None:
        checks.append(broker_check(lambda: bool(broker.connected), broker.url))  # its url is redacted already
    setup = dashboard_setup(settings, chain_id=chain_id, contract=contract, rpc_served=chain_reader is not None)
    model = read_model(database, settings.chain_id)
    app = create_app(
        model,
        setup.config,
        readiness=checks,
        chain_reader=chain_reader,
        alert_store=SqlAlertStore(database),
        chain_status=chain_health(settings, model, sender, setup.config.contract),
        replay_control=ThreadedReplayControl(
            settings.recordings_dir or settings.data_dir / "recordings",
            broker_connector(replay_url or settings.broker_url(), settings.mqtt_protocol, settings.ca_file()),
        ),
        research_data=AnalysisData(database),
    )
    # log_config None: uvicorn's records go to the root handlers, through the redaction filter
    config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port, log_level="warning", log_config=None)
    return uvicorn.Server(config), setup.notes


def _http_url(settings: Settings) -> str:
    """Where people open the dashboard: the listening address, or this machine's name when it listens on all."""
    host = settings.http_host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.http_port}"


def _listen(settings: Settings) -> socket.socket:
    """The dashboard's socket, bound before anything starts so that a taken port is told at once."""
    host, port = settings.http_host, settings.http_port
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no obstacle
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise SmartZoneError(
                f"port {port} on {host} is already taken; choose another with --port or SMARTZONE_HTTP_PORT"
            ) from None
        raise SmartZoneError(f"cannot listen on {host}:{port} (SMARTZONE_HTTP_HOST, --port): {exc.strerror}") from None
    return sock


def _serve_in_thread(server: Any, stack: ExitStack, sock: socket.socket) -> None:
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="dashboard", daemon=True)
    thread.start()

    def stop() -> None:
        hub = getattr(server.config.app.state, "hub", None)
        if hub is not None:
            hub.close()  # open live streams end within a second; else they would hold the shutdown until browsers leave
        server.should_exit = True
        thread.join(timeout=10)

    stack.callback(stop)
    deadline = time.monotonic() + 15
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise SmartZoneError("the dashboard could not start (is the port already taken?)")


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from smartzone.parts import open_database

    with ExitStack() as stack, stop_on_signals() as stop:
        sock = stack.enter_context(_listen(settings))  # before the database: a taken port is told first
        database = stack.enter_context(open_database(settings))  # closed after the server has stopped
        server, notes = _server(settings, database)
        _serve_in_thread(server, stack, sock)
        print(f"dashboard on {_http_url(settings)}/ from {database.url}", flush=True)
        for note in notes:
            print(f"  {note}", flush=True)
        stop.wait()
    return 0


def _logged(target: Callable[..., object], what: str) -> Callable[..., None]:
    """``target`` for a thread: a project error ends it with one logged line instead of a traceback."""

    def run(**kwargs: Any) -> None:
        try:
            target(**kwargs)
        except SmartZoneError as exc:
            log.error("%s stopped: %s", what, exc)

    return run


def _rpc_line(settings: Settings, node: Any, served: bool) -> str:
    """Where others read the chain: the dashboard's /rpc (``served``: py-evm), anvil's URL or the node's."""
    if served:
        own = f"; {node.name} itself at {redact_url(node.url)}" if node is not None and node.url else ""
        return f"{_http_url(settings)}/rpc  (read-only, served by the dashboard{own})"
    if settings.chain_url is None:
        return "none (the embedded chain is not served)"
    kept = f"; its chain is kept in {node.state_file}" if node is not None and node.state_file else ""
    return f"{redact_url(settings.chain_url)}  ({node.name if node is not None else 'external node'}{kept})"


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from smartzone.instance import acquire, data_dir_database, holds_deployment, move_aside

    with ExitStack() as stack, stop_on_signals() as stop:
        stack.callback(acquire(settings.data_dir, "smartzone up").release)  # before anything starts (or imports)
        sock = stack.enter_context(_listen(settings))
        from smartzone.broker import RunningBroker, embedded_broker
        from smartzone.broker_access import Role, generate, url_for
        from smartzone.chain_node import chain_reader, embedded_chain
        from smartzone.parts import (
            build_aggregator,
            chain_label,
            fund_simulated_riders,
            make_fleet,
            open_database,
            register_fleet,
            run_simulator,
        )

        node = None
        if settings.chain_url is None:
            node = stack.enter_context(embedded_chain(settings.embedded_chain, data_dir=settings.data_dir / "chain"))
            # anvil's URL, or None: py-evm; a chain of its own: the euro token gets the demo faucet for the riders,
            # and 1 confirmation makes an epoch final
            settings = settings.model_copy(
                update={"chain_url": node.url, "chain_faucet": True, "confirmations": settings.final_after()}
            )
        earlier = data_dir_database(settings) if node is not None and not node.kept_state else None
        if earlier is not None and holds_deployment(earlier):
            # its contract lived on an embedded chain that is gone: start a new file, keep the old one
            print(
                f"the earlier run's database (its in-memory chain is gone) is kept as {move_aside(earlier)}", flush=True
            )
            # the broker's saved sessions hold that run's queued readings: they belong to the database just moved
            shutil.rmtree(settings.data_dir / "mosquitto", ignore_errors=True)
        if settings.mqtt_url:
            broker = RunningBroker(settings.mqtt_url, settings.mqtt_protocol, "external")
            aggregator_url = simulator_url = settings.mqtt_url
        else:
            access = generate(settings.topic_root, [settings.operator], demo=settings.demo)
            protect([user.password for user in access.users])
            broker = stack.enter_context(
                embedded_broker(settings.embedded_broker, access=access, data_dir=settings.data_dir / "mosquitto")
            )
            aggregator_url = url_for(access.find(Role.AGGREGATOR), broker.url)
            simulator_url = url_for(access.find(Role.GATEWAY, settings.operator), broker.url)
        # closed last: after the server, the simulator and the aggregator (and its settler lock) have stopped
        database = stack.enter_context(open_database(settings, migrate=True))
        part = build_aggregator(settings, database, mqtt_url=aggregator_url, protocol=broker.protocol)
        fleet = make_fleet(settings, part.chain_id)
        register_fleet(database, fleet)
        part.aggregator.refresh_registry(force=True)
        fund_simulated_riders(settings, part)  # before the first ride: a rider without a deposit is refused
        agg_stop, sim_stop = threading.Event(), threading.Event()
        agg = threading.Thread(target=part.run, args=(agg_stop,), name="aggregator")
        agg.start()
        stack.callback(agg.join)
        stack.callback(agg_stop.set)
        sim = threading.Thread(
            target=_logged(run_simulator, "the simulator"),
            name="simulator",
            kwargs={
                "settings": settings,
                "fleet": fleet,
                "mqtt_url": simulator_url,
                "protocol": broker.protocol,
                "stop": sim_stop,
            },
        )
        sim.start()
        stack.callback(sim.join)
        stack.callback(sim_stop.set)
        reader = chain_reader(part.aggregator.clearing, own_node=node is not None)
        server, notes = _server(
            settings,
            database,
            broker=part.client,
            chain_reader=reader,
            contract=part.contract,
            chain_id=part.chain_id,
            sender=getattr(part.aggregator.clearing, "sender", None),  # a Web3Clearing; a fake has none
            replay_url=simulator_url,
        )
        _serve_in_thread(server, stack, sock)
        access_note = "anonymous allowed: demo" if settings.demo else "passwords and ACL"
        print(
            "Smart Zone is up.\n"
            f"  dashboard  {_http_url(settings)}/\n"
            + "".join(f"             {note}\n" for note in notes)
            + f"  API        {_http_url(settings)}/api/v1/stats  (OpenAPI: /openapi.json)\n"
            + f"  broker     {redact_url(broker.url)} ({broker.name}; {access_note})\n"
            f"  database   {database.url}\n"
            f"  chain      {chain_label(settings)}, contract {part.contract}\n"
            f"  JSON-RPC   {_rpc_line(settings, node, reader is not None)}\n"
            f"  fleet      {settings.vehicles} vehicles of {settings.operator}, registered, seed {settings.seed}, "
            f"{f'speed {settings.speed:g}x' if settings.speed else 'as fast as possible'}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while not stop.wait(0.5):
            if not agg.is_alive():
                raise SmartZoneError("the aggregator stopped unexpectedly; see the log above")
        print("stopping: simulator, aggregator (settling what is left), dashboard, broker", flush=True)
    print("stopped cleanly", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
