// The rider's pages: more trips by cursor, the running cost pushed live, a trip's route, and the in-browser verify.
import { api, config, eur, t } from "/static/js/format.js";

const SVG = "http://www.w3.org/2000/svg";
const me = (config.subject || "").toLowerCase();

/** Words for a trip status as the server writes them (format.js's catalogue holds every area's words). */
function statusWords(status) {
  return t(`rider.status.${status}`);
}

// ---- the list: "more" appends the next page, read as the server renders it -----------------------------------

async function more(link) {
  link.setAttribute("aria-busy", "true");
  try {
    const response = await fetch(link.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!response.ok) throw new Error(String(response.status));
    const next = new DOMParser().parseFromString(await response.text(), "text/html");
    const body = document.querySelector("#trips tbody");
    for (const row of next.querySelectorAll("#trips tbody tr")) body.append(document.importNode(row, true));
    const further = next.querySelector("#more");
    if (further) link.href = further.getAttribute("href");
    else link.remove();
  } catch {
    window.location.assign(link.href); // the plain link still works
  } finally {
    link.removeAttribute("aria-busy");
  }
}

function wireMore() {
  const link = document.getElementById("more");
  if (!link) return;
  link.addEventListener("click", (event) => {
    event.preventDefault();
    more(link);
  });
}

// ---- live: the running cost from EventSource('/api/v1/live') `trip` events ------------------------------------

function runningCard(trip) {
  let section = document.getElementById("running");
  if (!section) {
    section = document.createElement("section");
    section.id = "running";
    section.className = "running";
    const heading = document.createElement("h2");
    heading.textContent = t("rider.running.heading");
    const list = document.createElement("ul");
    list.className = "trip-cards";
    section.append(heading, list);
    document.querySelector("main").prepend(section);
  }
  const item = document.createElement("li");
  item.className = "trip-card live";
  item.dataset.trip = trip.trip_id;
  const link = document.createElement("a");
  link.href = `/rider/trips/${encodeURIComponent(trip.trip_id)}`;
  const what = document.createElement("span");
  what.className = "what";
  what.textContent = trip.vehicle_id;
  const cost = document.createElement("span");
  cost.className = "cost";
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = t("rider.running.cost");
  const amount = document.createElement("strong");
  amount.dataset.cost = "";
  cost.append(label, " ", amount);
  const state = document.createElement("span");
  state.className = "state";
  state.dataset.state = "";
  link.append(what, cost, state);
  item.append(link);
  section.querySelector("ul").prepend(item);
  return item;
}

/** Apply one `trip` event to whatever of the page shows that trip. */
export function applyTrip(trip) {
  if (!trip || typeof trip.trip_id !== "string" || (trip.rider || "").toLowerCase() !== me) return;
  const running = trip.status === "open";
  let card = document.querySelector(`.trip-card[data-trip="${CSS.escape(trip.trip_id)}"]`);
  if (!card && running && document.getElementById("trips-panel")) card = runningCard(trip);
  if (card) {
    const amount = running ? trip.signed_micro : (trip.charged_micro ?? trip.signed_micro);
    card.querySelector("[data-cost]").textContent = eur(amount ?? 0);
    card.querySelector("[data-state]").textContent = statusWords(trip.status);
    card.classList.toggle("ended", !running);
  }
  const row = document.querySelector(`#trips tr[data-trip="${CSS.escape(trip.trip_id)}"]`);
  if (row) {
    row.querySelector(".badge").textContent = statusWords(trip.status);
    if (trip.charged_micro != null) row.querySelector("[data-charged]").textContent = eur(trip.charged_micro);
  }
  if (config.trip_id === trip.trip_id) applyToTripPage(trip, running);
}

function applyToTripPage(trip, running) {
  const charged = document.getElementById("charged");
  if (charged) charged.textContent = eur(running ? trip.signed_micro : (trip.charged_micro ?? trip.signed_micro));
  const signed = document.querySelector('[data-fare="signed"]');
  if (signed && trip.signed_micro != null) signed.textContent = eur(trip.signed_micro);
  const status = document.getElementById("status");
  if (status) status.textContent = statusWords(trip.status);
}

function listen() {
  if (!("EventSource" in window)) return;
  const note = document.getElementById("live");
  const source = new EventSource("/api/v1/live");
  source.addEventListener("open", () => { if (note) note.textContent = t("rider.live.on"); });
  source.addEventListener("error", () => {
    if (note) note.textContent = source.readyState === EventSource.CLOSED ? t("rider.live.off") : "";
  });
  source.addEventListener("trip", (event) => {
    try { applyTrip(JSON.parse(event.data)); } catch { /* a malformed event changes nothing */ }
  });
}

// ---- the trip's route: OPS's Leaflet map (map.js) when served, else a minimal SVG map of the zone's GeoJSON -------

function bounds(rings) {
  const box = [Infinity, Infinity, -Infinity, -Infinity];
  for (const ring of rings) for (const [lon, lat] of ring) {
    box[0] = Math.min(box[0], lon); box[1] = Math.min(box[1], lat);
    box[2] = Math.max(box[2], lon); box[3] = Math.max(box[3], lat);
  }
  return box;
}

function projector(box, width) {
  const kx = Math.cos(((box[1] + box[3]) / 2) * Math.PI / 180); // metres per degree of longitude shrink with latitude
  const spanX = Math.max((box[2] - box[0]) * kx, 1e-6), spanY = Math.max(box[3] - box[1], 1e-6);
  const height = Math.round(width * Math.min(Math.max(spanY / spanX, 0.5), 1.2));
  const scale = Math.min(width / spanX, height / spanY);
  const offX = (width - spanX * scale) / 2, offY = (height - spanY * scale) / 2;
  return { height, at: ([lon, lat]) => [offX + (lon - box[0]) * kx * scale, offY + (box[3] - lat) * scale] };
}

