"""compose.yaml stays in step with the settings object (no container engine runs here to try it)."""

from __future__ import annotations

from pathlib import Path

import yaml

from smartzone.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_the_parts_against_mosquitto_postgresql_and_anvil() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"mosquitto", "postgres", "anvil", "aggregator", "dashboard", "simulator"} <= set(services)
    assert services["aggregator"]["command"] == ["aggregate"]
    assert services["dashboard"]["command"] == ["serve"]
    assert services["simulator"]["command"][0] == "simulate"


def test_compose_sets_only_settings_that_exist() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    known = {f"SMARTZONE_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith("SMARTZONE_"):
                assert variable in known, f"{name} sets unknown {variable}"
