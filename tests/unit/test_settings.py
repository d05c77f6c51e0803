"""The one settings object and the command line's handling of bad settings."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from smartzone.cli import main
from smartzone.settings import DEFAULT_MQTT_URL, Settings


def test_settings_come_from_smartzone_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTZONE_DATABASE_URL", "postgresql+psycopg://u@db/x")
    monkeypatch.setenv("SMARTZONE_EPOCH_SECONDS", "5")
    settings = Settings()
    assert settings.db_url() == "postgresql+psycopg://u@db/x"
    assert settings.epoch_seconds == 5.0


def test_defaults_need_no_service_and_no_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.broker_url() == DEFAULT_MQTT_URL
    assert settings.db_url() == f"sqlite:///{tmp_path / 'smartzone.db'}"
    assert settings.chain_url is None and settings.private_key() is None


def test_the_private_key_never_shows_in_the_settings_text() -> None:
    settings = Settings(chain_private_key="0x" + "ab" * 32)
    assert "ab" * 32 not in repr(settings) and "ab" * 32 not in str(settings.model_dump())
    assert settings.private_key() == "0x" + "ab" * 32


def test_as_fast_as_possible_needs_an_end() -> None:
    with pytest.raises(ValidationError, match="needs a number of simulated minutes"):
        Settings(speed=0, sim_minutes=0)
    assert Settings(speed=0, sim_minutes=30).sim_minutes == 30


def test_bad_settings_give_one_line_and_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMARTZONE_HTTP_PORT", "not-a-port")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("smartzone: error: invalid settings: SMARTZONE_HTTP_PORT") and "\n" not in err
    assert "SMARTZONE_HTTP_PORT" in err and "not-a-port" in err


@pytest.mark.parametrize("port", [0, 65536, 70000])
def test_the_http_port_is_a_tcp_port(port: int) -> None:
    with pytest.raises(ValidationError, match="http_port"):
        Settings(http_port=port)
    assert Settings(http_port=65535).http_port == 65535


def test_the_log_level_is_a_known_name_in_any_case() -> None:
    assert Settings(log_level="debug").log_level == "DEBUG"
    with pytest.raises(ValidationError, match="must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        Settings(log_level="verbose")


@pytest.mark.parametrize(
    ("field", "url", "why"),
    [
        ("database_url", "postgres://u@db/x", "write postgresql+psycopg://… (SQLAlchemy does not accept postgres://)"),
        ("database_url", "mysql://u@db/x", "must start with sqlite:/// or postgresql+psycopg://"),
        ("mqtt_url", "http://broker:1883", "must start with mqtt:// or mqtts://"),
        ("chain_url", "ftp://node:8545", "must start with http:// or https://"),
    ],
)
def test_urls_have_a_scheme_the_part_speaks(field: str, url: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why.replace("+", r"\+").replace("(", r"\(").replace(")", r"\)")):
        Settings(**{field: url})


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("database_url", "sqlite:///data/x.db"),
        ("database_url", "postgresql+psycopg://u@db/x"),
        ("database_url", "postgresql://u@db/x"),
        ("mqtt_url", "mqtts://u:p@broker:8883"),
        ("chain_url", "https://node.example/v3/key"),
    ],
)
def test_the_usual_urls_are_accepted(field: str, url: str) -> None:
    assert getattr(Settings(**{field: url}), field) == url


def test_secret_values_are_every_key_and_url_credential() -> None:
    settings = Settings(
        chain_private_key="0x" + "ab" * 32,
        operator_key="cd" * 32,
        mqtt_url="mqtt://aggregator%40zone:p%2Fss%40word@broker:1883",
        database_url="postgresql+psycopg://app:db-secret@db/x?sslpassword=tls-secret",
        chain_url="https://node.example/v3/0123456789abcdefABCDEF",
    )
    secrets = set(settings.secret_values())
    assert {"0x" + "ab" * 32, "cd" * 32, "p%2Fss%40word", "p/ss@word", "db-secret", "tls-secret"} <= secrets
    assert "0123456789abcdefABCDEF" in secrets
    assert not secrets & {"aggregator@zone", "aggregator%40zone", "broker", "app", "db", "x"}
    assert Settings().secret_values() == []


def test_an_invalid_url_is_shown_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMARTZONE_DATABASE_URL", "postgres://app:hunter22@db/x")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "SMARTZONE_DATABASE_URL" in err and "postgres://app:***@db/x" in err and "hunter22" not in err


def test_an_option_is_named_as_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "70000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "smartzone: error: invalid settings: --port: Input should be less than or equal to 65535 (got 70000)"


def test_every_log_handler_masks_the_settings_secrets(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SMARTZONE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SMARTZONE_CHAIN_URL", "http://user:chain-pass@127.0.0.1:1")
    monkeypatch.setenv("SMARTZONE_OPERATOR_KEY", "0x" + "ef" * 32)
    assert main(["db", "current"]) == 1  # no schema yet; logging is set up
    logging.getLogger("some.library").warning("posting to http://user:chain-pass@127.0.0.1:1 with %s", "ef" * 32)
    assert "posting to http://user:***@127.0.0.1:1 with ***" in caplog.text
    assert "chain-pass" not in caplog.text and "ef" * 32 not in caplog.text
