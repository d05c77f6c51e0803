"""The contracts' sources and their compiled ABI and bytecode (the only module importing vyper)."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from typing import Any, NamedTuple

CONTRACTS = Path(__file__).resolve().parent / "contracts"


class CompiledContract(NamedTuple):
    """What a deployment needs: the JSON ABI and the creation bytecode (``0x``-prefixed hex)."""

    abi: tuple[dict[str, Any], ...]
    bytecode: str


def source(name: str) -> Path:
    """The source of contract ``name`` (``"clearing"``, ``"euro_token"``); ``ValueError`` if there is none."""
    path = CONTRACTS / f"{name}.vy"
    if not name.isidentifier() or not path.is_file():
        raise ValueError(f"no contract {name!r} in {CONTRACTS}")
    return path


def search_paths() -> list[Path]:
    """Where vyper looks for imported modules: ``sys.path``, snekmate's home and the contracts' folder.

    Vyper gives the *last* path the highest precedence, the reverse of Python's order.
    """
    paths = [Path(entry) for entry in reversed(sys.path) if entry]
    spec = importlib.util.find_spec("snekmate")
    if spec is not None and spec.submodule_search_locations:
        paths.extend(Path(location).parent for location in spec.submodule_search_locations)
    paths.append(CONTRACTS)
    return [path for path in paths if path.is_dir()]


@functools.cache
def compiled(name: str) -> CompiledContract:
    """Compile ``contracts/<name>.vy`` once per process (a few hundred milliseconds, offline)."""
    import vyper
    from vyper.compiler.input_bundle import FilesystemInputBundle

    path = source(name)
    output = vyper.compile_code(
        path.read_text(encoding="utf-8"),
        contract_path=path.name,
        resolved_path=path,
        input_bundle=FilesystemInputBundle(search_paths()),
        output_formats=["abi", "bytecode"],
    )
    return CompiledContract(abi=tuple(output["abi"]), bytecode=str(output["bytecode"]))
