// Map pieces every page shares: a base map of the zone, a canvas layer of vehicles, a track polyline.
//
// Needs Leaflet loaded first as a classic script (it sets window.L), with its stylesheet:
//   <link rel="stylesheet" href="/static/vendor/leaflet/dist/leaflet.css">
//   <script src="/static/vendor/leaflet/dist/leaflet.js"></script>
//   <script type="module" src="/static/js/your-page.js"></script>
//
// API (all coordinates WGS84):
//   const { map } = await baseMap(element, { tiles, geo, stations = true, streets = true });
//       A Leaflet map fitted to the zone. `tiles` is an XYZ URL (OpenStreetMap) or null for none; `geo` maps
//       zone/streets/stations to GeoJSON URLs (config.map.geo). The zone, streets and stations are drawn from
//       the project's own files, so the map is useful offline (a tile that fails to load leaves a blank square).
//   const layer = new VehicleLayer({ onClick(vehicle, latlng) {}, onDraw({ drawn, total, ms }) {} }).addTo(map);
//       One <canvas> with every vehicle as a dot coloured by its display status; redrawn at most once per
//       animation frame, only when something changed. Vehicles are arrays in COLUMNS order (the shape of
//       GET /api/v1/fleet rows and of `vehicles` events): layer.replace(rows), layer.upsert(rows),
//       layer.remove(id), layer.get(id) -> vehicle object, layer.counts() -> {status: n}, layer.vehicles (a Map by id).
//       The canvas carries data-drawn (vehicles drawn in view), data-total and data-frame-ms (last redraw).
//   const line = trackLine(map, [[lat, lon], ...], { fit = true });   // an L.Polyline of a route or track
//   STATUSES, statusColour(status), popupNode(vehicle, { t, ago, battery }) help with legends and popups.

const L = window.L;

export const COLUMNS = ["vehicle_id", "kind", "status", "battery_pct", "lat", "lon", "received_ms", "owner"];
export const STATUSES = ["available", "on_trip", "low_battery", "offline", "fault"];
const CSS_VAR = { available: "--ok", on_trip: "--trip", low_battery: "--low", offline: "--off", fault: "--bad" };
const FALLBACK = { available: "#1a7f37", on_trip: "#0b5cad", low_battery: "#b35900", offline: "#6e7781", fault: "#c0262d" };
export const ATTRIBUTION_OSM = '© <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors';
export const ATTRIBUTION_ZONE = "Zone, streets: Stad Antwerpen (open geodata) · Stations: Velo Antwerpen (GBFS)";

/** The colour of a display status, from the page's CSS variables (so dark mode and the legend agree). */
export function statusColour(status) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(CSS_VAR[status] || "--off").trim();
  return value || FALLBACK[status] || FALLBACK.offline;
}

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

