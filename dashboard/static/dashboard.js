/* Smart Zone dashboard: refreshes the server-rendered tables from the JSON API every few seconds.
   The page is complete without this script; rows are rebuilt with textContent only (no HTML from data). */
"use strict";

(() => {
  const DASH = "—";

  // The formats of dashboard/display.py, with the same integer rules.
  const group = (digits) => digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");

  function eur(micro) {
    const m = BigInt(micro);
    const cents = ((m < 0n ? -m : m) + 5000n) / 10000n;
    const sign = m < 0n && cents > 0n ? "-" : "";
    return `${sign}€ ${group((cents / 100n).toString())}.${(cents % 100n).toString().padStart(2, "0")}`;
  }

  function short(text, head = 6, tail = 4) {
    if (text === null || text === undefined) return DASH;
    return text.length <= head + tail + 1 ? text : `${text.slice(0, head)}…${text.slice(-tail)}`;
  }

  function isoTime(ms) {
    return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
  }

  function duration(s) {
    if (s < 60) return `${s} s`;
    const min = Math.floor(s / 60);
    if (min < 60) return `${min} min ${String(s % 60).padStart(2, "0")} s`;
    return `${Math.floor(min / 60)} h ${String(min % 60).padStart(2, "0")} min`;
  }

  function distance(m) {
    if (m < 1000) return `${m} m`;
    return `${Math.floor(m / 1000)}.${String(Math.floor((m % 1000) / 10)).padStart(2, "0")} km`;
  }

  const battery = (pct) => (pct === null ? DASH : `${Math.floor(pct + 0.5)} %`);
  const position = (lat, lon) => (lat === null || lon === null ? DASH : `${lat.toFixed(5)}, ${lon.toFixed(5)}`);
  const orDash = (value) => (value === null ? DASH : String(value));

  function ago(ms, now) {
    const s = Math.max(0, Math.round((now - ms) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return isoTime(ms);
  }

  // Cells.
  function cell(text, cls, title) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    if (title) td.title = title;
    return td;
  }

  function badge(text, kind) {
    const td = document.createElement("td");
    const span = document.createElement("span");
    span.className = `${kind} ${kind}-${text}`;
    span.textContent = text;
    td.append(span);
    return td;
  }

  function online(isOnline) {
    const td = document.createElement("td");
    const span = document.createElement("span");
    span.className = isOnline ? "on" : "off";
    span.textContent = isOnline ? "● online" : "○ offline";
    td.append(span);
    return td;
  }

  function timeCell(ms) {
    if (ms === null) return cell(DASH);
    const td = document.createElement("td");
    const time = document.createElement("time");
    time.dateTime = time.title = time.textContent = isoTime(ms);
    td.append(time);
    return td;
  }

  const ROWS = {
    vehicles: (v) => [
      cell(v.vehicle_id, "mono"), cell(v.kind), badge(v.state, "state"), online(v.online),
      cell(battery(v.battery_pct), "num"), timeCell(v.last_seen_ms), cell(position(v.lat, v.lon), "mono"),
    ],
    payouts: (p) => [
      cell(short(p.owner), "mono", p.owner), cell(String(p.trip_count), "num"),
      cell(eur(p.settled_micro), "num money"), cell(eur(p.pending_micro), "num money"),
    ],
    epochs: (e) => [
      cell(String(e.epoch_id), "num"), cell(String(e.trip_count), "num"), cell(eur(e.total_micro), "num money"),
      badge(e.status, "status"), cell(short(e.tx_hash), "mono", e.tx_hash),
      cell(orDash(e.block_number), "num"), cell(orDash(e.gas_used), "num"),
    ],
    trips: (t) => [
      cell(t.trip_id, "mono"), cell(t.vehicle_id, "mono"), cell(short(t.rider), "mono", t.rider),
      cell(duration(t.duration_s), "num"), cell(distance(t.distance_m), "num"),
      cell(eur(t.charged_micro ?? t.fare_micro), "num money"), badge(t.status, "status"), cell(orDash(t.epoch_id), "num"),
    ],
  };
  const EMPTY = {
    vehicles: "No vehicles yet.", payouts: "No payouts yet.", epochs: "No epochs yet.", trips: "No trips yet.",
  };

  async function getJson(url) {
    const options = { headers: { Accept: "application/json" } };
    if (AbortSignal.timeout) options.signal = AbortSignal.timeout(10000);
    const response = await fetch(url, options);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  }

  // The page holds each list's first page; "More" appends the next one through the API's keyset cursor.
  async function showMore(link) {
    const table = document.getElementById(link.dataset.more);
    const { items, next_cursor: next } = await getJson(`${table.dataset.src}&cursor=${encodeURIComponent(link.dataset.cursor)}`);
    for (const item of items) table.tBodies[0].insertRow().append(...ROWS[table.id](item));
    table.dataset.expanded = "1"; // the refresh keeps the first page only: leave the rows the user asked for
    if (next) {
      link.dataset.cursor = next;
    } else {
      link.parentElement.remove();
    }
    relativeTimes();
  }

  function pageOnClick() {
    for (const link of document.querySelectorAll("a[data-more]")) {
      link.textContent = `Show more ${link.dataset.more}`;
      link.addEventListener("click", (event) => {
        event.preventDefault();
        showMore(link).catch((err) => {
          link.textContent = `Cannot load more (${err.message}); try again`;
        });
      });
    }
  }

  async function refreshTable(table) {
    if (table.dataset.expanded) return;
    const { items } = await getJson(table.dataset.src);
    const tbody = document.createElement("tbody");
    if (items.length === 0) {
      const tr = tbody.insertRow();
      tr.className = "empty";
      const td = cell(EMPTY[table.id]);
      td.colSpan = table.tHead.rows[0].cells.length;
      tr.append(td);
    }
    for (const item of items) tbody.insertRow().append(...ROWS[table.id](item));
    table.tBodies[0].replaceWith(tbody);
  }

  async function refreshStats() {
    const stats = await getJson("api/v1/stats");
    for (const dd of document.querySelectorAll("[data-stat]")) {
      const value = stats[dd.dataset.stat];
      dd.textContent = dd.dataset.format === "eur" ? eur(value) : String(value);
    }
  }

  function relativeTimes() {
    const now = Date.now();
    for (const time of document.querySelectorAll("td time[datetime]")) {
      time.textContent = ago(Date.parse(time.dateTime), now);
    }
  }

  async function tick(live) {
    if (!document.hidden) {
      const tables = Object.keys(ROWS).map((id) => document.getElementById(id)).filter(Boolean);
      try {
        await Promise.all([refreshStats(), ...tables.map(refreshTable)]);
        live.textContent = `Live · updated ${new Date().toLocaleTimeString()}`;
        live.classList.remove("stale");
      } catch (err) {
        live.textContent = `Cannot refresh (${err.message}); showing the last data`;
        live.classList.add("stale");
      }
    }
    relativeTimes();
  }

  function start() {
    const live = document.getElementById("live");
    const period = 1000 * Number(document.body.dataset.refreshS || 5);
    const loop = async () => {
      await tick(live);
      setTimeout(loop, period);
    };
    relativeTimes();
    pageOnClick();
    live.textContent = "Live";
    setTimeout(loop, period);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) tick(live);
    });
  }

  start();
})();
