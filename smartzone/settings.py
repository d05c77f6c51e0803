"""The one settings object, read from ``SMARTZONE_*`` environment variables at the entry point."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sensors.address import Address, InvalidAddress
from sensors.redaction import OPAQUE_SEGMENT, SECRET_QUERY_KEYS
from sensors.signing import address_of
from simulator.keys import zone_key

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
URL_FIELDS = ("mqtt_url", "database_url", "chain_url")
SECRET_FIELDS = (
    "chain_private_key",
    "operator_key",
    "account_key",
    "operator_password",
    "researcher_password",
    "session_secret",
)
SCHEMES: dict[str, tuple[re.Pattern[str], str]] = {
    "mqtt_url": (re.compile(r"^(mqtts?|tcp|ssl)://", re.IGNORECASE), "must start with mqtt:// or mqtts://"),
    "database_url": (
        re.compile(r"^(sqlite(\+\w+)?:///|sqlite://$|postgresql(\+\w+)?://)", re.IGNORECASE),
        "must start with sqlite:/// or postgresql+psycopg://",
    ),
    "chain_url": (
        re.compile(r"^https?://", re.IGNORECASE),
        "must start with http:// or https:// (the JSON-RPC endpoint of an EVM node)",
    ),
}


class Settings(BaseSettings):
    """Everything a part of the platform needs to know about where the others are."""

    model_config = SettingsConfigDict(env_prefix="SMARTZONE_", frozen=True, extra="ignore")

    mqtt_url: str | None = Field(None, description="Broker URL; unset: `up` starts its own, other parts use 1883")
    mqtt_protocol: Literal["auto", "5", "3.1.1"] = "auto"
    mqtt_ca_file: Path | None = Field(None, description="PEM CA of the broker's certificate, for mqtts:// URLs")
    embedded_broker: Literal["auto", "mosquitto", "amqtt"] = Field(
        "auto", description="Broker `up` starts when mqtt_url is unset; auto: Mosquitto if installed, else amqtt"
    )
    topic_root: str = "smartzone"
    database_url: str | None = Field(None, description="SQLAlchemy URL; unset: a SQLite file in data_dir")
    chain_url: str | None = Field(
        None, description="JSON-RPC URL of an EVM node; unset: `up` starts one (embedded_chain), others use py-evm"
    )
    embedded_chain: Literal["auto", "anvil", "py-evm"] = Field(
        "auto", description="Chain `up` starts when chain_url is unset; auto: anvil if installed, else py-evm"
    )
    chain_private_key: SecretStr | None = Field(None, description="Key of the aggregator's account; unset: node's")
    contract_address: str | None = None
    chain_id: int | None = Field(
        None, ge=1, description="Chain id of the EIP-712 domain devices sign under; unset: the settlement chain's"
    )
    operator_key: SecretStr | None = Field(
        None, description="Operator's private key, for `smartzone registry add` signing an entry here"
    )
    demo: bool = Field(False, description="Explicit demo mode: anonymous MQTT on the embedded broker is allowed")
    sign_telemetry: bool = Field(False, description="Require (and make the simulator send) signed telemetry")
    max_clock_skew_s: float | None = Field(
        None, gt=0, description="Reject readings this far ahead of the aggregator's clock; unset: no check"
    )
    bounds: dict[str, Any] | None = Field(
        None, description="Plausibility bounds per vehicle kind (JSON), over the defaults of settlement.bounds"
    )
    owners: int = Field(4, ge=1, le=10_000, description="How many owners the simulated fleet's vehicles have")
    data_dir: Path = Path("data")
    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=1, le=65535, description="HTTP port of the dashboard and the API")
    epoch_seconds: float = Field(30.0, gt=0)
    epoch_max_trips: int = Field(1000, ge=1, le=256_000)
    confirmations: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Blocks on an epoch's commit (its own included) before it is final; unset: 1 on the embedded "
        "chain and in demo mode, else 12",
    )
    aggregator_id: str = "aggregator-1"
    ingest_batch: int = Field(2000, ge=1, le=100_000, description="Most messages stored in one transaction")
    ingest_wait_s: float = Field(
        0.2, gt=0, le=10, description="How long the aggregator waits for a first message before maintenance"
    )
    operator: str = "smartzone-demo"
    vehicles: int = Field(20, ge=1)
    seed: int = 7
    speed: float = Field(10.0, ge=0, description="Simulated seconds per real second; 0: as fast as possible")
    sim_minutes: float = Field(0.0, ge=0, description="Simulated minutes to run; 0: until stopped")
    mqtt_session_expiry_s: int = Field(
        300, ge=0, le=2**32 - 1,
        description="How long the broker keeps a departed aggregator's session (and its share) after it leaves",
    )  # fmt: skip
    ready_max_lag_s: float = Field(
        300.0, gt=0, description="/readyz fails when the oldest completed trip has waited this long for settlement"
    )
    reject_sample_bytes: int = Field(
        4096, ge=0, le=65536, description="Most payload bytes kept per dead-lettered message (counts are kept anyway)"
    )
    reject_sample_days: float = Field(7.0, gt=0, description="Age after which dead-letter payload samples are deleted")
    reject_samples_max: int = Field(10_000, ge=0, description="Most dead-letter payload samples kept")
    reject_log_interval_s: float = Field(
        10.0, gt=0, description="Rejects are logged at most once per this interval, with a running count"
    )
    telemetry_raw_days: float = Field(
        30.0, gt=0, description="`smartzone retention` folds raw telemetry older than this into per-minute tracks"
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)")
    source_url: str | None = Field(None, description="Where the dashboard sends users for the source (AGPL)")
    # money (issue 9): the split of every fare, where fees go, the clearing contract's windows, the euro token
    fee_bps: int = Field(0, ge=0, le=10_000, description="Smart Zone fee per fare in basis points (the owner: rest)")
    zone_account: str | None = Field(
        None, description="Address the fees are earned by; required with a fee, except in demo mode (seed-derived)"
    )
    challenge_blocks: int = Field(0, ge=0, le=2**48 - 1, description="Blocks before a committed epoch is final")
    withdraw_delay_blocks: int = Field(
        100, ge=0, le=2**48 - 1, description="Blocks between a rider's withdrawal request and the withdrawal"
    )
    token_address: str | None = Field(None, description="Euro token to use; unset: the aggregator deploys one")
    account_key: SecretStr | None = Field(
        None, description="Private key of the account `smartzone claim` and `smartzone withdraw` send from"
    )
    chain_faucet: bool | None = Field(
        None, description="Deploy the euro token with a faucet (anyone mints); unset: demo mode or a chain `up` runs"
    )
    riders: int = Field(50, ge=1, le=10_000, description="How many riders the simulated fleet has (keys from the seed)")
    rider_deposit_micro: int = Field(
        50_000_000, ge=1, le=1_000_000_000, description="What `up` deposits for each simulated rider (demo faucet)"
    )
    # the dashboard (issue 11): who signs in, where browsers read the chain, links, thresholds
    operator_password: SecretStr | None = Field(
        None, description="Password of the dashboard user `operator`; unset: `up` makes one and prints it, demo: demo"
    )
    operator_password_hash: str | None = Field(
        None, description="scrypt hash of that password instead (`smartzone hash-password`)"
    )
    researcher_password: SecretStr | None = Field(
        None, description="Password of the dashboard user `researcher`; unset: no researcher login (demo: demo)"
    )
    researcher_password_hash: str | None = Field(None, description="scrypt hash of that password instead")
    session_secret: SecretStr | None = Field(
        None, description="Key that signs the dashboard's session cookies; unset: a new one per start (sign in again)"
    )
    https_only: bool = Field(False, description="Session cookies only over HTTPS (set it behind a TLS proxy)")
    public_rpc_url: str | None = Field(
        None, description="The chain's JSON-RPC as browsers reach it (the rider's verify); unset: the dashboard's /rpc"
    )
    explorer_tx_url: str | None = Field(None, description="Block explorer link for a transaction, with {tx}")
    public_origin: str | None = Field(
        None, description="scheme://host[:port] Sign-In with Ethereum messages must name; unset: the request's own"
    )
    recordings_dir: Path | None = Field(
        None, description="Folder of recordings the research view lists; unset: data_dir/recordings"
    )
    low_battery_pct: float = Field(
        20.0, ge=0, le=100, description="Battery level below which a vehicle raises an alert"
    )
    offline_after_s: int = Field(300, ge=5, description="Silence after which a vehicle counts as offline")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator(*URL_FIELDS)
    @classmethod
    def _known_scheme(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if re.match(r"^postgres(\+\w+)?://", value, re.IGNORECASE):
            raise ValueError("write postgresql+psycopg://… (SQLAlchemy does not accept postgres://)")
        pattern, rule = SCHEMES[str(info.field_name)]
        if not pattern.match(value):
            raise ValueError(rule)
        return value

    @field_validator("zone_account", "token_address")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return Address.parse(value).checksum
        except InvalidAddress:
            raise ValueError("must be a 0x-prefixed 20-byte address") from None

    @model_validator(mode="after")
    def _a_zone_for_fees(self) -> Settings:
        if self.fee_bps > 0 and self.zone_account is None and not self.demo:
            raise ValueError("a fee (SMARTZONE_FEE_BPS > 0) needs SMARTZONE_ZONE_ACCOUNT, the address that earns it")
        return self

    def final_after(self) -> int:
        """Confirmations that make an epoch final: the setting, else 1 where reorgs are not a concern (the embedded
        chain, demo mode) and 12 on any other node (about 2.5 minutes on Ethereum, a margin on rollups)."""
        if self.confirmations is not None:
            return self.confirmations
        return 1 if self.demo or self.chain_url is None else 12

    def faucet(self) -> bool:
        """Whether a euro token this deployment creates has a faucet: ``chain_faucet`` if set, else in demo mode or
        on the embedded chain."""
        if self.chain_faucet is not None:
            return self.chain_faucet
        return self.demo or self.chain_url is None

    def zone(self) -> Address:
        """The account fees are earned by: the setting, else (demo) one derived from the seed."""
        if self.zone_account is not None:
            return Address.parse(self.zone_account)
        return address_of(zone_key(self.seed))

    @model_validator(mode="after")
    def _bounded_when_unpaced(self) -> Settings:
        if self.speed == 0 and self.sim_minutes == 0:
            raise ValueError(
                "speed 0 (as fast as possible) needs a number of simulated minutes (--minutes, SMARTZONE_SIM_MINUTES)"
            )
        return self

    def secret_values(self) -> list[str]:
        """Every secret these settings hold: the keys, and what ``redact_url`` masks in each URL (passwords,
        secret-looking query values, opaque path segments), raw and URL-decoded."""
        found = [self.private_key(), self.operator_key.get_secret_value() if self.operator_key else None]
        found.append(self.account_key.get_secret_value() if self.account_key else None)
        for secret in (self.operator_password, self.researcher_password, self.session_secret):
            found.append(secret.get_secret_value() if secret else None)
        for url in (self.mqtt_url, self.database_url, self.chain_url):
            if url:
                found.extend(_url_secrets(url))
        return sorted({value for value in found if value})

    def broker_url(self) -> str:
        return self.mqtt_url or DEFAULT_MQTT_URL

    def ca_file(self) -> str | None:
        return str(self.mqtt_ca_file) if self.mqtt_ca_file else None

    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'smartzone.db'}"

    def private_key(self) -> str | None:
        return self.chain_private_key.get_secret_value() if self.chain_private_key else None

    def operator_private_key(self) -> bytes | None:
        if self.operator_key is None:
            return None
        text = self.operator_key.get_secret_value().removeprefix("0x")
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise ValueError("SMARTZONE_OPERATOR_KEY must be 32 bytes of hex") from None
        if len(key) != 32:
            raise ValueError("SMARTZONE_OPERATOR_KEY must be 32 bytes of hex")
        return key


def _url_secrets(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        found = [parts.password]
    except ValueError:  # unparsable: the whole URL is what must not be shown
        return [url]
    found += [segment for segment in parts.path.split("/") if OPAQUE_SEGMENT.match(segment)]
    for pair in parts.query.split("&"):
        key, sep, value = pair.partition("=")
        if sep and value and SECRET_QUERY_KEYS.search(key):
            found.append(value)
    return [form for value in found if value for form in (value, unquote(value))]
