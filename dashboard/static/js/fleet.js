// The operator's fleet view: the map starts from one snapshot (GET /api/v1/fleet) and then only applies the
// `vehicles` events of /api/v1/live; KPIs and alerts follow their own events; the table pages through the API.
import { api, battery, clock, config, distance, duration, eur, number, t, when, ago as agoAt } from "/static/js/format.js";
import { baseMap, popupNode, STATUSES, VehicleLayer } from "/static/js/map.js";

const $ = (selector) => document.querySelector(selector);
const settings = config.map || {};
const thresholds = settings.thresholds || { low_battery_pct: 20, offline_after_s: 300 };
let offset = 0;                                   // server clock minus ours (from the snapshot and `clock` events)
const serverNow = () => Date.now() + offset;
const ago = (ms) => agoAt(ms, serverNow());
const kindLabel = (kind) => t(`fleet.kind.${kind}`);

// ---- map -------------------------------------------------------------------------------------------------------
const counter = $("#map-count");
let layer = null;
let early = [];                                   // `vehicles` events that arrive before the snapshot is drawn
const ALERTS_PAGE = 20;                         // alerts shown at first, and added by "More"

function showCounts({ drawn, total }) {
  counter.dataset.drawn = String(drawn);
  counter.dataset.total = String(total);
  counter.textContent = t("fleet.map.count", { drawn: number(drawn), total: number(total) });
  const counts = layer.counts();
  for (const status of STATUSES) {
    const cell = document.querySelector(`[data-count="${status}"]`);
    if (cell) cell.textContent = number(counts[status] || 0);
  }
}

async function snapshot() {
  const fleet = await api("/api/v1/fleet");
  offset = fleet.now_ms - Date.now();
  const at = Object.fromEntries(fleet.columns.map((name, i) => [name, i]));
  const order = ["vehicle_id", "kind", "status", "battery_pct", "lat", "lon", "received_ms", "owner"];
  const same = order.every((name, i) => at[name] === i);
  layer.replace(same ? fleet.rows : fleet.rows.map((row) => order.map((name) => row[at[name]])));
  for (const rows of early || []) layer.upsert(rows);
  early = null;
}

async function startMap() {
  const { map } = await baseMap($("#map"), { tiles: settings.tiles, geo: settings.geo || {} });
  layer = new VehicleLayer({
    onDraw: showCounts,
    onClick(vehicle, latlng) {
      window.L.popup().setLatLng(latlng).setContent(popupNode(vehicle, { t, ago, battery, kindLabel })).openOn(map);
    },
  }).addTo(map);
  window.szFleet = { map, layer };                // for the browser tests and the console
  await snapshot();
}

// ---- KPIs -------------------------------------------------------------------------------------------------------
const KPI_FORMATS = {
  trips_last_hour: number, trips_today: number, revenue_today_micro: eur,
  avg_duration_s: (s) => duration(s == null ? null : Math.round(s)),
  avg_distance_m: (m) => distance(m == null ? null : Math.round(m)),
  avg_fare_micro: (m) => eur(m == null ? null : Math.round(m)),
};

function showKpis(kpis) {
  for (const [key, format] of Object.entries(KPI_FORMATS)) {
    const cell = document.querySelector(`[data-kpi="${key}"]`);
    if (cell && key in kpis) cell.textContent = format(kpis[key]);
  }
}

// ---- alerts -----------------------------------------------------------------------------------------------------
const alerts = new Map();

function reason(alert) {
  const text = t(`fleet.alert.${alert.kind}`, { code: alert.code || "" }).trim();
  return alert.detail ? `${text} · ${alert.detail}` : text;
}

function cell(label, content) {
  const td = document.createElement("td");
  td.dataset.label = label;
  if (content instanceof Node) td.append(content); else td.textContent = content;
  return td;
}

function vehicleLink(id) {
  if (!id) return t("fleet.alerts.fleetwide");
  const a = document.createElement("a");
  a.href = `/vehicles/${encodeURIComponent(id)}`;
  a.className = "mono";
  a.textContent = id;
  return a;
}

function alertAction(alert) {
  if (alert.acked_ms != null) return t("fleet.alerts.acked", { who: alert.acked_by || "?" });
  if (!config.operator) return "";
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = t("fleet.alerts.ack");
  button.dataset.ack = String(alert.alert_id);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const acked = await api(`/api/v1/alerts/${alert.alert_id}/ack`, { method: "POST" });
      putAlert(acked || { ...alert, acked_ms: Date.now() + offset, acked_by: config.subject });  // 204: no body
    }
    catch (error) { button.disabled = false; button.title = error.message; }
  });
  return button;
}

function putAlert(alert, fresh = false) {
  if (alert.cleared_ms != null) alerts.delete(alert.alert_id); else alerts.set(alert.alert_id, { ...alert, fresh });
  renderAlerts();
}

