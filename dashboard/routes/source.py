"""The running code as a tarball at ``/source.tar.gz``: the AGPL's offer of source to every network user."""

from __future__ import annotations

import importlib.util
import io
import tarfile
from functools import cache
from importlib import metadata
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

PACKAGES = ("sensors", "simulator", "settlement", "dashboard", "smartzone")
SKIP = {"__pycache__"}

router = APIRouter()


def _package_dirs() -> list[Path]:
    dirs = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs.append(Path(next(iter(spec.submodule_search_locations))))
    return dirs


def _licence() -> tuple[str, bytes] | None:
    """The licence text: from the installed distribution, else beside the packages (a source checkout)."""
    try:
        for file in metadata.distribution("smartzone").files or []:
            if file.name.upper().startswith("LICENSE"):
                return "LICENSE", Path(str(file.locate())).read_bytes()
    except (metadata.PackageNotFoundError, OSError):
        pass
    for folder in _package_dirs():
        candidate = folder.parent / "LICENSE"
        if candidate.is_file():
            return "LICENSE", candidate.read_bytes()
    return None


@cache
def source_archive() -> bytes:
    """A gzipped tar of the packages this process runs, with the licence."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for folder in _package_dirs():
            for path in sorted(folder.rglob("*")):
                if path.is_file() and not SKIP.intersection(path.parts) and path.suffix != ".pyc":
                    tar.add(path, arcname=f"smartzone-source/{path.relative_to(folder.parent)}", recursive=False)
        licence = _licence()
        if licence is not None:
            info = tarfile.TarInfo(f"smartzone-source/{licence[0]}")
            info.size = len(licence[1])
            tar.addfile(info, io.BytesIO(licence[1]))
    return buffer.getvalue()


@router.get("/source.tar.gz", tags=["health"], response_class=Response)
def source() -> Response:
    """The complete source code of this running service (AGPL-3.0-or-later)."""
    return Response(
        source_archive(),
        media_type="application/gzip",
        headers={"Content-Disposition": 'attachment; filename="smartzone-source.tar.gz"'},
    )