async function geojson(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

/** A Leaflet map of the zone in `element`: tiles when online, the zone, streets and stations from our GeoJSON. */
export async function baseMap(element, { tiles = null, geo = {}, stations = true, streets = true } = {}) {
  const map = L.map(element, { preferCanvas: true, zoomSnap: 0.5, worldCopyJump: false });
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution(ATTRIBUTION_ZONE);
  if (tiles) {
    L.tileLayer(tiles, {
      maxZoom: 19, attribution: ATTRIBUTION_OSM, crossOrigin: false,
      referrerPolicy: "strict-origin-when-cross-origin",  // the OSM tile policy asks for a Referer
    }).addTo(map);
  }
  map.setView([51.2153, 4.3962], 16);
  const [zone, lines, points] = await Promise.all([
    geo.zone ? geojson(geo.zone) : null,
    streets && geo.streets ? geojson(geo.streets) : null,
    stations && geo.stations ? geojson(geo.stations) : null,
  ]);
  const layers = {};
  const ink = cssVar("--ink", "#1b1f24"), accent = cssVar("--accent", "#0b5cad"), muted = cssVar("--muted", "#5b6470");
  if (lines) {
    layers.streets = L.geoJSON(lines, { style: { color: muted, weight: 3, opacity: 0.55 }, interactive: false }).addTo(map);
  }
  if (zone) {
    layers.zone = L.geoJSON(zone, {
      style: { color: accent, weight: 2, fillColor: accent, fillOpacity: 0.06, dashArray: "6 4" }, interactive: false,
    }).addTo(map);
    let touched = false, fitting = false;             // until someone else pans or zooms, a resize refits the zone
    const fit = () => {
      fitting = true;
      map.fitBounds(layers.zone.getBounds(), { padding: [8, 8], animate: false });
      fitting = false;
    };
    fit();
    map.on("dragstart zoomstart", () => { touched = touched || !fitting; });
    map.on("resize", () => { if (!touched) fit(); });
  }
  if (points) {
    layers.stations = L.geoJSON(points, {
      pointToLayer: (feature, latlng) => L.circleMarker(latlng, {
        radius: 5, color: ink, weight: 1.5, fillColor: "#fff", fillOpacity: 0.9,
      }).bindTooltip(String(feature.properties?.name ?? "")),
    }).addTo(map);
  }
  element.dataset.layers = Object.keys(layers).sort().join(" ");
  return { map, layers };
}

const CROWD = 3000;   // above this many dots in view, stamp pixels instead of filling paths (no antialiasing)

/** Circles of radius r at the points [x0, y0, x1, y1, ...] added to the current path. */
function circles(ctx, xy, r) {
  for (let i = 0; i < xy.length; i += 2) {
    ctx.moveTo(xy[i] + r, xy[i + 1]);
    ctx.arc(xy[i], xy[i + 1], r, 0, 2 * Math.PI);
  }
}

/** Antialiased dots with a white rim: one path and one fill per status, faults last (on top). */
function paint(ctx, buckets, colours, r) {
  ctx.beginPath();
  for (const status of STATUSES) circles(ctx, buckets[status], r + 1.5);
  ctx.fillStyle = "rgba(255,255,255,0.9)";
  ctx.fill();
  for (const status of STATUSES) {
    if (!buckets[status].length) continue;
    ctx.beginPath();
    circles(ctx, buckets[status], r);
    ctx.fillStyle = colours[status];
    ctx.fill();
  }
}

/** The pixel offsets of a disc of radius r, as [dx0, dy0, dx1, dy1, ...]. */
function disc(r) {
  const out = [], reach = Math.ceil(r);
  for (let dy = -reach; dy <= reach; dy++) {
    for (let dx = -reach; dx <= reach; dx++) if (dx * dx + dy * dy <= r * r) out.push(dx, dy);
  }
  return out;
}

/** A CSS colour as the 32-bit RGBA word of an ImageData pixel (read back from a 1×1 canvas). */
function pixelWord(colour) {
  const probe = document.createElement("canvas");
  probe.width = probe.height = 1;
  const ctx = probe.getContext("2d", { willReadFrequently: true });
  ctx.fillStyle = colour;
  ctx.fillRect(0, 0, 1, 1);
  return new Uint32Array(ctx.getImageData(0, 0, 1, 1).data.buffer)[0];
}

/** A vehicle record from a row in COLUMNS order. */
function record(row) {
  return {
    vehicle_id: row[0], kind: row[1], status: row[2], battery_pct: row[3], lat: row[4], lon: row[5],
    received_ms: row[6], owner: row[7], px: 0, py: 0, zoom: NaN,
  };
}

/** Every vehicle on one canvas: no DOM element per vehicle, redrawn once per animation frame when dirty. */
export const VehicleLayer = L.Layer.extend({
  initialize(options = {}) {
    this.vehicles = new Map();
    this.onClickVehicle = options.onClick || null;
    this.onDraw = options.onDraw || null;
    this.radius = options.radius || 5;
    this.dirty = false;
    this.frame = 0;
    this.colours = {};
  },

  onAdd(map) {
    this.map = map;
    this.canvas = L.DomUtil.create("canvas", "sz-vehicles leaflet-zoom-hide");
    this.canvas.setAttribute("aria-hidden", "true");
    map.getPanes().overlayPane.appendChild(this.canvas);
    this.colours = Object.fromEntries(STATUSES.map((s) => [s, statusColour(s)]));
    this.discRatio = 0;
    map.on("move moveend zoomend resize viewreset", this.schedule, this);
    map.on("click", this.hit, this);
    this.schedule();
  },

  onRemove(map) {
    map.off("move moveend zoomend resize viewreset", this.schedule, this);
    map.off("click", this.hit, this);
    if (this.frame) cancelAnimationFrame(this.frame);
    this.canvas.remove();
  },

  /** Start over from a snapshot (rows in COLUMNS order). */
  replace(rows) {
    this.vehicles.clear();
    return this.upsert(rows);
  },

  /** Add or change vehicles (rows in COLUMNS order); a row older than the one held (received_ms) is ignored. */
  upsert(rows) {
    for (const row of rows) {
      const held = this.vehicles.get(row[0]);
      if (held && held.received_ms != null && row[6] != null && row[6] < held.received_ms) continue;
      this.vehicles.set(row[0], record(row));
    }
    this.schedule();
    return this;
  },

  remove(id) {
    this.vehicles.delete(id);
    this.schedule();
  },

  get(id) { return this.vehicles.get(id); },

  /** How many vehicles there are per display status. */
  counts() {
    const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    for (const v of this.vehicles.values()) counts[v.status] = (counts[v.status] || 0) + 1;
    return counts;
  },

  /** Crowds: write each dot's pixels straight into one ImageData (no path rasterising), then put it once. */
  stamp(ctx, buckets, ratio) {
    const w = this.canvas.width, h = this.canvas.height;
    if (!this.image || this.image.width !== w || this.image.height !== h) {
      this.image = ctx.createImageData(w, h);
      this.words = new Uint32Array(this.image.data.buffer);
    }
    if (this.discRatio !== ratio) {
      this.discRatio = ratio;
      this.disc = disc(this.radius * ratio);
      this.wordOf = Object.fromEntries(STATUSES.map((s) => [s, pixelWord(this.colours[s])]));
    }
    const words = this.words, offsets = this.disc;
    words.fill(0);
    for (const status of STATUSES) {
      const xy = buckets[status], word = this.wordOf[status];
      for (let i = 0; i < xy.length; i += 2) {
        const cx = Math.round(xy[i] * ratio), cy = Math.round(xy[i + 1] * ratio);
        for (let k = 0; k < offsets.length; k += 2) {
          const x = cx + offsets[k], y = cy + offsets[k + 1];
          if (x >= 0 && y >= 0 && x < w && y < h) words[y * w + x] = word;
        }
      }
    }
    ctx.putImageData(this.image, 0, 0);
  },

  /** Ask for a redraw on the next animation frame (several calls in one frame draw once). */
  schedule() {
    this.dirty = true;
    if (!this.frame && this.map) this.frame = requestAnimationFrame(() => this.draw());
  },

  /** Redraw now: size the canvas to the map, project moved vehicles, draw the dots in view (paths, or pixels in a crowd). */
  draw() {
    this.frame = 0;
    if (!this.dirty || !this.map) return;
    this.dirty = false;
    const started = performance.now();
    const map = this.map, size = map.getSize(), ratio = window.devicePixelRatio || 1;
    const topLeft = map.containerPointToLayerPoint([0, 0]);
    L.DomUtil.setPosition(this.canvas, topLeft);
    if (this.canvas.width !== size.x * ratio || this.canvas.height !== size.y * ratio) {
      this.canvas.width = size.x * ratio;
      this.canvas.height = size.y * ratio;
      this.canvas.style.width = `${size.x}px`;
      this.canvas.style.height = `${size.y}px`;
    }
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, size.x, size.y);
    const zoom = map.getZoom(), origin = map.getPixelOrigin();
    const dx = origin.x + topLeft.x, dy = origin.y + topLeft.y, r = this.radius, pad = r + 2;
    const buckets = Object.fromEntries(STATUSES.map((s) => [s, []]));
    let drawn = 0;
    for (const v of this.vehicles.values()) {
      if (v.lat == null || v.lon == null) continue;
      if (v.zoom !== zoom || v.plat !== v.lat || v.plon !== v.lon) {
        const p = map.project([v.lat, v.lon], zoom);
        v.px = p.x; v.py = p.y; v.zoom = zoom; v.plat = v.lat; v.plon = v.lon;
      }
      const x = v.px - dx, y = v.py - dy;
      if (x < -pad || y < -pad || x > size.x + pad || y > size.y + pad) continue;
      (buckets[v.status] || buckets.offline).push(x, y);
      drawn += 1;
    }
    if (drawn > CROWD) this.stamp(ctx, buckets, ratio);
    else paint(ctx, buckets, this.colours, r);
    const ms = performance.now() - started;
    this.canvas.dataset.drawn = String(drawn);
    this.canvas.dataset.total = String(this.vehicles.size);
    this.canvas.dataset.frameMs = ms.toFixed(2);
    if (this.onDraw) this.onDraw({ drawn, total: this.vehicles.size, ms });
  },

  /** The vehicle under a click (the nearest within its dot and a little more), handed to onClick. */
  hit(event) {
    if (!this.onClickVehicle) return;
    const point = this.map.latLngToContainerPoint(event.latlng);
    const topLeft = this.map.containerPointToLayerPoint([0, 0]), origin = this.map.getPixelOrigin();
    const zoom = this.map.getZoom();
    let best = null, bestD = (this.radius + 4) ** 2;
    for (const v of this.vehicles.values()) {
      if (v.zoom !== zoom || v.lat == null) continue;
      const x = v.px - origin.x - topLeft.x, y = v.py - origin.y - topLeft.y;
      const d = (x - point.x) ** 2 + (y - point.y) ** 2;
      if (d <= bestD) { best = v; bestD = d; }
    }
    if (best) this.onClickVehicle(best, L.latLng(best.lat, best.lon));
  },
});

