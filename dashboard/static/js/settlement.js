// The settlement page: copy a transaction hash, and new or changed epochs pushed by the live stream.
import { config, eur, number, t, when } from "/static/js/format.js";

const table = document.getElementById("epochs");
const status = document.getElementById("copy-status");

/** Copy a hash to the clipboard and say so, on the button and to screen readers. */
async function copy(button) {
  const text = button.dataset.copy;
  let said;
  try {
    await navigator.clipboard.writeText(text);
    said = t("settlement.copied");
    button.classList.add("done");
  } catch {
    said = t("settlement.copy_failed");
  }
  button.textContent = said;
  if (status) status.textContent = said;
  setTimeout(() => { button.textContent = t("settlement.copy"); button.classList.remove("done"); }, 2000);
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (button) copy(button);
});

function cell(label, content, className = "") {
  const td = document.createElement("td");
  td.dataset.label = t(label);
  if (className) td.className = className;
  if (content instanceof Node) td.append(content); else td.textContent = content;
  return td;
}

function explorerUrl(tx) {
  const pattern = config.explorer_tx_url;
  return pattern && pattern.includes("{tx}") ? pattern.replace("{tx}", encodeURIComponent(tx)) : null;
}

function txContent(tx) {
  if (!tx) return "—";
  const span = document.createElement("span");
  span.className = "tx";
  const code = document.createElement("code");
  code.className = "mono hash";
  code.dataset.tx = "";
  code.textContent = tx;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.dataset.copy = tx;
  button.setAttribute("aria-label", t("settlement.copy"));
  button.textContent = t("settlement.copy");
  span.append(code, " ", button);
  const url = explorerUrl(tx);
  if (url) {
    const link = document.createElement("a");
    link.className = "explorer";
    link.href = url;
    link.rel = "noopener noreferrer";
    link.target = "_blank";
    link.textContent = t("settlement.explorer");
    span.append(" ", link);
  }
  return span;
}

function timeContent(ms) {
  if (ms == null) return "—";
  const time = document.createElement("time");
  time.dateTime = new Date(ms).toISOString();
  time.textContent = when(ms);
  return time;
}

/** A table row of an epoch (the fields of EpochView). */
export function epochRow(e) {
  const tr = document.createElement("tr");
  tr.dataset.epoch = String(e.epoch_id);
  const badge = document.createElement("span");
  badge.className = `badge e-${e.status}`;
  badge.textContent = t(`settlement.status.${e.status}`);
  tr.append(
    cell("settlement.epochs.id", String(e.epoch_id)),
    cell("settlement.epochs.status", badge),
    cell("settlement.epochs.trips", number(e.trip_count), "num"),
    cell("settlement.epochs.total", eur(e.total_micro), "num"),
    cell("settlement.epochs.tx", txContent(e.tx_hash), "txcell"),
    cell("settlement.epochs.block", number(e.block_number), "num"),
    cell("settlement.epochs.gas", number(e.gas_used), "num"),
    cell("settlement.epochs.closed", timeContent(e.closed_ms)),
    cell("settlement.epochs.settled", timeContent(e.settled_ms)),
  );
  return tr;
}

/** Put a pushed epoch in the table: replace its row, or add it on top (the newest page only). */
function upsert(e) {
  const body = table.tBodies[0];
  const row = epochRow(e);
  const old = body.querySelector(`tr[data-epoch="${CSS.escape(String(e.epoch_id))}"]`);
  if (old) { old.replaceWith(row); return; }
  if (!config.live) return;
  body.querySelector("tr.empty")?.remove();
  const after = [...body.rows].find((r) => Number(r.dataset.epoch) < e.epoch_id);
  body.insertBefore(row, after || null);
  row.classList.add("fresh");
}

function listen() {
  if (!table || typeof EventSource === "undefined") return;
  const source = new EventSource("/api/v1/live");
  source.addEventListener("epoch", (message) => {
    try { upsert(JSON.parse(message.data)); } catch { /* a malformed event is left out */ }
  });
  source.addEventListener("open", () => { document.getElementById("epochs-live")?.removeAttribute("hidden"); });
  source.addEventListener("error", () => { document.getElementById("epochs-live")?.setAttribute("hidden", ""); });
}

listen();
