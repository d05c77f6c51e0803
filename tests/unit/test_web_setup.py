"""The dashboard's configuration from the settings: who may sign in, and what browsers are told of the chain."""

from __future__ import annotations

from pydantic import SecretStr

from dashboard.auth import hash_password, verify_password
from dashboard.config import Role
from smartzone.settings import Settings
from smartzone.web import dashboard_setup


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_without_a_password_the_operator_gets_one_for_this_run_only_and_nobody_else_a_login() -> None:
    first, second = dashboard_setup(settings()), dashboard_setup(settings())
    [operator] = first.config.users
    assert operator.role is Role.OPERATOR and not verify_password("demo", operator.password_hash)
    [note] = [n for n in first.notes if n.startswith("operator login")]
    made = note.split(" / ")[1].split()[0]
    assert len(made) >= 16 and verify_password(made, operator.password_hash)
    assert made not in " ".join(second.notes)  # a new one each start
    assert first.config.rider_tokens == {} and not first.config.demo
    assert first.config.session_secret != second.config.session_secret


def test_passwords_and_hashes_come_from_the_settings_and_are_never_printed() -> None:
    stored = hash_password("researcher-pass")
    setup = dashboard_setup(
        settings(operator_password=SecretStr("op-pass-123"), researcher_password_hash=stored, session_secret="k" * 32)
    )
    users = {u.name: u for u in setup.config.users}
    assert verify_password("op-pass-123", users["operator"].password_hash)
    assert users["researcher"].password_hash == stored and users["researcher"].role is Role.RESEARCHER
    assert setup.notes == () and setup.config.session_secret == "k" * 32


def test_demo_mode_says_demo_and_gives_the_first_riders_tokens() -> None:
    setup = dashboard_setup(settings(demo=True, riders=3))
    assert all(verify_password("demo", u.password_hash) for u in setup.config.users)
    assert {u.name for u in setup.config.users} == {"operator", "researcher"}
    assert sorted(setup.config.rider_tokens) == ["rider-1", "rider-2", "rider-3"]
    assert all(a.startswith("0x") and len(a) == 42 for a in setup.config.rider_tokens.values())


def test_browsers_read_the_chain_at_the_apps_own_rpc_never_at_the_nodes_url() -> None:
    node = "https://user:key@node.example/v3/0123456789abcdef0123456789abcdef"
    assert dashboard_setup(settings(chain_url=node)).config.public_rpc_url is None
    assert dashboard_setup(settings(chain_url=node), rpc_served=True).config.public_rpc_url == "/rpc"
    chosen = dashboard_setup(settings(chain_url=node, public_rpc_url="https://rpc.example"), rpc_served=True)
    assert chosen.config.public_rpc_url == "https://rpc.example"
    assert "key" not in (dashboard_setup(settings(chain_url=node)).config.chain_label or "")
