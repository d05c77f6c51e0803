"""The one redaction rule: what a log, an error, a banner or a page may show of a URL or a key."""

from __future__ import annotations

import logging

import pytest

from sensors.redaction import RedactingFilter, Redactor, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mqtt://aggregator:s3cret@127.0.0.1:1883", "mqtt://aggregator:***@127.0.0.1:1883"),
        ("http://user:chainpass@127.0.0.1:8545", "http://user:***@127.0.0.1:8545"),
        ("https://mainnet.example.io/v3/9aa3d95b3bc440fa88ea12eaa4456161", "https://mainnet.example.io/v3/***"),
        ("https://node.example/rpc?apikey=abc123&chain=1", "https://node.example/rpc?apikey=***&chain=1"),
        (
            "postgresql+psycopg://app:pw@db:5432/sz?sslmode=require",
            "postgresql+psycopg://app:***@db:5432/sz?sslmode=require",
        ),
        ("mqtt://u:pa#ss@host:1883", "mqtt://u:***@host:1883"),  # unquoted characters the URL parser cuts at
        ("mqtt://u:pa/ss?x@host:1883", "mqtt://u:***@host:1883"),
        ("http://u:p@ss@127.0.0.1:8545", "http://u:***@127.0.0.1:8545"),
        ("mqtt://gateway@op:se#cret@127.0.0.1:1883", "mqtt://gateway@op:***@127.0.0.1:1883"),  # "@" in the user
    ],
)
def test_a_url_keeps_where_it_points_and_loses_its_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/smartzone-bench-phjmctxe/smartzone.db",  # a long path segment is not an API key
        "sqlite:///data/smartzone.db",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dbench_x",
        "mqtt://127.0.0.1:1883",
    ],
)
def test_a_url_without_credentials_is_shown_exactly_as_given(url: str) -> None:
    assert redact_url(url) == url


def test_every_form_of_a_known_secret_is_masked_in_a_text() -> None:
    redactor = Redactor(["0xabcdef0123456789", "pa ss/word", None, "ab"])
    text = "key 0xabcdef0123456789 bare abcdef0123456789 encoded pa%20ss%2Fword plain pa ss/word; ab stays"
    assert redactor.text(text) == "key *** bare *** encoded *** plain ***; ab stays"


def test_a_log_record_carrying_a_secret_in_its_arguments_or_traceback_is_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("test.redaction")
    handler = caplog.handler
    handler.addFilter(RedactingFilter(Redactor(["hunter2-password"])))
    try:
        with caplog.at_level(logging.INFO, logger="test.redaction"):
            log.info("connecting with %s", "mqtt://u:hunter2-password@h")
            try:
                raise RuntimeError("refused: hunter2-password")
            except RuntimeError:
                log.exception("failed")
    finally:
        handler.filters.clear()
    assert "hunter2-password" not in caplog.text
    assert "mqtt://u:***@h" in caplog.text and "refused: ***" in caplog.text
