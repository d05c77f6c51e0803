"""The one settings object, read from ``SMARTZONE_*`` environment variables at the entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"


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
    chain_url: str | None = Field(None, description="JSON-RPC URL of an EVM node; unset: embedded py-evm")
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
    http_port: int = 8000
    epoch_seconds: float = Field(30.0, gt=0)
    epoch_max_trips: int = Field(1000, ge=1, le=256_000)
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
    log_level: str = "INFO"
    source_url: str | None = Field(None, description="Where the dashboard sends users for the source (AGPL)")

    @model_validator(mode="after")
    def _bounded_when_unpaced(self) -> Settings:
        if self.speed == 0 and self.sim_minutes == 0:
            raise ValueError("speed 0 (as fast as possible) needs a number of simulated minutes")
        return self

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
