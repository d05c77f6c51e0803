"""The ``smartzone retention`` command: old raw telemetry folded into per-minute tracks, dead-letter samples pruned."""

from __future__ import annotations

import argparse
import sys
import time

from smartzone.settings import Settings

PROGRESS_EVERY_S = 1.0


def add_retention_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``retention`` on the CLI's subcommands."""
    retention = sub.add_parser(
        "retention",
        help="fold raw telemetry older than N days into per-minute tracks and prune dead-letter samples",
        description="Fold raw telemetry older than N days (by the readings' own time) into per-minute tracks and "
        "delete it, in chunks of one transaction each (safe to interrupt and to run again, also while the "
        "aggregator runs); then prune dead-letter samples beyond SMARTZONE_REJECT_SAMPLES_MAX and older than "
        "SMARTZONE_REJECT_SAMPLE_DAYS, and cut longer payloads to SMARTZONE_REJECT_SAMPLE_BYTES. Readings within "
        "the replay window of their vehicle's last seq stay raw.",
    )
    retention.add_argument(
        "--days", type=_positive, default=None, help="age in days (default SMARTZONE_TELEMETRY_RAW_DAYS, 30)"
    )
    retention.add_argument("--dry-run", action="store_true", help="say what would change and change nothing")
    retention.set_defaults(command=run_retention)


def run_retention(settings: Settings, args: argparse.Namespace) -> int:
    """Run retention on the settings' database; progress on stderr, the summary on stdout."""
    from settlement.dead_letters import SampleLimits
    from settlement.retention import CHUNK, RetentionReport, retain
    from smartzone.parts import open_database, unit_of_work

    shown = [0.0]

    def progress(report: RetentionReport) -> None:
        if time.monotonic() - shown[0] < PROGRESS_EVERY_S:
            return
        shown[0] = time.monotonic()
        done = "to fold" if report.dry_run else "folded"
        line = f"retention: {report.readings:,} raw readings {done} ({report.chunks} chunks of {CHUNK:,} row ids)"
        print(line, file=sys.stderr, flush=True)

    days = settings.telemetry_raw_days if args.days is None else args.days
    limits = SampleLimits(settings.reject_sample_bytes, settings.reject_samples_max, settings.reject_sample_days)
    database = open_database(settings)
    try:
        report = retain(
            unit_of_work(database),
            now_ms=int(time.time() * 1000),
            raw_days=days,
            limits=limits,
            dry_run=args.dry_run,
            progress=progress,
        )
    finally:
        database.close()
    progress_line = f"retention: {report.readings:,} raw readings in {report.chunks} chunks"
    print(progress_line, file=sys.stderr, flush=True)
    print(report.summary(), flush=True)
    return 0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"the number of days must be more than 0, not {text}")
    return value
