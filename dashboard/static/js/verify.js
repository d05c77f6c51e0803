// A trip receipt checked in the browser: the leaf and proof as settlement builds them, the rider's signatures,
// and the epoch's trips root read from the chain over JSON-RPC (never from our API). No DOM here: Node tests it.
import {
  AbiCoder, TypedDataEncoder, concat, getAddress, id, keccak256, verifyTypedData,
} from "/static/vendor/ethers/dist/ethers.min.js";

/** The ABI types of a trip leaf (settlement.epochs.LEAF_TYPES): chain id, contract, epoch, trip id, owner, rider,
 * start, end, distance, charged fare, consent digest, voucher digest. */
export const LEAF_TYPES = [
  "uint256", "address", "uint256", "string", "address", "string",
  "uint64", "uint64", "uint64", "uint256", "bytes32", "bytes32",
];
export const NO_DIGEST = `0x${"0".repeat(64)}`;
export const RECEIPT_KEYS = [
  "trip", "fare", "epoch_id", "chain_id", "contract", "tx_hash", "status", "consent", "voucher",
  "signing_chain_id", "root", "leaf_types", "leaf_values", "proof",
];
const TRIP_KEYS = ["trip_id", "vehicle_id", "owner", "rider", "start_ms", "end_ms", "duration_s", "distance_m"];
const FARE_KEYS = ["unlock_micro", "time_micro", "distance_micro", "total_micro", "charged_micro"];
/** What the rider's wallet signs (sensors.consent.TYPES), in the domain {SmartZone, 1, chainId}. */
export const CONSENT_TYPES = {
  RideConsent: [
    { name: "rider", type: "address" }, { name: "vehicleId", type: "string" }, { name: "tariffId", type: "string" },
    { name: "capMicro", type: "uint256" }, { name: "expiryMs", type: "uint64" }, { name: "nonce", type: "uint256" },
  ],
};
export const VOUCHER_TYPES = {
  Voucher: [
    { name: "rider", type: "address" }, { name: "tripId", type: "string" },
    { name: "cumulativeMicro", type: "uint256" }, { name: "seq", type: "uint32" },
  ],
};
/** The clearing contract's views (settlement/contracts/clearing.vy): trips_root(uint256), commit_block(uint256). */
export const TRIPS_ROOT = id("trips_root(uint256)").slice(0, 10);
export const COMMIT_BLOCK = id("commit_block(uint256)").slice(0, 10);
const HASH = /^0x[0-9a-f]{64}$/;
const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** Why a receipt does not verify: ``check`` names the failing check, the message says what differs. */
export class Refused extends Error {
  constructor(check, detail) {
    super(detail);
    this.check = check;
  }
}

/** keccak256(keccak256(abi.encode(types, values))): an OpenZeppelin StandardMerkleTree leaf. */
export function leafHash(types, values) {
  return keccak256(keccak256(AbiCoder.defaultAbiCoder().encode(types, values)));
}

/** The parent of two nodes: keccak256 of the pair in ascending byte order. */
export function nodeHash(a, b) {
  const [x, y] = [a.toLowerCase(), b.toLowerCase()];
  return keccak256(concat(x <= y ? [x, y] : [y, x]));
}

/** The root a leaf and its proof lead to. */
export function processProof(leaf, proof) {
  return proof.reduce((node, sibling) => nodeHash(node, sibling), leaf.toLowerCase());
}

function hash(value, name) {
  if (typeof value !== "string" || !HASH.test(value)) throw new Refused("shape", `${name} is not 0x and 64 lowercase hex digits`);
  return value;
}

function integer(value, name) {
  if (!Number.isSafeInteger(value) || value < 0) throw new Refused("shape", `${name} is not a non-negative integer`);
  return BigInt(value);
}