function path(points, project) {
  return points.map((p, i) => `${i ? "L" : "M"}${project.at(p).map((v) => v.toFixed(1)).join(" ")}`).join("");
}

function shape(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

async function zoneLayers() {
  try {
    const [zone, streets] = await Promise.all([api("/static/geo/zone.geojson"), api("/static/geo/streets.geojson")]);
    const outline = zone.features.flatMap((f) => (f.geometry.type === "Polygon" ? [f.geometry.coordinates[0]] : []));
    const lines = streets.features.flatMap((f) => (f.geometry.type === "LineString" ? [f.geometry.coordinates] : []));
    return { outline, lines };
  } catch {
    return { outline: [], lines: [] };
  }
}

export async function drawRoute(element, route) {
  const points = route.points.map(([, lat, lon]) => [lon, lat]);
  const { outline, lines } = await zoneLayers();
  const box = bounds(points.length ? [points] : outline);
  const pad = 0.0015;
  const project = projector([box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad], 600);
  const svg = shape("svg", { viewBox: `0 0 600 ${project.height}`, class: "route-svg" });
  for (const ring of outline) svg.append(shape("path", { d: `${path(ring, project)}Z`, class: "zone" }));
  for (const line of lines) svg.append(shape("path", { d: path(line, project), class: "street" }));
  if (points.length) {
    svg.append(shape("path", { d: path(points, project), class: "track" }));
    const [sx, sy] = project.at(points[0]), [ex, ey] = project.at(points[points.length - 1]);
    svg.append(shape("circle", { cx: sx, cy: sy, r: 7, class: "start" }));
    svg.append(shape("circle", { cx: ex, cy: ey, r: 7, class: "end" }));
  }
  element.replaceChildren(svg);
  element.dataset.points = String(points.length);
  element.dataset.map = "svg";
}

/** The route on helper OPS's Leaflet base map (map.js) when Leaflet is loaded; false when it is not there. */
async function leafletRoute(element, route) {
  if (!window.L) return false;
  try {
    const { baseMap, trackLine } = await import("/static/js/map.js");
    const { map } = await baseMap(element, { tiles: config.map?.tiles ?? null, geo: config.map?.geo ?? {} });
    const line = route.points.map(([, lat, lon]) => [lat, lon]);
    if (line.length) {
      trackLine(map, line, { fit: true });
      const css = getComputedStyle(document.documentElement);
      for (const [at, colour] of [[line[0], "--ok"], [line[line.length - 1], "--bad"]]) {
        const fillColor = css.getPropertyValue(colour).trim() || "#888";
        window.L.circleMarker(at, { radius: 7, weight: 2, color: "#fff", fillColor, fillOpacity: 1 }).addTo(map);
      }
    }
    element.dataset.points = String(route.points.length);
    element.dataset.map = "leaflet";
    return true;
  } catch {
    return false;
  }
}

async function showRoute() {
  const element = document.getElementById("route-map");
  const note = document.getElementById("route-note");
  try {
    const route = await api(`/api/v1/trips/${encodeURIComponent(config.trip_id)}/route`);
    if (!(await leafletRoute(element, route))) await drawRoute(element, route);
    note.textContent = route.points.length
      ? `${t("rider.route.points", { n: route.points.length })}${route.truncated ? ` · ${t("rider.route.truncated")}` : ""}`
      : t("rider.route.none");
    if (element.dataset.map === "svg") note.append(document.createElement("br"), t("rider.route.source"));
  } catch (error) {
    note.textContent = t("common.error", { detail: error.message });
  }
}

// ---- verify ------------------------------------------------------------------------------------------------

/** The verdict's headline and its detail: the blocks read when verified, the technical reason when not. */
function verdictText(verdict) {
  if (verdict.ok) {
    const head = t("rider.verify.ok", { block: String(verdict.block), epoch: verdict.epochId, chain: String(verdict.chainId) });
    const detail = verdict.commitBlock > 0n ? t("rider.verify.committed_in", { block: String(verdict.commitBlock) }) : "";
    return [head, detail];
  }
  return [t("rider.verify.failed", { check: t(`rider.check.${verdict.check}`) }), verdict.detail];
}

async function runVerify(button) {
  const out = document.getElementById("verdict");
  button.disabled = true;
  out.hidden = false;
  out.className = "verdict";
  out.textContent = t("rider.verify.running");
  let verdict;
  try {
    const { verifyReceipt, httpRpc } = await import("/static/js/verify.js");
    const receipt = await api(`/api/v1/trips/${encodeURIComponent(config.trip_id)}/receipt`);
    verdict = await verifyReceipt(receipt, {
      rpc: httpRpc(config.rpc_url), contract: config.contract, chainId: config.chain_id, rider: config.subject,
    });
  } catch (error) {
    verdict = { ok: false, check: "receipt", detail: error.message };
  }
  out.className = `verdict ${verdict.ok ? "ok" : "bad"}`;
  out.dataset.check = verdict.ok ? "" : verdict.check;
  const [head, detail] = verdictText(verdict);
  const strong = document.createElement("strong");
  strong.textContent = head;
  const small = document.createElement("span");
  small.className = "detail";
  small.textContent = detail;
  out.replaceChildren(strong, small);
  button.disabled = false;
}

function wireTripPage() {
  showRoute();
  const button = document.getElementById("verify");
  if (button && config.rpc_url) button.addEventListener("click", () => runVerify(button));
}

if (document.getElementById("trips-panel")) wireMore();
if (config.trip_id) wireTripPage();
if (document.getElementById("trips-panel") || config.running) listen();
