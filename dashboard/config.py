"""What the dashboard is configured with: a frozen value built by the composition root from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """Who a signed-in person is to the dashboard.

    ``operator`` sees and acts on the whole fleet and the payouts; ``researcher`` sees the fleet, replays and
    downloads data; ``account`` is a wallet (Sign-In with Ethereum, or a demo rider token): it sees its own trips as a
    rider and its own payouts as a vehicle owner, nothing of anyone else.
    """

    OPERATOR = "operator"
    RESEARCHER = "researcher"
    ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class StaffUser:
    """An operator or researcher who logs in with a name and password; only the password's hash is kept
    (``dashboard.auth.hash_password``: scrypt, salted)."""

    name: str
    role: Role
    password_hash: str


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a vehicle raises an alert: battery below ``low_battery_pct``, or silent for ``offline_after_s``."""

    low_battery_pct: float = 20.0
    offline_after_s: int = 300
    rejects_quiet_s: int = 600


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """Everything the app needs besides its ports.

    ``session_secret`` signs the session cookie; ``users`` are the staff who may log in; ``rider_tokens`` maps a demo
    rider token to the wallet address it signs in as (only in ``demo`` mode). ``public_rpc_url`` is the chain's JSON-RPC
    as a browser reaches it (the rider's in-browser verify reads the root there); ``explorer_tx_url`` a link pattern
    with ``{tx}``. ``public_origin`` (scheme://host[:port]) is the origin Sign-In with Ethereum messages must name;
    None: the request's own.
    """

    session_secret: str
    title: str = "Smart Zone"
    chain_label: str | None = None
    source_url: str | None = None
    demo: bool = False
    users: tuple[StaffUser, ...] = ()
    rider_tokens: dict[str, str] = field(default_factory=dict)
    public_rpc_url: str | None = None
    explorer_tx_url: str | None = None
    chain_id: int | None = None
    contract: str | None = None
    public_origin: str | None = None
    session_max_age_s: int = 12 * 3600
    thresholds: Thresholds = Thresholds()
    https_only: bool = False


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in person: a staff member (``subject`` is the user name) or a wallet (``subject`` is its EIP-55
    address)."""

    role: Role
    subject: str

    @property
    def staff(self) -> bool:
        """Operators and researchers: they see the whole fleet."""
        return self.role in (Role.OPERATOR, Role.RESEARCHER)
