"""The dashboard's configuration from the settings: who may sign in, where browsers read the chain, thresholds."""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from dataclasses import dataclass
from typing import Any

from dashboard.config import DashboardConfig, Role, StaffUser, Thresholds
from sensors.redaction import redact_url
from sensors.signing import address_of
from simulator.keys import rider_key
from smartzone.settings import Settings

DEMO_PASSWORD = "demo"
DEMO_RIDER_TOKENS = 5
"""How many of the simulated riders get a sign-in token in demo mode (``rider-1`` … ``rider-5``)."""


@dataclass(frozen=True, slots=True)
class WebSetup:
    """The dashboard's configuration and what the banner must tell the person who started it (a password made for
    this run only, the demo tokens)."""

    config: DashboardConfig
    notes: tuple[str, ...]


def dashboard_setup(
    settings: Settings, *, chain_id: int | None = None, contract: str | None = None, rpc_served: bool = False
) -> WebSetup:
    """The dashboard's configuration. Staff passwords come from the settings; without one the operator gets a new
    random password printed once (demo mode: ``demo``). ``rpc_served``: the app serves ``/rpc``, which browsers
    then read the chain from unless ``public_rpc_url`` says otherwise; without either the rider's in-browser verify
    says it has no chain to read."""
    from dashboard.auth import hash_password

    notes: list[str] = []
    users: list[StaffUser] = []
    for name, role, password, stored in (
        ("operator", Role.OPERATOR, settings.operator_password, settings.operator_password_hash),
        ("researcher", Role.RESEARCHER, settings.researcher_password, settings.researcher_password_hash),
    ):
        if stored:
            users.append(StaffUser(name, role, stored))
        elif password is not None:
            users.append(StaffUser(name, role, hash_password(password.get_secret_value())))
        elif settings.demo:
            users.append(StaffUser(name, role, hash_password(DEMO_PASSWORD)))
            notes.append(f"{name} login: {name} / {DEMO_PASSWORD} (demo mode)")
        elif role is Role.OPERATOR:
            made = secrets.token_urlsafe(12)
            users.append(StaffUser(name, role, hash_password(made)))
            notes.append(f"operator login: operator / {made} (this run only; set SMARTZONE_OPERATOR_PASSWORD)")
    tokens: dict[str, str] = {}
    if settings.demo:
        count = min(DEMO_RIDER_TOKENS, settings.riders)
        tokens = {f"rider-{i + 1}": address_of(rider_key(settings.seed, i)).checksum for i in range(count)}
        notes.append(f"rider sign-in (demo): tokens rider-1 … rider-{count}")
    secret = settings.session_secret.get_secret_value() if settings.session_secret else secrets.token_urlsafe(32)
    config = DashboardConfig(
        session_secret=secret,
        chain_label=redact_url(settings.chain_url) if settings.chain_url else "embedded py-evm (in memory)",
        source_url=settings.source_url,
        demo=settings.demo,
        users=tuple(users),
        rider_tokens=tokens,
        # never the node's own URL: it may carry an API key (the browser would see it)
        public_rpc_url=settings.public_rpc_url or ("/rpc" if rpc_served else None),
        explorer_tx_url=settings.explorer_tx_url,
        chain_id=chain_id or settings.chain_id,
        contract=contract or settings.contract_address,
        public_origin=settings.public_origin,
        thresholds=Thresholds(low_battery_pct=settings.low_battery_pct, offline_after_s=settings.offline_after_s),
        https_only=settings.https_only,
    )
    return WebSetup(config, tuple(notes))


def add_hash_password_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``hash-password``: a dashboard password's scrypt hash, for SMARTZONE_*_PASSWORD_HASH."""
    command = sub.add_parser(
        "hash-password",
        help="print the scrypt hash of a dashboard password (for SMARTZONE_OPERATOR_PASSWORD_HASH)",
        description="Reads the password from the terminal without echo (or one line of standard input) and prints "
        "its salted scrypt hash; the settings then hold the hash, not the password.",
    )
    command.set_defaults(command=run_hash_password)


def run_hash_password(settings: Settings, args: argparse.Namespace) -> int:
    """Print the hash of the password typed (twice on a terminal); 1 when empty or when the two differ."""
    from dashboard.auth import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("the two passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("an empty password is refused", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def chain_health(settings: Settings, model: Any, sender: Any, contract: str | None) -> Any:
    """The settlement page's chain health: read over ``sender`` (the settler's own connection, in ``up``), else over
    a read-only connection to ``chain_url``; None without a chain to read."""
    from dashboard.chain_status import LiveChainStatus
    from dashboard.deps import wall_ms
    from settlement.chain.health import NodeProbe

    key = settings.private_key()
    settler = address_of(bytes.fromhex(key.removeprefix("0x"))).checksum if key else None
    if sender is not None:
        probe = NodeProbe.of(sender, settler or getattr(sender, "account", None), contract)
    elif settings.chain_url:
        probe = NodeProbe(settings.chain_url, settler, contract)
    else:
        return None
    label = redact_url(settings.chain_url) if settings.chain_url else "embedded py-evm (in memory)"
    return LiveChainStatus(probe, model, wall_ms, label)
