"""Who may use the broker: users with a role each, and the Mosquitto password and ACL files they become.

Roles, for the topic tree ``<root>/v1/<operator>/<vehicle_id>/<channel>``:

- ``aggregator`` reads (subscribes to) ``<root>/v1/#`` and writes nothing;
- ``gateway`` of one operator writes ``<root>/v1/<operator>/#`` (a fleet published over one link, as the
  simulator does, including its ``_fleet`` state and last will) and reads nothing;
- ``vehicle`` (username = vehicle id) writes only ``<root>/v1/+/<its id>/+``: one Mosquitto
  ``pattern write <root>/v1/+/%u/+`` line serves every vehicle;
- the dashboard has no MQTT user at all.

Because a ``pattern`` applies to every user, aggregator and gateway names must not be valid vehicle ids
(``generate`` calls them ``aggregator@<root>`` and ``gateway@<operator>``): otherwise such a user could
write under a vehicle topic of its own name. Anonymous clients are refused unless ``allow_anonymous`` is
set (an explicit demo setting); they may then read and write ``<root>/v1/#``.

Passwords are random (``secrets``), kept out of every repr and log line, and stored by the broker only as
PBKDF2-SHA512 hashes in the ``$7$`` format that ``mosquitto_passwd`` writes. This module only renders
text and writes files: starting a broker with them is ``smartzone.broker``'s work.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from sensors.errors import InvalidReading, SmartZoneError
from sensors.topics import TOPIC_VERSION, check_id, fence_topic

MOSQUITTO_ITERATIONS = 101  # what mosquitto_passwd uses; the passwords are random 192-bit secrets
ANONYMOUS = "anonymous"  # amqtt's name for a client without a username: no user may take it


class Role(enum.StrEnum):
    """What a broker user may do (see the module docstring)."""

    AGGREGATOR = "aggregator"
    GATEWAY = "gateway"
    VEHICLE = "vehicle"


@dataclass(frozen=True, slots=True)
class BrokerUser:
    """One login on the broker; ``operator`` is set for a gateway only. The password never shows in a repr."""

    username: str
    password: str = field(repr=False)
    role: Role
    operator: str | None = None

    def __post_init__(self) -> None:
        if self.role not in tuple(Role):
            raise SmartZoneError(f"broker role {self.role!r} must be one of {', '.join(Role)}")
        object.__setattr__(self, "role", Role(self.role))  # "gateway" from a settings file becomes Role.GATEWAY
        name = self.username
        if not name or any(c in name for c in ":#+/ \t\r\n") or name == ANONYMOUS:
            raise SmartZoneError(
                f"broker username {name!r} must be non-empty, not {ANONYMOUS!r}, without : # + / or spaces"
            )
        if not self.password:
            raise SmartZoneError(f"broker user {name!r} needs a password")
        if (self.role is Role.GATEWAY) != (self.operator is not None):
            raise SmartZoneError(f"broker user {name!r}: an operator is given for a gateway, and only for a gateway")
        if self.operator is not None:
            _valid_id(self.operator, "operator")
        if self.role is Role.VEHICLE:
            _valid_id(name, "vehicle id")
        elif _is_id(name):
            raise SmartZoneError(
                f"broker user {name!r} ({self.role}) must not look like a vehicle id: the vehicles' ACL pattern "
                "would let it publish under that vehicle's topics (use a name with '@', e.g. aggregator@smartzone)"
            )


@dataclass(frozen=True, slots=True)
class TopicRules:
    """Topic filters one user (or the anonymous client) may read and write."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BrokerAccess:
    """The users of one broker for the topic tree under ``root``, and whether anonymous clients get in."""

    root: str
    users: tuple[BrokerUser, ...]
    allow_anonymous: bool = False

    def __post_init__(self) -> None:
        if not self.root or any(c in self.root for c in "#+ \t\r\n"):
            raise SmartZoneError(f"topic root {self.root!r} must be non-empty, without wildcards or spaces")
        names = [u.username for u in self.users]
        if len(set(names)) != len(names):
            raise SmartZoneError("broker usernames must be unique")

    @property
    def tree(self) -> str:
        """The filter of every project topic: ``<root>/v1/#``."""
        return f"{self.root}/{TOPIC_VERSION}/#"

    def rules(self, user: BrokerUser | None) -> TopicRules:
        """What ``user`` (``None``: an anonymous client) may read and write."""
        if user is None:
            return TopicRules((self.tree,), (self.tree,)) if self.allow_anonymous else TopicRules()
        if user.role is Role.AGGREGATOR:
            return TopicRules(read=(self.tree,))
        if user.role is Role.GATEWAY:  # it reads its own fence (sensors.mqtt.MqttClient.fence), nothing else
            fence = fence_topic(user.operator or "", self.root)
            return TopicRules(read=(fence,), write=(f"{self.root}/{TOPIC_VERSION}/{user.operator}/#",))
        return TopicRules(write=(self.vehicle_pattern().replace("%u", user.username),))

    def vehicle_pattern(self) -> str:
        """The Mosquitto ACL pattern of every vehicle's own topics (``%u``: its username)."""
        return f"{self.root}/{TOPIC_VERSION}/+/%u/+"

    def find(self, role: Role, name: str | None = None) -> BrokerUser:
        """The user of ``role``: the first aggregator, the gateway of operator ``name``, or vehicle ``name``."""
        for user in self.users:
            if user.role is role and (
                role is Role.AGGREGATOR
                or (role is Role.GATEWAY and user.operator == name)
                or (role is Role.VEHICLE and user.username == name)
            ):
                return user
        raise SmartZoneError(f"no broker user for {role}{' ' + name if name else ''}")

    # --- Mosquitto files ------------------------------------------------------------------------
    def password_file(self) -> str:
        """The Mosquitto ``password_file``: one ``user:$7$...`` line per user (fresh salts each call)."""
        return "".join(f"{u.username}:{mosquitto_hash(u.password)}\n" for u in self.users)

    def acl_file(self) -> str:
        """The Mosquitto ``acl_file``: anonymous rules first, then each named user, then the vehicle pattern."""
        lines = ["# generated by smartzone.broker_access: do not edit; regenerated at every start"]
        lines += _topic_lines(self.rules(None))  # before any ``user`` line: the anonymous client's
        for user in self.users:
            if user.role is not Role.VEHICLE:
                lines += ["", f"user {user.username}", *_topic_lines(self.rules(user))]
        if any(u.role is Role.VEHICLE for u in self.users):
            lines += ["", f"pattern write {self.vehicle_pattern()}"]
        return "\n".join(lines) + "\n"

    def write_mosquitto_files(self, folder: Path) -> tuple[Path | None, Path]:
        """Write ``passwd`` (only if there are users) and ``acl`` into ``folder``, readable by the owner only."""
        password = None
        if self.users:
            password = write_private_file(folder / "passwd", self.password_file())
        return password, write_private_file(folder / "acl", self.acl_file())


