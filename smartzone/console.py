"""What the command prints: an invalid setting as one line, and no secret in any log line, error or traceback."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType

from pydantic import ValidationError
from pydantic_settings import SettingsError

from sensors.redaction import RedactingFilter, Redactor, redact_url
from smartzone.settings import SECRET_FIELDS, URL_FIELDS

OPTIONS = {
    "vehicles": "--vehicles",
    "sim_minutes": "--minutes",
    "speed": "--speed",
    "seed": "--seed",
    "http_port": "--port",
}
"""The settings the command line can give, by option."""

SECRETS: set[str] = set()
REDACTION = RedactingFilter(Redactor())
"""Masks the ``SECRETS`` this process knows in every log record, error and traceback it prints."""


def invalid_setting(exc: ValidationError | SettingsError, given: Mapping[str, object]) -> str:
    """The first invalid setting as ``<option or variable>: <why> (got <value>)``, never showing a secret;
    ``given`` are the settings the command line gave (named by their option, the others by their variable)."""
    if isinstance(exc, SettingsError):  # a JSON-valued variable that is not JSON
        return str(exc)
    first = exc.errors()[0]
    why = first["msg"].removeprefix("Value error, ")
    field = str(first["loc"][0]) if first["loc"] else ""
    if not field:
        return why
    where = OPTIONS[field] if field in given and field in OPTIONS else f"SMARTZONE_{field.upper()}"
    shown = ""
    if field not in SECRET_FIELDS and isinstance(first.get("input"), str | int | float):
        value = redact_url(str(first["input"])) if field in URL_FIELDS else first["input"]
        shown = f" (got {value!r})"
    return f"{where}: {why}{shown}"


def protect(secrets: Iterable[str]) -> None:
    """Mask ``secrets`` (with those known already) in logs, errors and uncaught tracebacks from now on."""
    SECRETS.update(s for s in secrets if s)
    REDACTION.redactor = Redactor(SECRETS)
    sys.excepthook = _print_traceback
    threading.excepthook = _print_thread_traceback


def mask_logs() -> None:
    """Put the redaction on every handler of the root logger: records of every library's logger pass it."""
    for handler in logging.getLogger().handlers:
        if REDACTION not in handler.filters:
            handler.addFilter(REDACTION)


def masked(text: str) -> str:
    return REDACTION.redactor.text(text)


def _print_traceback(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    print(masked("".join(traceback.format_exception(kind, value, tb))), end="", file=sys.stderr)


def _print_thread_traceback(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is not SystemExit:
        print(f"Exception in thread {args.thread.name if args.thread else '?'}:", file=sys.stderr)
        _print_traceback(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM, with the previous handlers restored afterwards."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
