// How values are shown in the browser: the rules of dashboard/display.py, written with Intl and the same locales.
// Every page's script imports these; the page's language and words come from <script id="sz-config"> (JSON).

// Outside a page (Node runs this module in the tests) there is no document: the defaults, English.
const element = typeof document === "undefined" ? null : document.getElementById("sz-config");
const config = JSON.parse(element?.textContent || "{}");
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

/** Micro-euro rounded to whole cents, half a cent away from zero (integers only: BigInt-safe for large sums). */
export function cents(micro) {
  const m = BigInt(micro);
  const abs = m < 0n ? -m : m;
  const rounded = (abs + 5000n) / 10000n;
  return m < 0n ? -rounded : rounded;
}

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

/** The value formats of dashboard/display.py for one locale (a BCP 47 tag): eur, when, clock, distance, number. */
export function formatsFor(tag) {
  const money = new Intl.NumberFormat(tag, { style: "currency", currency: "EUR" });
  const count = new Intl.NumberFormat(tag);
  const kilometres = new Intl.NumberFormat(tag, {
    minimumFractionDigits: 2, maximumFractionDigits: 2, useGrouping: false,
  });
  const dateTime = new Intl.DateTimeFormat(tag, {
    timeZone: ZONE, day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
  const timeOfDay = new Intl.DateTimeFormat(tag, {
    timeZone: ZONE, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  return {
    /** Micro-euro as euros in the language ("€ 14,26" in Dutch). */
    eur: (micro) => (micro == null ? NONE : money.format(Number(cents(micro)) / 100)),
    /** Babel's "d MMM y HH:mm" in Brussels ("18 nov 2026 12:06"): the parts in that order, no comma. */
    when(ms) {
      if (ms == null) return NONE;
      const part = Object.fromEntries(dateTime.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
      return `${part.day} ${part.month} ${part.year} ${part.hour}:${part.minute}`;
    },
    clock: (ms) => (ms == null ? NONE : timeOfDay.format(new Date(ms))),
    number: (n) => (n == null ? NONE : count.format(n)),
    /** Metres below a kilometre, else kilometres to two decimals, truncated, ungrouped ("12345,67 km"). */
    distance(metres) {
      if (metres == null) return NONE;
      if (metres < 1000) return `${metres} m`;
      return `${kilometres.format(Math.floor(metres / 10) / 100)} km`;
    },
  };
}

export const { eur, when, clock, number, distance } = formatsFor(locale);

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
