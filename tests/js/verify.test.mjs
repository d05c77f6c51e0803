// The in-browser verify (dashboard/static/js/verify.js) against receipts and verdicts of settlement's own Python code.
// Run by tests/unit/test_verify_js.py: SZ_RECEIPTS names the JSON it wrote (cases: receipt, leaf, root, python verdict).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { register } from "node:module";
import { test } from "node:test";

register("./static-resolve.mjs", import.meta.url);
const verify = await import("/static/js/verify.js");
const fixture = JSON.parse(readFileSync(process.env.SZ_RECEIPTS, "utf8"));
const copy = (value) => JSON.parse(JSON.stringify(value));

/** A JSON-RPC stand-in for the chain: chain id, block 42, the given trips root and commit block 40. */
function chainWith(root, chainId = fixture.chain_id) {
  const calls = [];
  const rpc = async (method, params) => {
    calls.push([method, params]);
    if (method === "eth_chainId") return `0x${chainId.toString(16)}`;
    if (method === "eth_blockNumber") return "0x2a";
    if (method === "eth_call" && params[0].data.startsWith(verify.TRIPS_ROOT)) return root;
    if (method === "eth_call" && params[0].data.startsWith(verify.COMMIT_BLOCK)) return `0x${"0".repeat(62)}28`;
    throw new Error(`unexpected ${method}`);
  };
  return { rpc, calls };
}

test("the leaf and the root of every genuine receipt are those settlement computed", () => {
  for (const { receipt, leaf, root } of fixture.genuine) {
    const checked = verify.checkReceipt(receipt);
    assert.equal(checked.leaf, leaf);
    assert.equal(checked.root, root);
    assert.equal(verify.processProof(leaf, receipt.proof), root);
  }
});

test("the selectors are those of the clearing contract's views", () => {
  assert.equal(verify.TRIPS_ROOT, fixture.selectors.trips_root);
  assert.equal(verify.COMMIT_BLOCK, fixture.selectors.commit_block);
});

test("a receipt is refused exactly when settlement's own verify refuses it", () => {
  assert.ok(fixture.edited.length >= 10);
  for (const { name, receipt, python } of fixture.edited) {
    let refused = null;
    try { verify.checkReceipt(receipt); } catch (error) { refused = error; }
    assert.equal(refused !== null, python !== null, `${name}: python says ${python}, js says ${refused && refused.message}`);
    if (refused) assert.ok(refused instanceof verify.Refused, `${name}: ${refused}`);
  }
});

test("each kind of edit is named by the check that catches it", () => {
  const named = Object.fromEntries(fixture.edited.map(({ name, receipt }) => {
    try { verify.checkReceipt(receipt); return [name, null]; } catch (error) { return [name, error.check]; }
  }));
  assert.deepEqual(
    { fare: named.charged_fare, leaf: named.leaf_fare, proof: named.proof_node, voucher: named.voucher_amount,
      sig: named.consent_signature, epoch: named.epoch_id, contract: named.contract_case, owner: named.trip_owner },
    { fare: "fare", leaf: "proof", proof: "proof", voucher: "voucher", sig: "consent", epoch: "epoch",
      contract: "contract", owner: "fields" },
  );
});

test("the signers of the consent and the voucher are the trip's rider", () => {
  const { receipt } = fixture.genuine[0];
  const { signers } = verify.checkReceipt(receipt);
  assert.equal(signers.consent, receipt.trip.rider);
  assert.equal(signers.voucher, receipt.trip.rider);
});

test("a charge above the consent's cap is refused by the cap check even when everything else is re-signed", () => {
  assert.throws(() => verify.checkReceipt(fixture.capped.receipt), (e) => e.check === "cap");
});

test("a receipt of another contract, chain or rider than the dashboard's and the signed-in one is refused", () => {
  const { receipt } = fixture.genuine[0];
  assert.throws(() => verify.checkReceipt(receipt, { contract: `0x${"12".repeat(20)}` }), (e) => e.check === "contract");
  assert.throws(() => verify.checkReceipt(receipt, { chainId: 1 }), (e) => e.check === "chain");
  assert.throws(() => verify.checkReceipt(receipt, { rider: `0x${"34".repeat(20)}` }), (e) => e.check === "rider");
  assert.doesNotThrow(() => verify.checkReceipt(receipt, {
    contract: receipt.contract.toLowerCase(), chainId: receipt.chain_id, rider: receipt.trip.rider.toLowerCase(),
  }));
});

test("verify reads the root from the chain at its latest block and says which", async () => {
  const { receipt, root } = fixture.genuine[1];
  const chain = chainWith(root);
  const verdict = await verify.verifyReceipt(receipt, { rpc: chain.rpc, contract: receipt.contract, chainId: null });
  assert.equal(verdict.ok, true, verdict.detail);
  assert.equal(verdict.block, 42n);
  assert.equal(verdict.commitBlock, 40n);
  const call = chain.calls.find(([m, p]) => m === "eth_call" && p[0].data.startsWith(verify.TRIPS_ROOT));
  assert.equal(call[1][0].to, receipt.contract);
  assert.equal(call[1][0].data, verify.TRIPS_ROOT + BigInt(receipt.epoch_id).toString(16).padStart(64, "0"));
  assert.equal(call[1][1], "0x2a");
});

test("verify fails on another root on chain, no root, another chain, or no answer", async () => {
  const { receipt, root } = fixture.genuine[1];
  const other = `0x${"ab".repeat(32)}`;
  const cases = [
    [chainWith(other).rpc, "root"],
    [chainWith(verify.NO_DIGEST).rpc, "root"],
    [chainWith(root, 5).rpc, "chain"],
    [async () => { throw new Error("connection refused"); }, "rpc"],
  ];
  for (const [rpc, check] of cases) {
    const verdict = await verify.verifyReceipt(copy(receipt), { rpc });
    assert.equal(verdict.ok, false);
    assert.equal(verdict.check, check, verdict.detail);
  }
});

test("malformed receipts are refused as such, never thrown at the page", async () => {
  for (const bad of [null, [], "x", {}, { ...fixture.genuine[0].receipt, proof: "0x00" },
    { ...fixture.genuine[0].receipt, leaf_values: fixture.genuine[0].receipt.leaf_values.slice(1) }]) {
    const verdict = await verify.verifyReceipt(bad, { rpc: chainWith(fixture.genuine[0].root).rpc });
    assert.equal(verdict.ok, false);
    assert.equal(verdict.check, "shape", verdict.detail);
  }
});
