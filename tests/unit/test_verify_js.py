"""The browser's verify (static/js/verify.js) run in Node against receipts, leaves, roots and verdicts of settlement's
own Python code."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_utils import function_signature_to_4byte_selector

from settlement.epochs import LEAF_TYPES, priced
from settlement.merkle import leaf_hash
from settlement.receipts import build_receipt, verify_receipt
from tests.node_tests import ROOT_DIR, node, run_node_test
from tests.unit.test_receipts import CONTEXT, EPOCH, ROOT, consent, receipt, root_of


def genuine() -> list[dict[str, Any]]:
    """Each trip of the unit tests' epoch (trip 4's charge set by its voucher) and a trip settled without consent."""
    cases: list[dict[str, Any]] = []
    for n, trip in enumerate(EPOCH, start=1):
        leaf = leaf_hash(LEAF_TYPES, priced(trip, CONTEXT.domain).leaf(CONTEXT, 3))
        cases.append({"name": f"trip_{n}", "receipt": receipt(n), "leaf": "0x" + leaf.hex(), "root": "0x" + ROOT.hex()})
    bare = dataclasses.replace(EPOCH[0], consent=None, voucher=None, charged_micro=None, limited_by=None)
    epoch = [bare, *EPOCH[1:]]
    document = build_receipt(bare, epoch, CONTEXT, tx_hash=None, status="final")
    leaf = leaf_hash(LEAF_TYPES, priced(bare, CONTEXT.domain).leaf(CONTEXT, 3))
    cases.append({"name": "no_consent", "receipt": document, "leaf": "0x" + leaf.hex(), "root": document["root"]})
    for case in cases:
        assert verify_receipt(case["receipt"], bytes.fromhex(case["root"][2:])) is None, case["name"]
    return cases


def edit(document: dict[str, Any], path: tuple[Any, ...], change: Any) -> dict[str, Any]:
    """A deep copy of ``document`` with the value at ``path`` replaced by ``change(old)``."""
    copy = json.loads(json.dumps(document))
    here = copy
    for key in path[:-1]:
        here = here[key]
    here[path[-1]] = change(here[path[-1]])
    return copy


def flip(text: str) -> str:
    return text[:-1] + ("1" if text[-1] != "1" else "2")


def edited() -> list[dict[str, Any]]:
    """Receipt 2 edited one way each, with settlement's own verdict (None: accepted)."""
    base = receipt(2)
    edits: dict[str, tuple[tuple[Any, ...], Any]] = {
        "charged_fare": (("fare", "charged_micro"), lambda v: v - 1),
        "leaf_fare": (("leaf_values", 9), flip),
        "proof_node": (("proof", 0), flip),
        "root": (("root",), flip),
        "voucher_amount": (("voucher", "cumulative_micro"), lambda v: v + 1),
        "consent_signature": (("consent", "sig"), lambda s: s[:10] + ("0" if s[10] != "0" else "1") + s[11:]),
        "consent_cap": (("consent", "cap_micro"), lambda v: v + 1),
        "epoch_id": (("epoch_id",), lambda v: v + 1),
        "contract_case": (("contract",), str.lower),
        "trip_owner": (("trip", "owner"), lambda v: "0x" + "44" * 20),
        "trip_duration": (("trip", "duration_s"), lambda v: v + 1),
        "fare_total": (("fare", "total_micro"), lambda v: v + 1),
        "rider_lowercase_in_leaf": (("leaf_values", 5), str.lower),
        "signing_chain": (("signing_chain_id",), lambda v: v + 1),
        "untouched": (("status",), lambda v: v),
    }
    cases = []
    for name, (path, change) in edits.items():
        document = edit(base, path, change)
        cases.append({"name": name, "receipt": document, "python": verify_receipt(document, ROOT)})
    assert cases[-1]["python"] is None and all(c["python"] for c in cases[:-1])
    return cases


def capped() -> dict[str, Any]:
    """A trip whose leaf charges above the consent's cap: its proof holds, its consent does not allow it."""
    trip = dataclasses.replace(EPOCH[1], consent=consent(2, cap_micro=600_000))
    epoch = [EPOCH[0], trip, *EPOCH[2:]]
    document = build_receipt(trip, epoch, CONTEXT, tx_hash=None, status="committed")
    refusal = verify_receipt(document, root_of(epoch, 3))
    assert refusal is not None and "cap" in refusal
    return {"name": "above_cap", "receipt": document}


def test_the_browsers_verify_agrees_with_settlement_on_leaves_roots_and_refusals(tmp_path: Path) -> None:
    fixture = {
        "chain_id": CONTEXT.chain_id,
        "genuine": genuine(),
        "edited": edited(),
        "capped": capped(),
        "selectors": {
            name: "0x" + function_signature_to_4byte_selector(f"{name}(uint256)").hex()
            for name in ("trips_root", "commit_block")
        },
    }
    output = run_node_test("verify.test.mjs", "SZ_RECEIPTS", fixture, tmp_path)
    assert "# pass 10" in output, output[-2000:]


@pytest.mark.parametrize("name", ["verify.js", "rider.js"])
def test_the_rider_scripts_parse_as_modules(name: str) -> None:
    binary = node()
    source = ROOT_DIR / "dashboard" / "static" / "js" / name
    result = subprocess.run(
        [binary, "--input-type=module", "--check"],
        input=source.read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
