// A vehicle's page: its recent track on the map and its battery over that track (one read of
// /api/v1/vehicles/{id}/track), its trips a page at a time, its alerts.
import { api, clock, config, distance, duration, eur, locale, t, when, ZONE } from "/static/js/format.js";
import { baseMap, trackLine } from "/static/js/map.js";

const $ = (selector) => document.querySelector(selector);
const vehicle = config.vehicle || {};
const id = encodeURIComponent(vehicle.vehicle_id || "");
const hourMinute = new Intl.DateTimeFormat(locale, { timeZone: ZONE, hour: "2-digit", minute: "2-digit", hour12: false });

function cell(label, content, numeric = false) {
  const td = document.createElement("td");
  td.dataset.label = label;
  if (numeric) td.className = "num";
  if (content instanceof Node) td.append(content); else td.textContent = content;
  return td;
}

async function showTrack() {
  const settings = config.map || {};
  const [{ map }, track] = await Promise.all([
    baseMap($("#map"), { tiles: settings.tiles, geo: settings.geo || {}, stations: false }),
    api(`/api/v1/vehicles/${id}/track?limit=500`),
  ]);
  const points = track.points;
  $("#map").dataset.points = String(points.length);
  $("#track-none").hidden = points.length > 0;
  if (points.length) {
    trackLine(map, points.map((p) => [p.lat, p.lon]));
    const last = points[points.length - 1];              // where the vehicle is now
    window.L.circleMarker([last.lat, last.lon], { radius: 7, weight: 2, color: "#fff", fillOpacity: 1 })
      .bindTooltip(when(last.timestamp_ms)).addTo(map);
  }
  window.szVehicle = { map, track };
  showBattery(points.filter((p) => p.battery_pct != null));
}

function showBattery(points) {
  const box = $("#battery-chart");
  box.dataset.points = String(points.length);
  $("#battery-none").hidden = points.length > 0;
  if (!points.length || !window.uPlot) return;
  const uPlot = window.uPlot;
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#0b5cad";
  const ink = getComputedStyle(document.documentElement).getPropertyValue("--muted").trim() || "#5b6470";
  const axis = { stroke: ink, grid: { stroke: "rgba(127,127,127,.2)" }, ticks: { stroke: "rgba(127,127,127,.3)" } };
  const options = {
    width: Math.max(240, box.clientWidth), height: 220,
    tzDate: (s) => uPlot.tzDate(new Date(s * 1000), ZONE),
    scales: { y: { range: [0, 100] } },
    legend: { show: false },
    series: [
      { value: (u, s) => (s == null ? "—" : clock(s * 1000)) },
      { label: t("fleet.vehicle.battery.axis"), stroke: accent, width: 2, fill: "rgba(90,162,240,.12)" },
    ],
    axes: [{ ...axis, values: (u, ticks) => ticks.map((s) => hourMinute.format(new Date(s * 1000))) }, { ...axis, values: (u, ticks) => ticks.map((v) => `${v} %`) }],
  };
  const data = [points.map((p) => p.timestamp_ms / 1000), points.map((p) => p.battery_pct)];
  const chart = new uPlot(options, data, box);
  new ResizeObserver(() => chart.setSize({ width: Math.max(240, box.clientWidth), height: 220 })).observe(box);
}

let tripsCursor = null;

async function loadTrips(more = false) {
  const params = new URLSearchParams({ vehicle_id: vehicle.vehicle_id, limit: "20" });
  if (more && tripsCursor) params.set("cursor", tripsCursor);
  try {
    const page = await api(`/api/v1/trips?${params}`);
    const rows = page.items.map((trip) => {
      const tr = document.createElement("tr");
      const code = document.createElement("span");
      code.className = "mono";
      code.textContent = trip.trip_id;
      tr.append(cell(t("fleet.vehicle.trip.id"), code), cell(t("fleet.vehicle.trip.end"), when(trip.end_ms)),
        cell(t("fleet.vehicle.trip.duration"), duration(trip.duration_s), true),
        cell(t("fleet.vehicle.trip.distance"), distance(trip.distance_m), true),
        cell(t("fleet.vehicle.trip.fare"), eur(trip.charged_micro ?? trip.fare_micro), true),
        cell(t("fleet.vehicle.trip.status"), trip.status));
      return tr;
    });
    if (more) $("#trips tbody").append(...rows); else $("#trips tbody").replaceChildren(...rows);
    tripsCursor = page.next_cursor;
  } catch (error) {
    $("#trips-error").textContent = t("common.error", { detail: error.message });
    $("#trips-error").hidden = false;
  }
  const shown = $("#trips tbody").children.length;
  $("#trips").hidden = shown === 0;
  $("#trips-none").hidden = shown > 0;
  $("#trips-more").hidden = !tripsCursor;
}

async function loadAlerts() {
  const answer = await api(`/api/v1/alerts?vehicle_id=${id}`);
  const list = (Array.isArray(answer) ? answer : answer.items || [])
    .filter((a) => a.vehicle_id === vehicle.vehicle_id)
    .sort((a, b) => b.opened_ms - a.opened_ms);
  $("#vehicle-alerts tbody").replaceChildren(...list.map((a) => {
    const tr = document.createElement("tr");
    const state = a.cleared_ms != null ? t("fleet.alerts.cleared")
      : a.acked_ms != null ? t("fleet.alerts.acked", { who: a.acked_by || "?" }) : "";
    const reason = t(`fleet.alert.${a.kind}`, { code: a.code || "" }).trim();
    tr.append(cell(t("fleet.col.time"), when(a.opened_ms)),
      cell(t("fleet.col.reason"), a.detail ? `${reason} · ${a.detail}` : reason), cell(t("fleet.col.status"), state));
    return tr;
  }));
  $("#vehicle-alerts").hidden = list.length === 0;
  $("#vehicle-alerts-none").hidden = list.length > 0;
}

$("#trips-more").addEventListener("click", () => loadTrips(true));
Promise.allSettled([showTrack(), loadTrips(), loadAlerts()]).then((results) => {
  for (const r of results) if (r.status === "rejected") console.warn(r.reason);
  document.body.dataset.ready = "true";
});
