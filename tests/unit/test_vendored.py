"""The browser libraries vendored under dashboard/static/vendor: pinned, licensed and identical to their npm package."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests import services

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "dashboard" / "static" / "vendor"
PACKAGES = ("leaflet", "uplot", "ethers")
LICENCES = {"leaflet": "BSD-2-Clause", "uplot": "MIT", "ethers": "MIT"}


def record(package: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((VENDOR / package / "VENDOR.json").read_text(encoding="utf-8"))
    return document


def lock_entry(package: str) -> dict[str, Any]:
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    entry: dict[str, Any] = lock["packages"][f"node_modules/{package}"]
    return entry


def installed(package: str) -> Path:
    """The npm package's folder, or a skip (a failure when CI requires services) when npm ci did not run."""
    folder = ROOT / "node_modules" / package
    if not (folder / "package.json").is_file():
        services.unavailable(f"node_modules/{package} is not installed (run npm ci)")
    return folder


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_vendored_package_has_a_record() -> None:
    folders = sorted(p.name for p in VENDOR.iterdir() if p.is_dir())
    assert folders == sorted(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_each_vendored_file_exists_and_matches_its_recorded_sha256(package: str) -> None:
    files = record(package)["files"]
    assert files, "a record lists its files"
    for path, digest in files.items():
        assert not Path(path).is_absolute() and ".." not in Path(path).parts
        assert sha256(VENDOR / package / path) == digest, path


@pytest.mark.parametrize("package", PACKAGES)
def test_no_file_is_vendored_without_being_recorded(package: str) -> None:
    on_disk = {
        p.relative_to(VENDOR / package).as_posix()
        for p in (VENDOR / package).rglob("*")
        if p.is_file() and p.name != "VENDOR.json"
    }
    assert on_disk == set(record(package)["files"])


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_ships_its_licence_and_names_it_in_spdx(package: str) -> None:
    document = record(package)
    assert document["package"] == package
    assert document["license"] == LICENCES[package]
    licence_files = [p for p in document["files"] if Path(p).name.upper().startswith("LICENSE")]
    assert licence_files, f"{package} is vendored without its licence"
    text = (VENDOR / package / licence_files[0]).read_text(encoding="utf-8")
    expected = "Redistribution and use" if LICENCES[package] == "BSD-2-Clause" else "Permission is hereby granted"
    assert expected in text


@pytest.mark.parametrize("package", PACKAGES)
def test_the_vendored_version_is_the_one_pinned_in_package_json(package: str) -> None:
    pinned = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["devDependencies"][package]
    assert record(package)["version"] == pinned
    assert lock_entry(package)["version"] == pinned


@pytest.mark.parametrize("package", PACKAGES)
def test_the_recorded_integrity_is_the_lock_files_sha512(package: str) -> None:
    integrity = record(package)["integrity"]
    assert integrity.startswith("sha512-")
    assert integrity == lock_entry(package)["integrity"]


@pytest.mark.parametrize("package", PACKAGES)
def test_the_installed_npm_package_is_the_pinned_one(package: str) -> None:
    folder = installed(package)
    meta = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    assert meta["version"] == record(package)["version"]
    assert meta["license"] == record(package)["license"]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_vendored_file_is_byte_identical_to_the_npm_package(package: str) -> None:
    # npm ci checked the tarball against the lock's sha512, which the record repeats: these bytes are the package's
    folder = installed(package)
    for path in record(package)["files"]:
        vendored = (VENDOR / package / path).read_bytes()
        assert vendored == (folder / path).read_bytes(), f"{package}/{path} differs from node_modules"