/** The leaf values as ethers encodes them, each checked to be written canonically (as settlement writes them). */
export function leafValues(raw) {
  if (!Array.isArray(raw) || raw.length !== LEAF_TYPES.length) {
    throw new Refused("shape", `leaf_values must be a list of ${LEAF_TYPES.length} values`);
  }
  const values = raw.map((value, i) => {
    const kind = LEAF_TYPES[i];
    if (typeof value !== "string") throw new Refused("shape", `leaf_values[${i}] is not a string`);
    if (kind.startsWith("uint")) {
      if (!DECIMAL.test(value)) throw new Refused("shape", `leaf_values[${i}] is not a decimal integer`);
      return BigInt(value);
    }
    if (kind === "bytes32") return hash(value, `leaf_values[${i}]`);
    if (kind === "address") {
      let canonical;
      try { canonical = getAddress(value); } catch { throw new Refused("shape", `leaf_values[${i}] is not an address`); }
      if (canonical !== value) throw new Refused("shape", `leaf_values[${i}] is not in EIP-55 form`);
    }
    return value;
  });
  try {
    leafHash(LEAF_TYPES, values);
  } catch (error) {
    throw new Refused("shape", `leaf_values do not encode as the trip leaf: ${error.shortMessage || error.message}`);
  }
  return values;
}

function shape(receipt) {
  if (receipt === null || typeof receipt !== "object" || Array.isArray(receipt)) {
    throw new Refused("shape", "a receipt is a JSON object");
  }
  const missing = RECEIPT_KEYS.filter((key) => !(key in receipt));
  if (missing.length) throw new Refused("shape", `the receipt lacks ${missing.join(", ")}`);
  if (JSON.stringify(receipt.leaf_types) !== JSON.stringify(LEAF_TYPES)) {
    throw new Refused("shape", "leaf_types are not those of a trip leaf");
  }
  if (!Array.isArray(receipt.proof)) throw new Refused("shape", "proof is not a list");
  receipt.proof.forEach((node, i) => hash(node, `proof[${i}]`));
  const trip = receipt.trip, fare = receipt.fare;
  if (!trip || typeof trip !== "object" || !fare || typeof fare !== "object") {
    throw new Refused("shape", "trip and fare must be JSON objects");
  }
  const lacking = [...TRIP_KEYS.filter((k) => !(k in trip)).map((k) => `trip.${k}`),
    ...FARE_KEYS.filter((k) => !(k in fare)).map((k) => `fare.${k}`)];
  if (lacking.length) throw new Refused("shape", `the receipt lacks ${lacking.join(", ")}`);
  return { values: leafValues(receipt.leaf_values), root: hash(receipt.root, "root") };
}

function same(check, name, said, leaf) {
  if (typeof said === "boolean" || String(said) !== String(leaf)) {
    throw new Refused(check, `the receipt's ${name} ${JSON.stringify(said)} is not the leaf's ${String(leaf)}`);
  }
}

function ceilSeconds(ms) {
  const q = ms / 1000n;
  return ms % 1000n > 0n ? q + 1n : q;
}

/** The receipt's own fields say what the proved leaf says (its chain, contract, epoch, trip and fare). */
function sameAsLeaf(receipt, values, expect) {
  const [chainId, contract, epochId, tripId, owner, rider, startMs, endMs, distanceM, fare] = values;
  same("chain", "chain_id", receipt.chain_id, chainId);
  same("contract", "contract", receipt.contract, contract);
  same("epoch", "epoch_id", receipt.epoch_id, epochId);
  if (expect.chainId != null && BigInt(expect.chainId) !== chainId) {
    throw new Refused("chain", `the receipt is of chain ${chainId}, this dashboard settles on chain ${expect.chainId}`);
  }
  if (expect.contract && expect.contract.toLowerCase() !== contract.toLowerCase()) {
    throw new Refused("contract", `the receipt names contract ${contract}, this dashboard's is ${expect.contract}`);
  }
  if (expect.rider && expect.rider.toLowerCase() !== rider.toLowerCase()) {
    throw new Refused("rider", `the trip's rider is ${rider}, not the signed-in ${expect.rider}`);
  }
  const trip = receipt.trip;
  const said = { trip_id: tripId, owner, rider, start_ms: startMs, end_ms: endMs, distance_m: distanceM,
    duration_s: ceilSeconds(endMs - startMs) };
  for (const [name, leaf] of Object.entries(said)) same("fields", `trip.${name}`, trip[name], leaf);
  if (tripId.slice(0, tripId.lastIndexOf(":")) !== trip.vehicle_id) {
    throw new Refused("fields", `the trip's vehicle_id ${trip.vehicle_id} is not the one trip id ${tripId} names`);
  }
  const parts = FARE_KEYS.map((k) => integer(receipt.fare[k], `fare.${k}`));
  same("fare", "fare.charged_micro", receipt.fare.charged_micro, fare);
  if (parts[0] + parts[1] + parts[2] !== parts[3]) {
    throw new Refused("fare", `the fare's components do not add up to its total ${parts[3]}`);
  }
  if (fare > parts[3]) throw new Refused("fare", `the rider was charged ${fare}, more than the metered fare ${parts[3]}`);
}

