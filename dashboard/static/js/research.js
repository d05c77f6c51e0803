// The research page: start, watch and stop a replay; download windows; refresh the charts.
import { api, config, duration, number, t } from "/static/js/format.js";

const $ = (id) => document.getElementById(id);
const form = $("replay-form");
const stopButton = $("replay-stop");
const startButton = $("replay-start");
let timer = null;

function speedText(speed) {
  if (speed == null) return "—";
  return speed === 0 ? t("research.replay.max") : `${number(speed)}×`;
}

/** Show a replay status (the JSON of ReplayStatus). */
export function show(status) {
  if (!status) return;
  const badge = $("replay-badge");
  badge.className = `badge r-${status.state}`;
  badge.textContent = t(`research.replay.state.${status.state}`);
  $("replay-name").textContent = status.recording || "";
  $("replay-progress").value = Math.min(1, status.fraction ?? 0);
  $("replay-published").textContent = number(status.published);
  $("replay-position").textContent = duration(Math.round(status.recorded_s || 0));
  $("replay-speed").textContent = speedText(status.speed);
  const error = $("replay-error");
  error.textContent = status.error || "";
  error.hidden = !status.error;
  const running = status.state === "running";
  stopButton.disabled = !running;
  if (startButton) startButton.disabled = running || !$("replay-recording")?.value;
  if (running && !timer) timer = setInterval(poll, 1000);
  if (!running && timer) { clearInterval(timer); timer = null; }
}

function fail(error) {
  const box = $("replay-error");
  box.textContent = t("research.replay.failed", { detail: error.message });
  box.hidden = false;
}

async function poll() {
  try { show(await api("/api/v1/replays/current")); } catch (error) { fail(error); }
}

form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const body = JSON.stringify({ recording: data.get("recording"), speed: Number(data.get("speed")) });
  startButton.disabled = true;
  try {
    show(await api("/api/v1/replays", { method: "POST", body, headers: { "Content-Type": "application/json", Accept: "application/json" } }));
  } catch (error) {
    fail(error);
    startButton.disabled = false;
  }
});

stopButton?.addEventListener("click", async () => {
  stopButton.disabled = true;
  try { show(await api("/api/v1/replays/current", { method: "DELETE" })); } catch (error) { fail(error); }
});

/** The download links with the chosen window (the browser's local time) as from_ms / to_ms. */
function windowLinks() {
  const from = $("export-from")?.value, to = $("export-to")?.value;
  for (const link of document.querySelectorAll("a[data-export]")) {
    const url = new URL(link.getAttribute("href"), location.origin);
    url.searchParams.delete("from_ms");
    url.searchParams.delete("to_ms");
    if (from) url.searchParams.set("from_ms", String(new Date(from).getTime()));
    if (to) url.searchParams.set("to_ms", String(new Date(to).getTime()));
    link.setAttribute("href", url.pathname + url.search);
  }
}
$("export-from")?.addEventListener("change", windowLinks);
$("export-to")?.addEventListener("change", windowLinks);

$("charts-refresh")?.addEventListener("click", () => {
  for (const id of ["chart-trips", "chart-utilisation"]) {
    const img = $(id);
    const url = new URL(img.getAttribute("src"), location.origin);
    url.searchParams.set("at", String(Date.now()));
    img.src = url.pathname + url.search;
  }
});

show(config.replay);
