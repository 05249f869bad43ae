import assert from "node:assert/strict";
import {
  alarmDurationMs,
  type AlarmRow,
  brokerStateAfter,
  foldAlarm,
  foldStatus,
  formatDuration,
  formatLocalTime,
  formatNumber,
  MAX_TREND_POINTS,
  prunePoints,
  pushPoint,
  type TrendPoint,
  trendSample,
  valueView,
} from "../hmi_model.ts";
import type { AlarmEvent, Telemetry } from "../contract.ts";

const T0 = Date.parse("2026-01-01T12:00:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();

const values = {
  status_bits: 1,
  power_w: 1500,
  voltage_v: 230,
  current_a: 6.52,
  temp_c: 40.2,
  soc_pct: 72,
  setpoint_w: 1500,
};
const good = (ms: number, temp = 40.2): Telemetry => ({
  ts: iso(ms),
  device_id: 1001,
  seq: 1,
  quality: "good",
  values: { ...values, temp_c: temp },
});
const bad = (ms: number): Telemetry => ({
  ts: iso(ms),
  device_id: 1001,
  seq: 2,
  quality: "bad",
  values: null,
  error: "timeout",
});
const alarm = (
  ms: number,
  state: "raised" | "cleared",
  value = 61,
  device_id: number | null = 1001,
): AlarmEvent => ({
  ts: iso(ms),
  device_id,
  alarm: "temp_high",
  state,
  value,
  message: `temperature ${value} C`,
});

Deno.test("trend window drops points older than the window", () => {
  const d: TrendPoint[] = [];
  for (let i = 0; i <= 20; i++) {
    pushPoint(d, { x: T0 + i * 60_000, y: i }, T0 + i * 60_000, 10 * 60_000);
  }
  assert.equal(d[0].x, T0 + 10 * 60_000);
  assert.equal(d.length, 11);
  // Pruning with no new data still moves the window.
  assert.equal(prunePoints(d, T0 + 25 * 60_000, 10 * 60_000), 5);
  assert.equal(d[0].x, T0 + 15 * 60_000);
  assert.equal(prunePoints(d, T0 + 99 * 60_000, 10 * 60_000), 6);
  assert.equal(d.length, 0);
});

Deno.test("trend window is bounded however fast points arrive", () => {
  const d: TrendPoint[] = [];
  for (let i = 0; i < MAX_TREND_POINTS * 3; i++) {
    pushPoint(d, { x: T0 + i, y: i }, T0 + i);
  }
  assert.equal(d.length, MAX_TREND_POINTS);
  assert.equal(d.at(-1)!.y, MAX_TREND_POINTS * 3 - 1);
});

Deno.test("trend keeps time order: an out-of-order point is dropped", () => {
  const d: TrendPoint[] = [];
  pushPoint(d, { x: T0 + 2000, y: 2 }, T0 + 2000);
  pushPoint(d, { x: T0 + 1000, y: 1 }, T0 + 2000);
  pushPoint(d, { x: T0 + 3000, y: 3 }, T0 + 3000);
  assert.deepEqual(d.map((p) => p.y), [2, 3]);
});

Deno.test("trendSample: bad quality is a gap, never a number", () => {
  assert.deepEqual(trendSample(good(T0, 55.5)), {
    x: T0,
    temp: 55.5,
    power: 1500,
    soc: 72,
  });
  assert.deepEqual(trendSample(bad(T0)), {
    x: T0,
    temp: null,
    power: null,
    soc: null,
  });
});

Deno.test("valueView: fresh, bad, stale after 3 poll intervals, none", () => {
  assert.deepEqual(valueView(null, T0, 1000), { kind: "none" });
  const last = { msg: good(T0), receivedMs: T0 };
  assert.equal(valueView(last, T0 + 3000, 1000).kind, "fresh");
  const stale = valueView(last, T0 + 3001, 1000);
  assert.equal(stale.kind, "stale");
  assert.ok(stale.kind === "stale" && stale.ageMs === 3001);
  assert.ok(stale.kind === "stale" && stale.values?.temp_c === 40.2);
  // Staleness uses the receive time, not the device clock.
  const skewed = { msg: good(T0 - 3_600_000), receivedMs: T0 };
  assert.equal(valueView(skewed, T0 + 500, 1000).kind, "fresh");
  const b = valueView({ msg: bad(T0), receivedMs: T0 }, T0 + 100, 1000);
  assert.deepEqual(b, { kind: "bad", error: "timeout", ts: iso(T0) });
  const badStale = valueView({ msg: bad(T0), receivedMs: T0 }, T0 + 5000, 1000);
  assert.equal(badStale.kind, "stale");
  assert.ok(badStale.kind === "stale" && badStale.values === null);
});

Deno.test("foldAlarm: raised then cleared is one row, newest first", () => {
  let rows: AlarmRow[] = [];
  rows = foldAlarm(rows, alarm(T0, "raised", 61.2));
  assert.equal(rows.length, 1);
  assert.equal(rows[0].active, true);
  assert.equal(rows[0].raisedMs, T0);
  assert.equal(alarmDurationMs(rows[0], T0 + 7000), 7000);
  rows = foldAlarm(rows, alarm(T0 + 60_000, "cleared", 57.9));
  assert.equal(rows.length, 1);
  assert.deepEqual(
    {
      active: rows[0].active,
      value: rows[0].value,
      clearValue: rows[0].clearValue,
      clearedMs: rows[0].clearedMs,
    },
    { active: false, value: 61.2, clearValue: 57.9, clearedMs: T0 + 60_000 },
  );
  assert.equal(alarmDurationMs(rows[0], T0 + 999_999), 60_000);
  rows = foldAlarm(rows, alarm(T0 + 120_000, "raised", 62));
  assert.equal(rows.length, 2);
  assert.equal(rows[0].raisedMs, T0 + 120_000);
  assert.equal(rows[0].active, true);
  assert.equal(rows[1].active, false);
});

Deno.test("foldAlarm: duplicates, orphans, other devices, unknown states", () => {
  let rows = foldAlarm([], alarm(T0, "raised"));
  const again = foldAlarm(rows, alarm(T0 + 1000, "raised"));
  assert.deepEqual(again, rows, "a raise while active is a duplicate");
  // A clear whose raise was never seen (page opened mid-alarm).
  const orphan = foldAlarm([], alarm(T0, "cleared", 57));
  assert.equal(orphan.length, 1);
  assert.equal(orphan[0].raisedMs, null);
  assert.equal(alarmDurationMs(orphan[0], T0), null);
  assert.deepEqual(foldAlarm(orphan, alarm(T0, "cleared", 57)), orphan);
  // Another device's alarm is its own row.
  rows = foldAlarm(rows, alarm(T0 + 5, "raised", 61, 1002));
  assert.equal(rows.filter((r) => r.active).length, 2);
  rows = foldAlarm(rows, alarm(T0 + 10, "cleared", 57, 1002));
  assert.deepEqual(rows.map((r) => [r.device_id, r.active]), [
    [1002, false],
    [1001, true],
  ]);
  // The parser accepts any short state string; unknown ones change nothing.
  const odd = {
    ...alarm(T0, "raised"),
    state: "shelved",
  } as unknown as AlarmEvent;
  assert.deepEqual(foldAlarm(rows, odd), rows);
  // Input is not mutated.
  const before = structuredClone(rows);
  foldAlarm(rows, alarm(T0 + 99, "cleared"));
  assert.deepEqual(rows, before);
});

Deno.test("foldAlarm: the list is bounded", () => {
  let rows: AlarmRow[] = [];
  for (let i = 0; i < 30; i++) {
    rows = foldAlarm(rows, alarm(T0 + i * 10, "raised"), 5);
    rows = foldAlarm(rows, alarm(T0 + i * 10 + 5, "cleared"), 5);
  }
  assert.equal(rows.length, 5);
  assert.equal(rows[0].raisedMs, T0 + 290);
});

Deno.test("foldStatus ignores a late will of an older session", () => {
  const online = { state: "online" as const, ts: iso(T0), session: 5 };
  const oldWill = { state: "offline" as const, ts: iso(T0 + 1), session: 4 };
  const offline = { state: "offline" as const, ts: iso(T0 + 2), session: 5 };
  assert.equal(foldStatus(online, oldWill), online);
  assert.equal(foldStatus(online, offline), offline);
  assert.equal(foldStatus(null, oldWill), oldWill);
  const restarted = { state: "online" as const, ts: iso(T0 + 3), session: 1 };
  assert.equal(foldStatus(offline, restarted), restarted);
});

Deno.test("brokerStateAfter follows mqtt.js events", () => {
  assert.equal(brokerStateAfter("connecting", "connect"), "connected");
  assert.equal(brokerStateAfter("connected", "close"), "reconnecting");
  assert.equal(brokerStateAfter("connected", "offline"), "reconnecting");
  assert.equal(brokerStateAfter("reconnecting", "reconnect"), "reconnecting");
  assert.equal(brokerStateAfter("connecting", "close"), "connecting");
  assert.equal(brokerStateAfter("connecting", "error"), "connecting");
  assert.equal(brokerStateAfter("reconnecting", "connect"), "connected");
});

Deno.test("formatting: numbers, durations, local time", () => {
  assert.equal(formatNumber(40.25, 1), "40.3");
  assert.equal(formatNumber(0, 0), "0");
  assert.equal(formatNumber(NaN, 1), "\u2014");
  assert.equal(formatNumber("7", 1), "\u2014");
  assert.equal(formatDuration(999), "0 s");
  assert.equal(formatDuration(75_000), "1 min 15 s");
  assert.equal(formatDuration(3_725_000), "1 h 02 min");
  assert.equal(formatDuration(null), "\u2014");
  const d = new Date(2026, 0, 2, 3, 4, 5); // local time
  assert.equal(formatLocalTime(d.getTime()), "03:04:05");
  assert.equal(formatLocalTime(null), "\u2014");
});