/** A polyline of a route or track ([[lat, lon], ...]) on `map`, fitted into view unless fit is false. */
export function trackLine(map, points, { fit = true, colour = null } = {}) {
  const line = L.polyline(points, { color: colour || cssVar("--accent", "#0b5cad"), weight: 4, opacity: 0.9 });
  line.addTo(map);
  if (fit && points.length > 1) map.fitBounds(line.getBounds(), { padding: [16, 16], maxZoom: 18, animate: false });
  else if (fit && points.length === 1) map.setView(points[0], 17, { animate: false });
  return line;
}

/** A popup's content for a vehicle, built as DOM nodes (no HTML strings from data). */
export function popupNode(vehicle, { t, ago, battery, kindLabel = (k) => k }) {
  const root = document.createElement("div");
  root.className = "sz-popup";
  const title = document.createElement("strong");
  title.textContent = vehicle.vehicle_id;
  title.className = "mono";
  root.append(title);
  const list = document.createElement("dl");
  const rows = [
    [t("fleet.col.kind"), kindLabel(vehicle.kind)],
    [t("fleet.col.status"), t(`fleet.status.${vehicle.status}`)],
    [t("fleet.col.battery"), battery(vehicle.battery_pct)],
    [t("fleet.col.seen"), ago(vehicle.received_ms)],
  ];
  for (const [label, value] of rows) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = label;
    dd.textContent = value;
    list.append(dt, dd);
  }
  root.append(list);
  const link = document.createElement("a");
  link.href = `/vehicles/${encodeURIComponent(vehicle.vehicle_id)}`;
  link.textContent = t("fleet.popup.open");
  root.append(link);
  return root;
}
