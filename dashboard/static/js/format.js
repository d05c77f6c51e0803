// How values are shown in the browser: the rules of dashboard/display.py, written with Intl and the same locales.
// Every page's script imports these; the page's language and words come from <script id="sz-config"> (JSON).

const config = JSON.parse(document.getElementById("sz-config")?.textContent || "{}");
export const lang = config.lang || "en";
export const locale = config.locale || "en-IE";
export const words = config.words || {};
export const ZONE = "Europe/Brussels";
const NONE = "—";

/** The text of a key in the page's language, placeholders {name} filled from values; the key when missing. */
export function t(key, values = {}) {
  const text = words[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in values ? String(values[name]) : m));
}

const money = new Intl.NumberFormat(locale, { style: "currency", currency: "EUR" });
const count = new Intl.NumberFormat(locale);
const kilometres = new Intl.NumberFormat(locale, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const dateTime = new Intl.DateTimeFormat(locale, {
  timeZone: ZONE, day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", hour12: false,
});
const timeOfDay = new Intl.DateTimeFormat(locale, {
  timeZone: ZONE, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});

/** Micro-euro rounded to whole cents, half a cent away from zero (integers only: BigInt-safe for large sums). */
export function cents(micro) {
  const m = BigInt(micro);
  const abs = m < 0n ? -m : m;
  const rounded = (abs + 5000n) / 10000n;
  return m < 0n ? -rounded : rounded;
}

/** Micro-euro as euros in the page's language ("€ 14,26" in Dutch). */
export function eur(micro) {
  if (micro === null || micro === undefined) return NONE;
  return money.format(Number(cents(micro)) / 100);
}

export function when(ms) { return ms == null ? NONE : dateTime.format(new Date(ms)); }
export function clock(ms) { return ms == null ? NONE : timeOfDay.format(new Date(ms)); }
export function number(n) { return n == null ? NONE : count.format(n); }
export function battery(pct) { return pct == null ? NONE : `${Math.floor(pct + 0.5)} %`; }
export function short(text, head = 6, tail = 4) {
  if (text == null) return NONE;
  return text.length <= head + tail + 1 ? text : `${text.slice(0, head)}…${text.slice(-tail)}`;
}
export function duration(s) {
  if (s == null) return NONE;
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60), sec = s % 60;
  if (m < 60) return `${m} min ${String(sec).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}
export function distance(metres) {
  if (metres == null) return NONE;
  if (metres < 1000) return `${metres} m`;
  return `${kilometres.format(Math.floor(metres / 10) / 100)} km`;
}
/** How long ago, from a platform receipt time and the server-corrected clock ("12 s", "3 min"). */
export function ago(ms, nowMs = Date.now()) {
  if (ms == null) return NONE;
  const s = Math.max(0, Math.round((nowMs - ms) / 1000));
  if (s < 60) return t("ago.seconds", { n: s });
  if (s < 3600) return t("ago.minutes", { n: Math.floor(s / 60) });
  return t("ago.hours", { n: Math.floor(s / 3600) });
}

/** Fetch JSON from the API; a problem-details error becomes an Error with its detail. */
export async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" }, ...options });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

export { config };