def generate(root: str, operators: Iterable[str], vehicles: Iterable[str] = (), demo: bool = False) -> BrokerAccess:
    """Fresh random credentials: one aggregator, one gateway per operator, one user per vehicle id.

    ``demo`` also lets anonymous clients in (read and write under ``<root>/v1/#``); never the default.
    """
    users = [BrokerUser(f"aggregator@{root}", new_password(), Role.AGGREGATOR)]
    users += [BrokerUser(f"gateway@{op}", new_password(), Role.GATEWAY, op) for op in dict.fromkeys(operators)]
    users += [BrokerUser(v, new_password(), Role.VEHICLE) for v in dict.fromkeys(vehicles)]
    return BrokerAccess(root, tuple(users), allow_anonymous=demo)


def new_password() -> str:
    """A random password: 192 bits, URL-safe characters."""
    return secrets.token_urlsafe(24)


def url_for(user: BrokerUser, base_url: str) -> str:
    """``base_url`` (``mqtt://host:port`` or ``mqtts://``) with ``user``'s name and password, URL-quoted."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        raise SmartZoneError("a broker URL must look like mqtt://host:port")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port else ""
    userinfo = f"{quote(user.username, safe='')}:{quote(user.password, safe='')}"
    return urlunsplit((parts.scheme, f"{userinfo}@{host}{port}", parts.path, parts.query, parts.fragment))


def mosquitto_hash(password: str, salt: bytes | None = None, iterations: int = MOSQUITTO_ITERATIONS) -> str:
    """``$7$<iterations>$<salt>$<hash>``: PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte key, base64 (Mosquitto 2)."""
    salt = secrets.token_bytes(12) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def _topic_lines(rules: TopicRules) -> list[str]:
    return [f"topic read {t}" for t in rules.read] + [f"topic write {t}" for t in rules.write]


def write_private_file(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable and writable by its owner only (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    return path


def _is_id(value: str) -> bool:
    try:
        check_id(value, "id")
    except InvalidReading:
        return False
    return True


def _valid_id(value: str, what: str) -> None:
    try:
        check_id(value, what)
    except InvalidReading as exc:
        raise SmartZoneError(f"broker user: {exc.reason}") from None
