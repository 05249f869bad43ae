import assert from "node:assert/strict";
import { VALUES as values } from "./_fixtures.ts";
import {
  buildAlarmEvent,
  buildBadTelemetry,
  buildTelemetry,
} from "../contract.ts";
import { History, parseLimit, parseMinutes, toCsv } from "../history.ts";

const T = Date.UTC(2026, 11, 3, 18, 0, 0);

Deno.test("records telemetry and alarms and reads them back in order", () => {
  const h = new History({ path: ":memory:" });
  try {
    for (let i = 0; i < 5; i++) {
      h.recordTelemetry(
        buildTelemetry({
          tsMs: T + i * 1000,
          deviceId: 1001,
          seq: i + 1,
          values,
        }),
      );
    }
    h.recordTelemetry(
      buildBadTelemetry({
        tsMs: T + 5000,
        deviceId: 1001,
        seq: 6,
        error: "timeout",
      }),
    );
    const since = h.telemetrySince(T + 2000);
    assert.deepEqual(since.map((t) => t.seq), [3, 4, 5, 6]);
    assert.equal(since.at(-1)!.quality, "bad");
    for (
      const [i, state] of (["raised", "cleared", "raised"] as const).entries()
    ) {
      h.recordAlarm(buildAlarmEvent({
        tsMs: T + i * 10_000,
        deviceId: 1001,
        alarm: "temp_high",
        state,
        value: 61,
        message: "m",
      }));
    }
    assert.deepEqual(h.recentAlarms(2).map((a) => a.ts), [
      new Date(T + 20_000).toISOString(),
      new Date(T + 10_000).toISOString(),
    ]);
  } finally {
    h.close();
  }
});

Deno.test("retention and row caps bound the tables", () => {
  const h = new History({
    path: ":memory:",
    telemetryRetentionMs: 10_000,
    alarmRetentionMs: 60_000,
    maxTelemetryRows: 5,
    maxAlarmRows: 2,
  });
  try {
    for (let i = 0; i < 20; i++) {
      h.recordTelemetry(
        buildTelemetry({ tsMs: T + i * 1000, deviceId: 1001, seq: i, values }),
      );
    }
    for (let i = 0; i < 4; i++) {
      h.recordAlarm(
        buildAlarmEvent({
          tsMs: T + i * 1000,
          deviceId: 1,
          alarm: "temp_high",
          state: "raised",
          value: 1,
          message: "",
        }),
      );
    }
    h.prune(T + 19_000);
    const c = h.counts();
    assert.equal(c.telemetry, 5);
    assert.equal(c.alarms, 2);
    assert.deepEqual(h.telemetrySince(0).map((t) => t.seq), [
      15,
      16,
      17,
      18,
      19,
    ]);
    h.prune(T + 120_000);
    assert.deepEqual(h.counts(), { telemetry: 0, alarms: 0 });
  } finally {
    h.close();
  }
});

Deno.test("query parameters: integers in range or a clear 400 reason", () => {
  assert.deepEqual(parseMinutes(null), { ok: true, value: 10 });
  assert.deepEqual(parseMinutes("30"), { ok: true, value: 30 });
  for (const bad of ["0", "-5", "1.5", "abc", "", "10081", "9999999999"]) {
    const r = parseMinutes(bad);
    assert.equal(r.ok, false, bad);
    if (!r.ok) assert.equal(r.error, "minutes must be an integer in 1..10080");
  }
  assert.deepEqual(parseLimit("1000"), { ok: true, value: 1000 });
  assert.equal(parseLimit("1001").ok, false);
});

Deno.test("CSV quotes what needs quoting and defuses formulas", () => {
  const csv = toCsv(["a", "b"], [[1, 'say "hi", ok'], [-2.5, "=cmd()"], [
    null,
    "x\ny",
  ]]);
  assert.equal(
    csv,
    'a,b\r\n1,"say ""hi"", ok"\r\n-2.5,\'=cmd()\r\n,"x\ny"\r\n',
  );
});

Deno.test("a long window returns at most maxRows, the newest, oldest first", () => {
  const h = new History({ path: ":memory:" });
  try {
    for (let i = 0; i < 50; i++) {
      h.recordTelemetry(
        buildTelemetry({ tsMs: T + i * 1000, deviceId: 1001, seq: i, values }),
      );
    }
    assert.deepEqual(h.telemetrySince(0, 3).map((t) => t.seq), [47, 48, 49]);
    assert.equal(h.telemetrySince(0).length, 50);
  } finally {
    h.close();
  }
});