function domainOf(receipt) {
  const chain = receipt.signing_chain_id;
  if (!Number.isSafeInteger(chain) || chain <= 0) throw new Refused("consent", "signing_chain_id is not a chain id");
  return { name: "SmartZone", version: "1", chainId: chain };
}

/** The EIP-712 digest and signer of a signed wire object; Refused(check) when its signature does not hold. */
function signed(check, domain, types, message, sig) {
  try {
    return { digest: TypedDataEncoder.hash(domain, types, message), signer: verifyTypedData(domain, types, message, sig) };
  } catch (error) {
    throw new Refused(check, `the rider's signature does not hold: ${error.shortMessage || error.message}`);
  }
}

/** The consent and voucher the leaf binds (by digest), signed by the trip's rider, allowing what was charged. */
export function checkConsent(receipt, values) {
  const [, , , tripId, , rider, , , , fare, consentDigest, voucherDigest] = values;
  const domain = domainOf(receipt);
  const consent = receipt.consent, voucher = receipt.voucher;
  if (consent === null) {
    if (consentDigest !== NO_DIGEST || voucherDigest !== NO_DIGEST || voucher !== null) {
      throw new Refused("consent", "the receipt has no consent, but its leaf binds one");
    }
    return { consent: null, voucher: null };
  }
  const c = signed("consent", domain, CONSENT_TYPES, {
    rider: consent.rider, vehicleId: consent.vehicle_id, tariffId: consent.tariff_id,
    capMicro: consent.cap_micro, expiryMs: consent.expiry_ms, nonce: consent.nonce,
  }, consent.sig);
  if (c.digest !== consentDigest) throw new Refused("consent", "the consent is not the one the leaf binds");
  if (c.signer !== consent.rider) throw new Refused("consent", `the consent is not signed by its rider ${consent.rider}`);
  if (c.signer.toLowerCase() !== rider.toLowerCase()) {
    throw new Refused("consent", `the consent is ${c.signer}'s, the trip's rider is ${rider}`);
  }
  if (consent.vehicle_id !== tripId.slice(0, tripId.lastIndexOf(":"))) {
    throw new Refused("consent", `the consent is for ${consent.vehicle_id}, not the trip's vehicle`);
  }
  if (fare > BigInt(consent.cap_micro)) {
    throw new Refused("cap", `the rider was charged ${fare}, above the consent's cap ${consent.cap_micro}`);
  }
  if (voucher === null) {
    if (voucherDigest !== NO_DIGEST || fare > 0n) throw new Refused("voucher", `the rider was charged ${fare} without a voucher`);
    return { consent: c.signer, voucher: null };
  }
  const v = signed("voucher", domain, VOUCHER_TYPES, {
    rider: voucher.rider, tripId: voucher.trip_id, cumulativeMicro: voucher.cumulative_micro, seq: voucher.seq,
  }, voucher.sig);
  if (v.digest !== voucherDigest) throw new Refused("voucher", "the voucher is not the one the leaf binds");
  if (v.signer !== c.signer) throw new Refused("voucher", `the voucher is not signed by the consent's rider ${c.signer}`);
  if (voucher.trip_id !== tripId) throw new Refused("voucher", `the voucher is for trip ${voucher.trip_id}, not ${tripId}`);
  if (fare > BigInt(voucher.cumulative_micro)) {
    throw new Refused("vouched", `the rider was charged ${fare}, above the voucher's ${voucher.cumulative_micro}`);
  }
  return { consent: c.signer, voucher: v.signer };
}

