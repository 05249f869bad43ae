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

Deno.test("README's register table lists every register at its address", () => {
  for (const r of REGISTER_MAP) {
    const row = readme.split("\n").find((l) =>
      l.includes(`| ${r.name} |`) || l.includes(` ${r.name},`)
    );
    assert.ok(row, `README has no row for ${r.name}`);
    assert.match(
      row,
      new RegExp(`^\\| ${r.address}[ ,]`),
      `${r.name} at ${r.address}`,
    );
  }
  for (const [name, bit] of Object.entries(STATUS_BITS)) {
    assert.ok(
      readme.includes(`bit ${bit} \`${name}\``),
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
      readme.includes(`| \`${o.env}\` / \`--${flagName(o.env)}\` |`),
      `README config table misses ${o.env}`,
    );
  }
});
