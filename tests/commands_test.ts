import assert from "node:assert/strict";
import {
  buildCommandResult,
  RecentIds,
  validateAckCommand,
  validateSetpointCommand,
} from "../commands.ts";

const NOW = Date.UTC(2026, 11, 3, 18, 0, 0);
const ts = (offsetMs = 0) => new Date(NOW + offsetMs).toISOString();
const cmd = (o: Record<string, unknown>) =>
  JSON.stringify({ id: "c-1", value: 3500, ts: ts(), ...o });

Deno.test("a well-formed setpoint command passes unchanged", () => {
  assert.deepEqual(validateSetpointCommand(cmd({}), NOW), {
    ok: true,
    cmd: { id: "c-1", value: 3500, ts: ts() },
  });
  for (const value of [0, 5000]) {
    assert.equal(
      validateSetpointCommand(cmd({ value }), NOW).ok,
      true,
      `edge ${value}`,
    );
  }
});

Deno.test("setpoint values are never coerced or rounded", () => {
  const cases: [unknown, RegExp][] = [
    ["3500", /JSON number, not a string/],
    [3500.5, /integer/],
    [null, /not null/],
    [[3500], /not an array/],
    [true, /not a boolean/],
    [-1, /out of range 0\.\.5000/],
    [5001, /out of range 0\.\.5000/],
  ];
  for (const [value, re] of cases) {
    const r = validateSetpointCommand(cmd({ value }), NOW);
    assert.equal(r.ok, false, JSON.stringify(value));
    if (!r.ok) {
      assert.match(r.error, re);
      assert.equal(r.id, "c-1", "the answer names the command");
    }
  }
  const missing = validateSetpointCommand(
    JSON.stringify({ id: "c-2", ts: ts() }),
    NOW,
  );
  assert.deepEqual(missing, { ok: false, id: "c-2", error: "value missing" });
});

Deno.test("setpoint values written with a fraction or an exponent are refused, though JSON.parse makes them integers", () => {
  const raw = (v: string) =>
    `{"id":"c-3","value":${v},"ts":${JSON.stringify(ts())}}`;
  for (const v of ["3500.0", "3.5e3", "35E2", "5000.0000000000001", "0.0"]) {
    const r = validateSetpointCommand(raw(v), NOW);
    assert.equal(r.ok, false, v);
    if (!r.ok) assert.match(r.error, /JSON integer.*got /, v);
  }
  assert.equal(validateSetpointCommand(raw("3500"), NOW).ok, true);
  assert.equal(validateSetpointCommand(raw("0"), NOW).ok, true);
  // A nested "value" elsewhere does not confuse the check.
  const nested = `{"id":"c-4","meta":{"value":1.5},"value":4000,"ts":${
    JSON.stringify(ts())
  }}`;
  assert.equal(validateSetpointCommand(nested, NOW).ok, true);
});

Deno.test("ids: non-empty string required", () => {
  for (const id of [undefined, "", 7, "x".repeat(129)]) {
    const r = validateSetpointCommand(cmd({ id }), NOW);
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.id, null);
      assert.match(r.error, /id must be a non-empty string/);
    }
  }
});

Deno.test("timestamps: present, ISO 8601, at most 10 s old, not in the future beyond skew", () => {
  const verdict = (t: unknown) => {
    const r = validateSetpointCommand(cmd({ ts: t }), NOW);
    return r.ok ? "ok" : r.error;
  };
  assert.equal(verdict(ts(-10_000)), "ok");
  assert.match(verdict(ts(-10_001)), /too old \(10\.0 s old, limit 10 s\)/);
  assert.equal(verdict(ts(2_000)), "ok");
  assert.match(verdict(ts(2_001)), /2\.0 s in the future/);
  // Offsets are honoured: 19:00+01:00 is 18:00Z.
  assert.equal(verdict("2026-12-03T19:00:00.000+01:00"), "ok");
  for (
    const bad of [
      undefined,
      1764784800000,
      "yesterday",
      "2026-12-03",
      "2026-13-03T18:00:00Z",
      // Date.parse shifts these to real dates; a command must name a real one.
      "2026-02-30T18:00:00Z",
      "2026-12-03T24:00:00Z",
      "2026-12-03T18:60:00Z",
      "2026-12-03T18:00:00+25:00",
      "2026-12-03T18:00:00",
    ]
  ) {
    assert.match(verdict(bad), /ISO 8601/, String(bad));
  }
});

Deno.test("malformed payloads are refused with a reason", () => {
  for (
    const [p, re] of [["{", /malformed JSON/], ["[1]", /JSON object/], [
      "42",
      /JSON object/,
    ]] as const
  ) {
    const r = validateSetpointCommand(p, NOW);
    assert.ok(!r.ok && re.test(r.error) && r.id === null);
  }
  assert.match(
    (validateSetpointCommand("x".repeat(70_000), NOW) as { error: string })
      .error,
    /too large/,
  );
});

Deno.test("acks name a known alarm", () => {
  assert.deepEqual(
    validateAckCommand('{"id":"a","alarm":"temp_high"}', ["temp_high"]),
    {
      ok: true,
      cmd: { id: "a", alarm: "temp_high" },
    },
  );
  const r = validateAckCommand('{"id":"a","alarm":"nope"}', ["temp_high"]);
  assert.ok(!r.ok && r.id === "a" && /one of temp_high/.test(r.error));
});

Deno.test("results: ok with value, or error; always id and ts", () => {
  assert.deepEqual(
    buildCommandResult({ id: "c", tsMs: NOW, ok: true, value: 3500 }),
    {
      id: "c",
      ok: true,
      value: 3500,
      ts: ts(),
    },
  );
  assert.deepEqual(
    buildCommandResult({ id: null, tsMs: NOW, ok: false, error: "e" }),
    {
      id: null,
      ok: false,
      error: "e",
      ts: ts(),
    },
  );
});

Deno.test("a redelivered command id runs once; memory is bounded", () => {
  const r = new RecentIds(2);
  assert.equal(r.firstTime("a"), true);
  assert.equal(r.firstTime("a"), false);
  r.firstTime("b");
  r.firstTime("c"); // evicts a
  assert.equal(r.firstTime("a"), true);
});