function alertRow(a) {
  const tr = document.createElement("tr");
  tr.dataset.alert = String(a.alert_id);
  tr.dataset.kind = a.kind;
  if (a.acked_ms != null) tr.classList.add("acked");
  if (a.fresh) tr.classList.add("fresh");
  a.fresh = false;
  const time = document.createElement("time");
  time.dateTime = new Date(a.opened_ms).toISOString();
  time.textContent = clock(a.opened_ms);
  time.title = when(a.opened_ms);
  tr.append(cell(t("fleet.col.time"), time), cell(t("fleet.col.reason"), reason(a)),
    cell(t("fleet.col.vehicle"), vehicleLink(a.vehicle_id)), cell(t("fleet.col.action"), alertAction(a)));
  return tr;
}

const alertView = { kind: "", q: "", sort: "newest", unacked: false, shown: ALERTS_PAGE };

/** The open alerts the panel's filter lets through, in its order: kind, a part of the vehicle id, unacknowledged. */
function visibleAlerts() {
  const q = alertView.q.trim().toLowerCase();
  const rows = [...alerts.values()].filter((a) => (!alertView.kind || a.kind === alertView.kind)
    && (!q || (a.vehicle_id || "").toLowerCase().includes(q)) && (!alertView.unacked || a.acked_ms == null));
  const sign = alertView.sort === "oldest" ? 1 : -1;
  return rows.sort((a, b) => sign * (a.opened_ms - b.opened_ms) || sign * (a.alert_id - b.alert_id));
}

function renderAlerts() {
  const rows = visibleAlerts();
  $("#alerts tbody").replaceChildren(...rows.slice(0, alertView.shown).map(alertRow));
  $("#alerts").hidden = rows.length === 0;
  $("#alerts-empty").hidden = rows.length > 0;
  $("#alerts-more").hidden = rows.length <= alertView.shown;
  $("#alert-count").textContent = number(alerts.size);
}

function startAlertFilter() {
  const form = $("#alert-filter");
  const apply = () => {
    alertView.kind = $("#a-kind").value;
    alertView.q = $("#a-q").value;
    alertView.sort = $("#a-sort").value;
    alertView.unacked = $("#a-open").checked;
    alertView.shown = ALERTS_PAGE;
    renderAlerts();
  };
  form.addEventListener("input", apply);
  form.addEventListener("submit", (event) => { event.preventDefault(); apply(); });
  $("#alerts-more").addEventListener("click", () => { alertView.shown += ALERTS_PAGE; renderAlerts(); });
}

async function loadAlerts() {
  startAlertFilter();
  const answer = await api("/api/v1/alerts");
  const list = Array.isArray(answer) ? answer : answer.items || [];
  for (const alert of list) if (!alerts.has(alert.alert_id) && alert.cleared_ms == null) alerts.set(alert.alert_id, alert);
  renderAlerts();
}

// ---- vehicles table ---------------------------------------------------------------------------------------------
const query = { sort: "vehicle_id", cursor: null, shown: 0 };

/** The display status of a vehicle from the API's fields (the rules of dashboard.fleet.display_status). */
function displayStatus(v) {
  if (v.state === "non_operational") return "fault";
  const seen = v.received_ms ?? v.last_seen_ms;
  if (!v.online || seen == null || serverNow() - seen > thresholds.offline_after_s * 1000) return "offline";
  if (v.state === "on_trip") return "on_trip";
  if (v.battery_pct != null && v.battery_pct < thresholds.low_battery_pct) return "low_battery";
  return "available";
}

/** A "last seen" that keeps counting (refreshed by tick()). */
function since(ms) {
  const node = document.createElement("time");
  node.className = "ago";
  if (ms != null) { node.dataset.ms = String(ms); node.dateTime = new Date(ms).toISOString(); node.title = when(ms); }
  node.textContent = ago(ms);
  return node;
}

function tick() {
  for (const node of document.querySelectorAll("time.ago[data-ms]")) node.textContent = ago(Number(node.dataset.ms));
}

function vehicleRow(v) {
  const tr = document.createElement("tr");
  tr.dataset.vehicle = v.vehicle_id;
  const status = document.createElement("span");
  const shown = layer?.get(v.vehicle_id)?.status ?? displayStatus(v);   // the map's (the server's) status first
  status.className = `badge s-${shown}`;
  status.textContent = t(`fleet.status.${shown}`);
  tr.append(cell(t("fleet.col.vehicle"), vehicleLink(v.vehicle_id)), cell(t("fleet.col.kind"), kindLabel(v.kind)),
    cell(t("fleet.col.status"), status), cell(t("fleet.col.battery"), battery(v.battery_pct)),
    cell(t("fleet.col.seen"), since(v.received_ms ?? v.last_seen_ms)));
  tr.children[3].classList.add("num");
  return tr;
}

