"""The settlement contract's source and its compiled ABI and bytecode (the only module importing vyper)."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from typing import Any, NamedTuple

SOURCE = Path(__file__).resolve().parent / "contracts" / "settlement.vy"


class CompiledContract(NamedTuple):
    """What a deployment needs: the JSON ABI and the creation bytecode (``0x``-prefixed hex)."""

    abi: tuple[dict[str, Any], ...]
    bytecode: str


def search_paths() -> list[Path]:
    """Where vyper looks for imported modules: ``sys.path``, snekmate's home and the contract's folder.

    Vyper gives the *last* path the highest precedence, the reverse of Python's order.
    """
    paths = [Path(entry) for entry in reversed(sys.path) if entry]
    spec = importlib.util.find_spec("snekmate")
    if spec is not None and spec.submodule_search_locations:
        paths.extend(Path(location).parent for location in spec.submodule_search_locations)
    paths.append(SOURCE.parent)
    return [path for path in paths if path.is_dir()]


@functools.cache
def compiled() -> CompiledContract:
    """Compile ``contracts/settlement.vy`` once per process (a few hundred milliseconds, offline)."""
    import vyper
    from vyper.compiler.input_bundle import FilesystemInputBundle

    output = vyper.compile_code(
        SOURCE.read_text(encoding="utf-8"),
        contract_path=SOURCE.name,
        resolved_path=SOURCE,
        input_bundle=FilesystemInputBundle(search_paths()),
        output_formats=["abi", "bytecode"],
    )
    return CompiledContract(abi=tuple(output["abi"]), bytecode=str(output["bytecode"]))
