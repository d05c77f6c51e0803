"""The one settings object and the command line's handling of bad settings."""

from __future__ import annotations

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
    assert err.startswith("smartzone: error: invalid settings: http_port") and "\n" not in err