async function loadVehicles(more = false) {
  const form = new FormData($("#vehicle-filter"));
  const params = new URLSearchParams({ limit: "50", sort: query.sort });
  const q = String(form.get("q") || "").trim(), state = String(form.get("state") || ""), kind = String(form.get("kind") || "");
  if (q) params.set("q", q);
  if (state === "offline") params.set("online", "false"); else if (state) params.set("state", state);
  if (kind) params.set("kind", kind);
  if (more && query.cursor) params.set("cursor", query.cursor);
  const error = $("#vehicles-error");
  try {
    const page = await api(`/api/v1/vehicles?${params}`);
    const rows = page.items.map(vehicleRow);
    if (more) $("#vehicles tbody").append(...rows); else $("#vehicles tbody").replaceChildren(...rows);
    query.shown = (more ? query.shown : 0) + rows.length;
    query.cursor = page.next_cursor;
    error.hidden = true;
  } catch (e) {
    error.textContent = t("common.error", { detail: e.message });
    error.hidden = false;
  }
  $("#vehicles-more").hidden = !query.cursor;
  $("#vehicles-empty").hidden = query.shown > 0;
  $("#vehicles-shown").textContent = t("fleet.table.shown", { n: number(query.shown) });
  $("#vehicles").dataset.loaded = String(query.shown);
}

/** Sort by a header's column (battery toggles lowest/highest first) or by the sort menu's choice. */
function setSort(sort, toggle = true) {
  query.sort = toggle && sort === "battery_pct" && query.sort === "battery_pct" ? "-battery_pct" : sort;
  $("#f-sort").value = query.sort;
  for (const button of document.querySelectorAll("#vehicles button.sort")) {
    const key = button.dataset.sort, th = button.parentElement;
    const on = key === query.sort || (key === "battery_pct" && query.sort === "-battery_pct");
    th.setAttribute("aria-sort", !on ? "none" : query.sort.startsWith("-") ? "descending" : "ascending");
  }
  loadVehicles();
}

function startTable() {
  let typing = 0;
  const form = $("#vehicle-filter");
  form.addEventListener("submit", (e) => { e.preventDefault(); loadVehicles(); });
  form.addEventListener("change", (e) => (e.target.id === "f-sort" ? setSort(e.target.value, false) : loadVehicles()));
  $("#f-q").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => loadVehicles(), 250); });
  for (const button of document.querySelectorAll("#vehicles button.sort")) {
    button.addEventListener("click", () => setSort(button.dataset.sort));
  }
  $("#vehicles-more").addEventListener("click", () => loadVehicles(true));
  return loadVehicles();
}

function patchTable(rows) {                       // rows already on screen follow the live events
  for (const row of rows) {
    const tr = document.querySelector(`#vehicles tr[data-vehicle="${CSS.escape(row[0])}"]`);
    if (!tr) continue;
    const status = tr.children[2].querySelector(".badge");
    status.className = `badge s-${row[2]}`;
    status.textContent = t(`fleet.status.${row[2]}`);
    tr.children[3].textContent = battery(row[3]);
    tr.children[4].replaceChildren(since(row[6]));
  }
}

// ---- rejects ----------------------------------------------------------------------------------------------------
async function loadRejects() {
  const counts = await api("/api/v1/rejects");
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  $("#rejects tbody").replaceChildren(...entries.map(([code, n]) => {
    const tr = document.createElement("tr");
    const mono = document.createElement("span");
    mono.className = "mono";
    mono.textContent = code;
    tr.append(cell(t("fleet.rejects.reason"), mono), cell(t("fleet.rejects.count"), number(n)));
    tr.children[1].classList.add("num");
    return tr;
  }));
  $("#rejects").hidden = entries.length === 0;
  $("#rejects-empty").hidden = entries.length > 0;
}

// ---- live -------------------------------------------------------------------------------------------------------
function live() {
  const status = $("#live");
  const show = (state) => { status.dataset.state = state; status.textContent = t(`fleet.live.${state}`); };
  const source = new EventSource("/api/v1/live");
  let lost = false;
  source.addEventListener("open", () => {
    show("on");
    if (lost) { lost = false; snapshot().catch(() => {}); }   // once per reconnect: catch up on what we missed
  });
  source.addEventListener("error", () => { lost = true; show("lost"); });
  const on = (name, handle) => source.addEventListener(name, (event) => {
    try { handle(JSON.parse(event.data)); } catch (error) { console.warn(name, error); }
  });
  on("vehicles", (data) => {
    if (early) early.push(data.rows); else layer.upsert(data.rows);
    patchTable(data.rows);
  });
  on("kpis", showKpis);
  on("alert", (alert) => putAlert(alert, true));
  on("clock", (data) => { offset = data.now_ms - Date.now(); });
  return source;
}

async function main() {
  live();
  await startMap();
  await Promise.allSettled([
    api("/api/v1/kpis").then(showKpis), loadAlerts(), startTable(), loadRejects(),
  ]);
  setInterval(tick, 5000);
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  const note = $("#vehicles-error");
  note.textContent = t("common.error", { detail: error.message });
  note.hidden = false;
  document.body.dataset.ready = "error";
});
