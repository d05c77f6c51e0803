"""The administrative commands: ``smartzone db …`` (schema migrations) and ``smartzone registry …`` (devices)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sensors.address import Address
from sensors.errors import InvalidReading, SmartZoneError
from sensors.messages import VehicleKind
from sensors.registration import Registration, from_json, to_json
from sensors.signing import Domain, sign
from smartzone.settings import Settings

if TYPE_CHECKING:
    from settlement.repositories import UnitOfWork


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``db`` and ``registry`` with their subcommands."""
    db = sub.add_parser("db", help="the settlement database's schema")
    db_sub = db.add_subparsers(required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", help="migrate the schema to this version's revision").set_defaults(command=db_upgrade)
    db_sub.add_parser("current", help="print the schema revision and the one expected").set_defaults(command=db_current)
    reset = db_sub.add_parser("reset", help="drop every table and migrate from scratch (deletes all data)")
    reset.add_argument("--yes", action="store_true", help="yes, delete every trip, payout and registry entry")
    reset.set_defaults(command=db_reset)

    reg = sub.add_parser("registry", help="the device registry: who speaks for a vehicle and who is paid for it")
    reg_sub = reg.add_subparsers(required=True, metavar="ACTION")
    trust = reg_sub.add_parser("trust", help="let an operator's address sign registry entries")
    trust.add_argument("operator")
    trust.add_argument("address")
    trust.set_defaults(command=registry_trust)
    add = reg_sub.add_parser(
        "add",
        help="add signed entries from a JSON-lines file, or one entry signed here with SMARTZONE_OPERATOR_KEY",
    )
    add.add_argument("vehicle_id", nargs="?")
    add.add_argument("--file", type=Path, help="JSON lines of signed registrations (e.g. an operator's fleet)")
    add.add_argument("--operator")
    add.add_argument("--kind", choices=[k.value for k in VehicleKind])
    add.add_argument("--device", help="the vehicle's device address")
    add.add_argument("--payee", help="the address paid for the vehicle's trips")
    add.add_argument("--from", dest="valid_from_ms", type=int, help="valid from, ms since the epoch (default now)")
    add.add_argument("--until", dest="valid_until_ms", type=int, default=0, help="valid until (default open-ended)")
    add.set_defaults(command=registry_add)
    listing = reg_sub.add_parser("list", help="list the entries and the registry's Merkle root")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(command=registry_list)
    revoke = reg_sub.add_parser("revoke", help="revoke a vehicle's device: nothing it signs is accepted any more")
    revoke.add_argument("vehicle_id")
    revoke.set_defaults(command=registry_revoke)
    proof = reg_sub.add_parser("proof", help="a vehicle's entry with its Merkle proof against the registry root")
    proof.add_argument("vehicle_id")
    proof.set_defaults(command=registry_proof)


def _uow(settings: Settings) -> Callable[[], UnitOfWork]:
    from smartzone.parts import open_database, unit_of_work

    return unit_of_work(open_database(settings))


def db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from smartzone.parts import open_database

    database = open_database(settings, migrate=True)
    print(f"database {database.url} is at schema revision {database.current_revision()}", flush=True)
    return 0


def db_current(settings: Settings, args: argparse.Namespace) -> int:
    from settlement.db import Database

    database = Database.open(settings.db_url())
    current, head = database.current_revision(), database.head_revision()
    print(f"{database.url}: revision {current or '(none)'}; this version expects {head}")
    return 0 if current == head else 1


def db_reset(settings: Settings, args: argparse.Namespace) -> int:
    from sensors.redaction import redact_url
    from settlement.db import Database
    from smartzone.instance import acquire, data_dir_database

    if not args.yes:
        raise SmartZoneError(f"db reset deletes every table of {redact_url(settings.db_url())}; add --yes to do it")
    lock = acquire(settings.data_dir, "smartzone db reset") if data_dir_database(settings) is not None else None
    try:
        database = Database.open(settings.db_url())
        database.reset()
        print(f"database {database.url} is empty, at schema revision {database.current_revision()}", flush=True)
    finally:
        if lock is not None:
            lock.release()
    return 0


def registry_trust(settings: Settings, args: argparse.Namespace) -> int:
    from settlement.enrolment import trust_operator

    address = Address.parse(args.address)
    trust_operator(_uow(settings), args.operator, address, _now_ms())
    print(f"operator {args.operator} signs with {address}")
    return 0


def registry_add(settings: Settings, args: argparse.Namespace) -> int:
    from settlement.enrolment import enrol, signing_domain

    uow = _uow(settings)
    domain = signing_domain(uow, settings.chain_id)
    if args.file is not None:
        registrations = _read_file(args.file)
    else:
        registrations = [_signed_here(settings, args, domain)]
    added, held = enrol(uow, registrations, domain, _now_ms())
    print(f"{added} entries added, {held} already held")
    return 0


def _read_file(path: Path) -> list[Registration]:
    registrations = []
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise SmartZoneError(f"cannot read {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            registrations.append(from_json(json.loads(line)))
        except (json.JSONDecodeError, InvalidReading) as exc:
            raise SmartZoneError(f"{path}:{number}: {getattr(exc, 'reason', exc)}") from None
    return registrations


def _signed_here(settings: Settings, args: argparse.Namespace, domain: Domain) -> Registration:
    missing = [f"--{n}" for n in ("operator", "kind", "device", "payee") if getattr(args, n) is None]
    if args.vehicle_id is None or missing:
        raise SmartZoneError(f"registry add needs a vehicle id and {', '.join(missing) or '--file'} (or --file)")
    try:
        key = settings.operator_private_key()
    except ValueError as exc:
        raise SmartZoneError(str(exc)) from None
    if key is None:
        raise SmartZoneError("set SMARTZONE_OPERATOR_KEY to sign the entry, or add a signed file with --file")
    registration = Registration(
        vehicle_id=args.vehicle_id,
        operator=args.operator,
        kind=VehicleKind(args.kind),
        device=Address.parse(args.device),
        payee=Address.parse(args.payee),
        valid_from_ms=args.valid_from_ms if args.valid_from_ms is not None else _now_ms(),
        valid_until_ms=args.valid_until_ms,
    )
    return sign(registration, key, domain)


def registry_list(settings: Settings, args: argparse.Namespace) -> int:
    from settlement.enrolment import entries

    registry = entries(_uow(settings))
    for entry in registry.entries:
        if args.json:
            print(json.dumps({**to_json(entry.registration), "revoked_ms": entry.revoked_ms}))
        else:
            reg = entry.registration
            status = f"revoked at {entry.revoked_ms}" if entry.revoked_ms is not None else "in force"
            print(f"{reg.vehicle_id:24} {reg.operator:16} {reg.kind.value:8} device {reg.device} payee {reg.payee} "
                  f"from {reg.valid_from_ms} until {reg.valid_until_ms or '-'} {status}")  # fmt: skip
    print(f"registry root 0x{registry.root.hex()} ({len(registry)} entries)", file=sys.stderr)
    return 0


def registry_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from settlement.enrolment import revoke

    n = revoke(_uow(settings), args.vehicle_id, _now_ms())
    if n == 0:
        raise SmartZoneError(f"vehicle {args.vehicle_id!r} has no entry in force to revoke")
    print(f"revoked {n} entr{'y' if n == 1 else 'ies'} of {args.vehicle_id}")
    return 0


def registry_proof(settings: Settings, args: argparse.Namespace) -> int:
    from settlement.enrolment import entries

    registry = entries(_uow(settings))
    entry = registry.latest(args.vehicle_id)
    if entry is None:
        raise SmartZoneError(f"vehicle {args.vehicle_id!r} is not in the registry")
    print(
        json.dumps(
            {
                "leaf": entry.leaf(),
                "proof": ["0x" + p.hex() for p in registry.proof(entry)],
                "root": "0x" + registry.root.hex(),
            }
        )
    )
    return 0


def _now_ms() -> int:
    return int(time.time() * 1000)
