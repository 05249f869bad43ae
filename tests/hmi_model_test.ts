import assert from "node:assert/strict";
import {
  alarmBadge,
  alarmDurationMs,
  type AlarmRow,
  brokerStateAfter,
  type CurrentValue,
  flushRejectLog,
  foldAlarm,
  foldCurrent,
  foldStatus,
  formatDuration,
  formatLocalTime,
  formatNumber,
  formatWhen,
  MAX_TREND_MSGS,
  mergeTelemetry,
  newRejectLog,
  newTrendStore,
  noteRejection,
  plural,
  pollerBadge,
  prunePoints,
  qualityText,
  REJECT_LOG_EVERY_MS,
  REJECT_LOG_FIRST,
  spreadLabels,
  staleTickMs,
  tickLabel,
  timeTicks,
  TREND_BUCKETS,
  type TrendPoint,
  trendSample,
  valueView,
} from "../hmi_model.ts";
import type { AlarmEvent, GoodTelemetry, Telemetry } from "../contract.ts";

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
const good = (ms: number, temp = 40.2): GoodTelemetry => ({
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

Deno.test("prunePoints drops points older than the window", () => {
  const d: TrendPoint[] = [];
  for (let i = 0; i <= 20; i++) d.push({ x: T0 + i * 60_000, y: i });
  assert.equal(prunePoints(d, T0 + 20 * 60_000, 10 * 60_000), 10);
  assert.equal(d[0].x, T0 + 10 * 60_000);
  assert.equal(d.length, 11);
  // Pruning with no new data still moves the window.
  assert.equal(prunePoints(d, T0 + 25 * 60_000, 10 * 60_000), 5);
  assert.equal(d[0].x, T0 + 15 * 60_000);
  assert.equal(prunePoints(d, T0 + 99 * 60_000, 10 * 60_000), 6);
  assert.equal(d.length, 0);
});

/** Good telemetry every `stepMs` from `fromMs`, seq from `seq0`. */
const run = (fromMs: number, n: number, stepMs: number, seq0 = 1) =>
  Array.from({ length: n }, (_, i) => ({
    ...good(fromMs + i * stepMs, 50 + (i % 7)),
    seq: seq0 + i,
  }));

/** The chart series as [x, y] pairs (x relative to T0). */
const pairs = (d: TrendPoint[]) => d.map((p) => [p.x - T0, p.y]);

Deno.test("trend: no line through a period without data (live and history)", () => {
  // 10 samples at 1 s, the poller dies for a minute, then 5 more.
  const before = run(T0, 10, 1000);
  const after = run(T0 + 69_000, 5, 1000, 1);
  const now = T0 + 74_000;
  const live = newTrendStore({ intervalMs: 1000 });
  for (const m of [...before, ...after]) mergeTelemetry(live, [m], now);
  const nulls = (d: TrendPoint[]) => d.filter((p) => p.y === null);
  for (const d of [live.temp, live.power, live.soc]) {
    assert.equal(nulls(d).length, 1, "one break");
    const gap = nulls(d)[0].x - T0;
    assert.ok(gap > 9_000 && gap < 69_000, `break inside the gap, at ${gap}`);
  }
  assert.equal(live.temp.length, 16, "15 samples and the break");
  // Samples 1 s apart are joined: no break in either run.
  assert.ok(live.temp.slice(0, 10).every((p) => p.y !== null));
  // History first (out of order after live): the same series.
  const hist = newTrendStore({ intervalMs: 1000 });
  mergeTelemetry(hist, after, now);
  mergeTelemetry(hist, before, now);
  assert.deepEqual(pairs(hist.temp), pairs(live.temp));
  assert.deepEqual(hist.msgs.map((m) => m.ts), live.msgs.map((m) => m.ts));
  // Exactly 3 intervals apart is still a line; more is a break.
  const edge = newTrendStore({ intervalMs: 1000 });
  mergeTelemetry(edge, [good(T0), { ...good(T0 + 3000), seq: 9 }], now);
  assert.equal(nulls(edge.temp).length, 0);
  mergeTelemetry(edge, [{ ...good(T0 + 6001), seq: 20 }], now);
  assert.equal(nulls(edge.temp).length, 1);
});

Deno.test("trend: the gap rule follows the device's observed poll interval", () => {
  // Configured 1 s, but this device polls every 5 s: no break between its
  // samples once the interval is observed (consecutive seq).
  const s = newTrendStore({ intervalMs: 1000 });
  const now = T0 + 60_000;
  mergeTelemetry(s, run(T0, 12, 5000), now);
  assert.equal(s.observedMs, 5000);
  assert.equal(s.temp.length, 12);
  assert.ok(s.temp.every((p) => p.y !== null), "no breaks");
  // Not consecutive (a sample lost, or a new poller run): judged by the
  // observed interval, 15 s.
  mergeTelemetry(s, [{ ...good(T0 + 70_000), seq: 40 }], now + 10_000);
  assert.equal(s.temp.filter((p) => p.y === null).length, 0);
  mergeTelemetry(s, [{ ...good(T0 + 86_000), seq: 41 }], now + 30_000);
  assert.equal(s.temp.filter((p) => p.y === null).length, 1);
});

Deno.test("trend: 10 minutes at 50 ms polling are drawn whole, decimated, bounded", () => {
  const store = newTrendStore({ intervalMs: 50 });
  const n = 12_000; // 10 min at 20 Hz
  const msgs = Array.from({ length: n }, (_, i) => ({
    ...good(T0 + i * 50, 50 + 10 * Math.sin(i / 300) + (i === 6000 ? 9 : 0)),
    seq: i + 1,
  }));
  const now = T0 + (n - 1) * 50;
  for (let i = 0; i < n; i += 100) {
    mergeTelemetry(store, msgs.slice(i, i + 100), now);
  }
  assert.equal(store.msgs.length, n, "every message kept (CSV export)");
  for (const d of [store.temp, store.power, store.soc]) {
    assert.ok(d.length <= 2 * TREND_BUCKETS + 2, `${d.length} chart points`);
    assert.ok(d.length >= TREND_BUCKETS, `${d.length} chart points`);
    // The whole window: oldest point within one bucket of the window start.
    assert.ok(d[0].x - (now - 600_000) <= 600, `starts at ${d[0].x - now}`);
    assert.equal(d.at(-1)!.x, now);
    assert.ok(d.every((p, i) => i === 0 || p.x >= d[i - 1].x), "ordered");
  }
  // Min/max per bucket: a one-sample spike is still drawn.
  const ys = store.temp.map((p) => p.y!);
  const raw = msgs.map((m) => m.values.temp_c);
  assert.equal(Math.max(...ys), Math.max(...raw));
  assert.equal(Math.min(...ys), Math.min(...raw));
  // Live appends keep it bounded and flat: another 10 minutes.
  const more = Array.from({ length: n }, (_, i) => ({
    ...good(T0 + (n + i) * 50, 55),
    seq: n + i + 1,
  }));
  for (let i = 0; i < n; i += 50) {
    mergeTelemetry(store, more.slice(i, i + 50), T0 + (n + i + 49) * 50);
  }
  assert.ok(store.msgs.length <= MAX_TREND_MSGS);
  assert.ok(store.temp.length <= 2 * TREND_BUCKETS + 2);
  assert.equal(store.keys.size, store.msgs.length);
});

Deno.test("trend: the message cap bounds memory even beyond the fastest poll", () => {
  const s = newTrendStore({ intervalMs: 50, maxMsgs: 100 });
  mergeTelemetry(s, run(T0, 500, 10), T0 + 5000);
  assert.equal(s.msgs.length, 100);
  assert.equal(s.keys.size, 100);
  assert.equal(s.msgs[0].seq, 401);
  assert.ok(s.temp.length <= 3 * 10, "5 s are about 9 buckets");
});

Deno.test("trend: bad quality and gaps inside a decimated bucket still break", () => {
  const s = newTrendStore({ intervalMs: 50 });
  const m = [
    { ...good(T0, 50), seq: 1 },
    { ...bad(T0 + 50), seq: 2 },
    { ...good(T0 + 100, 52), seq: 3 },
  ];
  mergeTelemetry(s, m, T0 + 100);
  assert.deepEqual(pairs(s.temp), [[0, 50], [50, null], [100, 52]]);
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

const cur = (
  msgs: Telemetry[],
  receivedMs: (m: Telemetry) => number = (m) => Date.parse(m.ts),
): CurrentValue | null => {
  let c: CurrentValue | null = null;
  for (const m of msgs) c = foldCurrent(c, m, receivedMs(m));
  return c;
};
const ON = { connected: true, pollerOffline: false };

Deno.test("valueView: fresh, bad, stale after 3 poll intervals, none", () => {
  assert.deepEqual(valueView(null, T0, 1000, ON), { kind: "none" });
  const last = cur([good(T0)]);
  assert.equal(valueView(last, T0 + 3000, 1000, ON).kind, "fresh");
  const stale = valueView(last, T0 + 3001, 1000, ON);
  assert.equal(stale.kind, "stale");
  assert.ok(stale.kind === "stale" && stale.ageMs === 3001);
  assert.ok(stale.kind === "stale" && stale.values?.temp_c === 40.2);
  assert.equal(
    qualityText(stale, T0 + 3001),
    `STALE: no data for 3 s (last ${formatLocalTime(T0)})`,
  );
  const b = valueView(cur([bad(T0)]), T0 + 100, 1000, ON);
  assert.equal(b.kind, "bad");
  assert.ok(b.kind === "bad" && b.error === "timeout" && b.sinceMs === T0);
});

Deno.test("valueView: no broker connection or poller offline is stale at once", () => {
  const last = cur([good(T0)]);
  const noBroker = valueView(last, T0 + 10, 1000, {
    connected: false,
    pollerOffline: false,
  });
  assert.equal(noBroker.kind, "stale");
  assert.match(qualityText(noBroker, T0), /^STALE: no broker connection/);
  const offline = valueView(last, T0 + 10, 1000, {
    connected: true,
    pollerOffline: true,
  });
  assert.equal(offline.kind, "stale");
  assert.match(qualityText(offline, T0), /^STALE: poller offline/);
  // Also when the last report was bad: stale, with the last error.
  const badOff = valueView(cur([bad(T0)]), T0 + 10, 1000, {
    connected: true,
    pollerOffline: true,
  });
  assert.ok(badOff.kind === "stale" && badOff.error === "timeout");
  assert.match(qualityText(badOff, T0), /last report BAD: timeout/);
});

Deno.test("valueView: during device loss stays BAD since ..., never flips to stale", () => {
  // Bad reports during backoff: 1, 2, 4, 8, 16 s apart (poll interval 1 s).
  const times = [0, 1000, 3000, 7000, 15_000, 31_000].map((d) => T0 + d);
  const msgs = times.map((t, i) => ({ ...bad(t), seq: 10 + i }));
  let c: CurrentValue | null = cur([{ ...good(T0 - 1000), seq: 9 }]);
  for (let i = 0; i < msgs.length; i++) {
    c = foldCurrent(c, msgs[i], times[i]);
    // Just before the next report (long after 3 intervals): still bad.
    const until = (times[i + 1] ?? times[i] + 20_000) - 1;
    for (const now of [times[i], times[i] + 3500, until]) {
      const v = valueView(c, now, 1000, ON);
      assert.equal(v.kind, "bad", `at +${now - T0} ms`);
      assert.ok(v.kind === "bad" && v.sinceMs === T0, "since the first bad");
    }
  }
  const v = valueView(c, T0 + 36_000, 1000, ON);
  assert.equal(
    qualityText(v, T0 + 36_000),
    `BAD since ${formatLocalTime(T0)} (timeout), last report 5 s ago`,
  );
  // A good read ends the run.
  c = foldCurrent(c, { ...good(T0 + 40_000), seq: 16 }, T0 + 40_000);
  assert.equal(c?.badSinceMs, null);
  assert.equal(valueView(c, T0 + 40_000, 1000, ON).kind, "fresh");
});

Deno.test("foldCurrent: replayed and older messages never replace the current value", () => {
  const now = cur([{ ...good(T0, 55), seq: 100 }]);
  const replayed = { ...good(T0 + 5000, 99), seq: 50, replayed: true as const };
  const r = foldCurrent(now, replayed, T0 + 6000);
  assert.equal(r?.msg.seq, 100, "replayed: trend only");
  assert.equal(r?.ignored, 1);
  const older = foldCurrent(now, { ...good(T0 - 2000, 12), seq: 40 }, T0 + 1);
  assert.equal(older?.msg.seq, 100, "older ts: trend only");
  // A replayed message on a fresh page is not shown either.
  assert.equal(foldCurrent(null, replayed, T0), null);
  // The next live one replaces it.
  const next = foldCurrent(now, { ...good(T0 + 1000), seq: 101 }, T0 + 1000);
  assert.equal(next?.msg.seq, 101);
  // A redelivery (same ts and seq) changes nothing.
  assert.equal(foldCurrent(next, next!.msg, T0 + 1500), next);
});

Deno.test("foldCurrent: a device clock that stepped back is followed, not ignored", () => {
  const a = cur([{ ...good(T0 + 3_600_000), seq: 7 }], () => T0);
  // Next poll (seq + 1) with the clock an hour back: taken, estimate reset.
  const b = foldCurrent(a, { ...good(T0 + 1000), seq: 8 }, T0 + 1000);
  assert.equal(b?.msg.seq, 8);
  assert.equal(valueView(b, T0 + 1500, 1000, ON).kind, "fresh");
  // A restarted poller (seq 1) with an older clock: taken as well.
  const c = foldCurrent(a, { ...good(T0 - 5000), seq: 1 }, T0 + 2000);
  assert.equal(c?.msg.seq, 1);
});

Deno.test("freshness by the message's ts, device clock skew reported, not stale", () => {
  // Device clock an hour behind the browser, messages delivered at once.
  const skewed = cur(
    run(T0 - 3_600_000, 5, 1000),
    (m) => Date.parse(m.ts) + 3_600_000 + 3,
  );
  const v = valueView(skewed, T0 + 4000 + 500, 1000, ON);
  assert.equal(v.kind, "fresh");
  assert.ok(v.kind === "fresh" && v.skewMs === -3_600_003);
  assert.match(
    qualityText(v, T0),
    /; device clock 1 h 00 min behind this browser$/,
  );
  // Small skew is not mentioned.
  const near = cur(run(T0, 3, 1000), (m) => Date.parse(m.ts) + 40);
  assert.equal(valueView(near, T0 + 2100, 1000, ON).kind, "fresh");
  assert.doesNotMatch(
    qualityText(valueView(near, T0 + 2100, 1000, ON), T0),
    /clock/,
  );
  // A message delivered 10 s late (same skew as its peers) is stale by its
  // ts, though it has only just arrived.
  const late = foldCurrent(
    near,
    { ...good(T0 + 3000), seq: 4 },
    T0 + 3000 + 40 + 10_000,
  );
  const lv = valueView(late, T0 + 13_050, 1000, ON);
  assert.equal(lv.kind, "stale");
  assert.ok(lv.kind === "stale" && Math.abs(lv.ageMs - 10_010) <= 1);
});

Deno.test("staleTickMs: every second, or every poll interval when faster", () => {
  assert.equal(staleTickMs(1000), 1000);
  assert.equal(staleTickMs(5000), 1000);
  assert.equal(staleTickMs(250), 250);
  assert.equal(staleTickMs(50), 50);
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

Deno.test("formatting: numbers, durations, local time, plurals", () => {
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
  assert.equal(plural(0, "event"), "0 events");
  assert.equal(plural(1, "event"), "1 event");
  assert.equal(plural(2, "event"), "2 events");
});

Deno.test("formatWhen: time of day today, the date on any other day", () => {
  const at = (mo: number, day: number, h: number, mi = 0, s = 0) =>
    new Date(2026, mo, day, h, mi, s).getTime();
  const now = at(5, 15, 12);
  assert.equal(formatWhen(at(5, 15, 0, 0, 1), now), "00:00:01");
  assert.equal(formatWhen(at(5, 15, 23, 59, 59), now), "23:59:59");
  assert.equal(formatWhen(at(5, 14, 23, 59, 59), now), "2026-06-14 23:59:59");
  assert.equal(formatWhen(at(0, 2, 3, 4, 5), now), "2026-01-02 03:04:05");
  // Same day and month a year earlier is not today.
  const lastYear = new Date(2025, 5, 15, 12).getTime();
  assert.equal(formatWhen(lastYear, now), "2025-06-15 12:00:00");
  assert.equal(formatWhen(null, now), "\u2014");
});

Deno.test("badges: green only when confirmed, grey when unknown", () => {
  const t = new Date(2026, 0, 2, 12, 3, 4).getTime();
  assert.deepEqual(
    pollerBadge(
      { connected: true, live: true, state: "online", lastOnlineMs: null },
      t,
    ),
    { tone: "good", text: "Poller: online" },
  );
  assert.deepEqual(
    pollerBadge(
      { connected: true, live: true, state: "offline", lastOnlineMs: t },
      t,
    ),
    { tone: "bad", text: "Poller: offline" },
  );
  // Broker lost: the old "online" is not confirmed any more.
  assert.deepEqual(
    pollerBadge(
      { connected: false, live: false, state: "online", lastOnlineMs: t },
      t + 5000,
    ),
    { tone: "unknown", text: "Poller: unknown (last online 12:03:04)" },
  );
  assert.deepEqual(
    pollerBadge(
      { connected: true, live: false, state: "unknown", lastOnlineMs: null },
      t,
    ),
    { tone: "unknown", text: "Poller: unknown" },
  );
  assert.deepEqual(alarmBadge({ connected: true, live: true, active: 0 }), {
    tone: "good",
    text: "No active alarms",
  });
  assert.deepEqual(alarmBadge({ connected: true, live: false, active: 0 }), {
    tone: "unknown",
    text: "Alarms: unknown",
  });
  assert.deepEqual(alarmBadge({ connected: true, live: false, active: 1 }), {
    tone: "alarm",
    text: "1 active alarm",
  });
  assert.deepEqual(alarmBadge({ connected: true, live: true, active: 2 }), {
    tone: "alarm",
    text: "2 active alarms",
  });
  assert.deepEqual(alarmBadge({ connected: false, live: true, active: 0 }), {
    tone: "unknown",
    text: "Alarms: unknown",
  });
  assert.equal(
    alarmBadge({ connected: false, live: false, active: 1 }).tone,
    "unknown",
  );
});

Deno.test("reject log: the first few one by one, then a count at most every 10 s", () => {
  const log = newRejectLog();
  const lines: string[] = [];
  let now = T0;
  for (let i = 0; i < 100; i++) {
    const l = noteRejection(log, "p/telemetry", "malformed JSON", now);
    if (l) lines.push(l);
    now += 10;
  }
  assert.equal(lines.length, REJECT_LOG_FIRST);
  assert.ok(
    lines.every((l) =>
      l.startsWith(
        "hmi: ignored an invalid message on p/telemetry: malformed JSON",
      )
    ),
  );
  assert.match(lines.at(-1)!, /from now on counted/);
  // Nothing more until 10 s after the last line, then one count.
  assert.equal(flushRejectLog(log, T0 + REJECT_LOG_FIRST * 10 + 5000), null);
  const summary = flushRejectLog(log, now + REJECT_LOG_EVERY_MS);
  assert.equal(
    summary,
    "hmi: ignored 95 more invalid messages (100 in all; latest on p/telemetry: malformed JSON)",
  );
  assert.equal(flushRejectLog(log, now + 3 * REJECT_LOG_EVERY_MS), null);
  // The next one after a quiet period is counted in the next summary.
  assert.equal(
    noteRejection(log, "p/status", "x", now + 3 * REJECT_LOG_EVERY_MS),
    "hmi: ignored 1 more invalid message (101 in all; latest on p/status: x)",
  );
});

Deno.test("time ticks are round and aligned to local time", () => {
  const base = Date.UTC(2026, 0, 1, 12, 0, 0);
  // 10 minutes, at most 6 ticks: every 2 min.
  let t = timeTicks(base + 17_000, base + 617_000, 6);
  assert.equal(t.step, 120_000);
  assert.deepEqual(
    t.ticks.map((v) => (v - base) / 1000),
    [120, 240, 360, 480, 600],
  );
  // 10 minutes, 10 ticks: every minute.
  assert.equal(timeTicks(base, base + 600_000, 10).step, 60_000);
  // 2 minutes, 5 ticks: every 30 s on the half minute.
  t = timeTicks(base + 1234, base + 121_234, 5);
  assert.equal(t.step, 30_000);
  assert.deepEqual(t.ticks.map((v) => (v - base) / 1000), [30, 60, 90, 120]);
  // A +05:45 zone: 5-minute ticks on the local 5 minutes.
  const tz = (5 * 60 + 45) * 60_000;
  t = timeTicks(base, base + 1_800_000, 6, tz);
  assert.equal(t.step, 300_000);
  assert.ok(t.ticks.every((v) => (v + tz) % 300_000 === 0));
  const d = new Date(2026, 0, 2, 3, 4, 0).getTime();
  assert.equal(tickLabel(d, 60_000), "03:04");
  assert.equal(tickLabel(d + 30_000, 30_000), "03:04:30");
});

Deno.test("threshold labels are moved apart, never overlapping", () => {
  assert.deepEqual(spreadLabels([100, 108], 13), [100, 113]);
  assert.deepEqual(spreadLabels([108, 100], 13), [113, 100]);
  assert.deepEqual(spreadLabels([50, 100], 13), [50, 100]);
  assert.deepEqual(spreadLabels([10, 12, 14], 13), [10, 23, 36]);
});
