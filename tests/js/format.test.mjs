// The browser's value formats (dashboard/static/js/format.js) against dashboard/display.py's texts for the same values.
// Run by tests/unit/test_format_js.py: SZ_FORMATS names the JSON it wrote ({lang: {tag, eur|when|…: [[in, out]]}}).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { register } from "node:module";
import { test } from "node:test";

register("./static-resolve.mjs", import.meta.url);
const format = await import("/static/js/format.js");
const expected = JSON.parse(readFileSync(process.env.SZ_FORMATS, "utf8"));
const NAMES = ["eur", "when", "clock", "distance", "number"];

/** Each format of ``formats`` applied to the inputs of ``cases``: {name: [[input, text]]}, to compare whole. */
function written(formats, cases) {
  return Object.fromEntries(NAMES.map((name) => [name, cases[name].map(([value]) => [value, formats[name](value)])]));
}

const expectedTexts = (cases) => Object.fromEntries(NAMES.map((name) => [name, cases[name]]));

for (const [lang, cases] of Object.entries(expected)) {
  test(`every format writes what the server writes in ${lang} (${cases.tag})`, () => {
    for (const name of NAMES) assert.ok(cases[name].length > 3, `${name}: too few cases`);
    assert.deepEqual(written(format.formatsFor(cases.tag), cases), expectedTexts(cases));
  });
}

test("without a document (Node) the module loads with the page defaults: English", () => {
  assert.equal(format.lang, "en");
  assert.equal(format.locale, "en-IE");
  assert.deepEqual(written(format, expected.en), expectedTexts(expected.en));
});

test("on a page the formats are those of the page's language from its sz-config", async () => {
  const config = { lang: "nl", locale: expected.nl.tag, words: { "x.y": "{n} stuks" } };
  globalThis.document = { getElementById: (id) => (id === "sz-config" ? { textContent: JSON.stringify(config) } : null) };
  try {
    const page = await import("/static/js/format.js?page=nl");
    assert.equal(page.lang, "nl");
    assert.equal(page.t("x.y", { n: 3 }), "3 stuks");
    assert.deepEqual(written(page, expected.nl), expectedTexts(expected.nl));
  } finally {
    delete globalThis.document;
  }
});

test("a date is never written with a comma and a midnight is 00, never 24", () => {
  for (const cases of Object.values(expected)) {
    const formats = format.formatsFor(cases.tag);
    for (const [value] of cases.when) assert.ok(!formats.when(value).includes(","), formats.when(value));
    const midnight = Date.UTC(2026, 10, 17, 23, 0, 30);  // 00:00:30 on 18 November in Brussels
    assert.match(formats.clock(midnight), /^00:00:30$/);
    assert.match(formats.when(midnight), / 00:00$/);
  }
});
