// Sign-In with Ethereum (EIP-4361) from the login page: ask the wallet for its account, build the message from
// the server's challenge, have the wallet sign it (personal_sign, EIP-191) and post it; then go to the next page.
import { api, config, t } from "/static/js/format.js";

const button = document.getElementById("siwe");
const status = document.getElementById("siwe-status");

function say(text, error = false) {
  status.textContent = text;
  status.classList.toggle("error", error);
}

/** The EIP-4361 message text: the lines in the order and form of the specification's ABNF. */
export function siweMessage(challenge, address) {
  return [
    `${challenge.domain} wants you to sign in with your Ethereum account:`,
    address,
    "",
    challenge.statement,
    "",
    `URI: ${challenge.uri}`,
    "Version: 1",
    `Chain ID: ${challenge.chain_id}`,
    `Nonce: ${challenge.nonce}`,
    `Issued At: ${challenge.issued_at}`,
    `Expiration Time: ${challenge.expiration_time}`,
  ].join("\n");
}

function utf8Hex(text) {
  return "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function signIn() {
  button.disabled = true;
  try {
    const [account] = await window.ethereum.request({ method: "eth_requestAccounts" });
    // the server writes the address in its EIP-55 form (checksum case): the browser has no Keccak of its own
    const challenge = await api(`/auth/siwe/nonce?address=${encodeURIComponent(account)}`);
    const message = siweMessage(challenge, challenge.address);
    say(t("auth.wallet.asking"));
    const signature = await window.ethereum.request({ method: "personal_sign", params: [utf8Hex(message), account] });
    const me = await api("/auth/siwe", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ message, signature }),
    });
    const next = config.next && config.next !== "/" ? config.next : me.home;
    window.location.assign(next);
  } catch (error) {
    say(error && error.code === 4001 ? t("auth.wallet.cancelled") : t("auth.wallet.refused", { detail: error.message }), true);
    button.disabled = false;
  }
}

if (button && window.ethereum) {
  button.disabled = false;
  say(t("auth.wallet.ready"));
  button.addEventListener("click", signIn);
}