/** Every check that needs no chain: shape, leaf, proof to the receipt's root, fields, signatures, limits.
 * ``expect`` ({contract, chainId, rider}, each may be null): what this dashboard settles on, and who is signed in.
 * Throws Refused. */
export function checkReceipt(receipt, expect = {}) {
  const { values, root } = shape(receipt);
  const leaf = leafHash(LEAF_TYPES, values);
  if (processProof(leaf, receipt.proof) !== root) {
    throw new Refused("proof", "the proof does not lead from the leaf to the receipt's root");
  }
  sameAsLeaf(receipt, values, expect);
  const signers = checkConsent(receipt, values);
  return { leaf, root, values, signers };
}

/** A JSON-RPC 2.0 caller over HTTP POST: ``rpc(method, params)`` → result; Error on an error answer. */
export function httpRpc(url, fetchImpl = globalThis.fetch) {
  let next = 1;
  return async (method, params) => {
    const response = await fetchImpl(url, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: next++, method, params }),
    });
    if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
    const body = await response.json();
    if (body.error) throw new Error(`${method}: ${body.error.message}`);
    return body.result;
  };
}

/** The chain's id, its latest block, and epoch ``epochId``'s trips root and commit block read at that block. */
export async function readChain(rpc, contract, epochId) {
  const chainId = BigInt(await rpc("eth_chainId", []));
  const block = await rpc("eth_blockNumber", []);
  const argument = BigInt(epochId).toString(16).padStart(64, "0");
  const call = (selector) => rpc("eth_call", [{ to: contract, data: selector + argument }, block]);
  const root = String(await call(TRIPS_ROOT)).toLowerCase();
  const commitBlock = BigInt(await call(COMMIT_BLOCK));
  if (!HASH.test(root)) throw new Error(`trips_root answered ${root.slice(0, 80)}`);
  return { chainId, block: BigInt(block), root, commitBlock };
}

/** The whole verdict: {ok: true, block, commitBlock, epochId, chainId, leaf} or {ok: false, check, detail}.
 * ``options``: {rpc, contract, chainId, rider} (rpc from ``httpRpc``; the others as ``checkReceipt``'s expect). */
export async function verifyReceipt(receipt, options) {
  try {
    const checked = checkReceipt(receipt, options);
    const contract = options.contract || receipt.contract;
    let chain;
    try {
      chain = await readChain(options.rpc, contract, receipt.epoch_id);
    } catch (error) {
      throw new Refused("rpc", error.message);
    }
    if (chain.chainId !== BigInt(receipt.chain_id)) {
      throw new Refused("chain", `the node is chain ${chain.chainId}, the receipt's is ${receipt.chain_id}`);
    }
    if (chain.root === NO_DIGEST) {
      throw new Refused("root", `epoch ${receipt.epoch_id} has no trips root on chain (not committed, or retracted)`);
    }
    if (chain.root !== checked.root) {
      throw new Refused("root", `the receipt's root is not the trips root of epoch ${receipt.epoch_id} on chain`);
    }
    return { ok: true, block: chain.block, commitBlock: chain.commitBlock, epochId: receipt.epoch_id,
      chainId: chain.chainId, leaf: checked.leaf, root: chain.root };
  } catch (error) {
    if (error instanceof Refused) return { ok: false, check: error.check, detail: error.message };
    return { ok: false, check: "error", detail: String(error && error.message ? error.message : error) };
  }
}
