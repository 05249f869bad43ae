/** The README documents what the code defines (one source of truth). */
import assert from "node:assert/strict";
import { REGISTER_MAP, STATUS_BITS } from "../registers.ts";
import {
  BROKER_OPTIONS,
  HMI_OPTIONS,
  POLL_OPTIONS,
  SIM_OPTIONS,
  START_OPTIONS,
} from "../settings.ts";
import { flagName } from "../cli.ts";

const readme = await Deno.readTextFile(
  new URL("../README.md", import.meta.url),
);

/** Markdown table rows as trimmed cells (deno fmt pads them). */
const rows = readme.split("\n")
  .filter((l) => l.startsWith("|"))
  .map((l) => l.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim()));

Deno.test("README's register table lists every register at its address", () => {
  for (const r of REGISTER_MAP) {
    const row = rows.find((c) => c[1] === r.name);
    assert.ok(row, `README has no row for ${r.name}`);
    assert.equal(row[0], String(r.address), r.name);
    assert.equal(
      row[3],
      r.divisor === 1 ? "1" : `/${r.divisor}`,
      `${r.name} scaling`,
    );
    assert.equal(row[4], r.type, `${r.name} type`);
  }
  for (const [name, bit] of Object.entries(STATUS_BITS)) {
    assert.ok(
      readme.replace(/\s+/g, " ").includes(`bit ${bit} \`${name}\``),
      `status bit ${bit} ${name}`,
    );
  }
});

Deno.test("README's configuration table lists every setting with its flag", () => {
  const all = [
    SIM_OPTIONS,
    POLL_OPTIONS,
    BROKER_OPTIONS,
    HMI_OPTIONS,
    START_OPTIONS,
  ]
    .flatMap((s) => Object.values(s));
  for (const o of all) {
    assert.ok(
      rows.some((c) => c[0] === `\`${o.env}\` / \`--${flagName(o.env)}\``),
      `README config table misses ${o.env}`,
    );
  }
});
