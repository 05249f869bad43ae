import assert from "node:assert/strict";
import { alarmEvent, VALUES as values } from "./_fixtures.ts";
import {
  buildAlarmEvent,
  buildBadTelemetry,
  buildTelemetry,
} from "../contract.ts";
import {
  EVICT_ROWS_PER_CALL,
  fairEviction,
  History,
  parseLimit,
  parseMinutes,
  toCsv,
} from "../history.ts";
import { waitFor } from "./_support.ts";
import { DatabaseSync } from "node:sqlite";

const T = Date.UTC(2026, 11, 3, 18, 0, 0);
const tel = (tsMs: number, seq: number, deviceId = 1001) =>
  buildTelemetry({ tsMs, deviceId, seq, values });
const alarm = (tsMs: number) => alarmEvent(tsMs);

Deno.test("records telemetry and alarms and reads them back in order", () => {
  const h = new History({ path: ":memory:", now: () => T + 60_000 });
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
      h.recordAlarm(alarmEvent(T + i * 10_000, { state }));
    }
    assert.deepEqual(h.recentAlarms(2).map((a) => a.ts), [
      new Date(T + 20_000).toISOString(),
      new Date(T + 10_000).toISOString(),
    ]);
  } finally {
    h.close();
  }
});

Deno.test("retention and the alarm row cap bound the tables", () => {
  const h = new History({
    path: ":memory:",
    telemetryRetentionMs: 4_000,
    alarmRetentionMs: 60_000,
    maxAlarmRows: 2,
    now: () => T + 19_000,
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
  const h = new History({ path: ":memory:", now: () => T + 60_000 });
  try {
    for (let i = 0; i < 50; i++) {
      h.recordTelemetry(
        buildTelemetry({ tsMs: T + i * 1000, deviceId: 1001, seq: i, values }),
      );
    }
    assert.deepEqual(h.telemetrySince(0, 3).map((t) => t.seq), [47, 48, 49]);
    assert.equal(h.telemetrySince(0).length, 50);
    // The API says when older rows of the window were left out.
    const w = h.telemetryWindow(0, 3);
    assert.equal(w.truncated, true);
    assert.deepEqual(w.rows.map((t) => t.seq), [47, 48, 49]);
    assert.equal(h.telemetryWindow(0, 50).truncated, false);
    assert.equal(h.telemetryWindow(T + 47_000, 3).truncated, false);
  } finally {
    h.close();
  }
});

Deno.test("a message dated in the future is refused and erases nothing (server clock prunes)", () => {
  const h = new History({
    path: ":memory:",
    telemetryRetentionMs: 60_000,
    now: () => T,
  });
  try {
    for (let i = 0; i < 999; i++) {
      assert.deepEqual(h.recordTelemetry(tel(T - 30_000 + i, i)), { ok: true });
    }
    h.recordAlarm(alarm(T - 1000));
    // Within the allowed clock skew (5 min): recorded. As the 1000th write it
    // prunes, against the server's clock, not its own ts (T + 4 min would
    // have made every other row older than the 1-minute retention).
    assert.equal(h.recordTelemetry(tel(T + 4 * 60_000, 999)).ok, true);
    assert.deepEqual(h.counts(), { telemetry: 1000, alarms: 1 });
    // Dated 2100: refused, with the reason, and not stored.
    const r = h.recordTelemetry(tel(Date.UTC(2100, 0, 1), 1000));
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.match(r.error, /s ahead of the server clock \(at most 300 s\)/);
    }
    const a = h.recordAlarm(alarm(T + 6 * 60_000));
    assert.equal(a.ok, false);
    h.prune();
    assert.deepEqual(h.counts(), { telemetry: 1000, alarms: 1 });
  } finally {
    h.close();
  }
});

Deno.test("alarm writes prune too: old alarm events expire without any telemetry", () => {
  let now = T;
  const h = new History({
    path: ":memory:",
    alarmRetentionMs: 60_000,
    now: () => now,
  });
  try {
    for (let i = 0; i < 10; i++) h.recordAlarm(alarm(T - i));
    now = T + 120_000;
    for (let i = 0; i < 990; i++) h.recordAlarm(alarm(now));
    assert.equal(h.counts().alarms, 990, "the 10 expired events pruned");
  } finally {
    h.close();
  }
});

Deno.test("pruning at open and on a timer, against the server clock", async () => {
  const dir = await Deno.makeTempDir({ prefix: "history-prune-" });
  const path = `${dir}/h.db`;
  try {
    const a = new History({ path, now: () => T });
    for (let i = 0; i < 5; i++) a.recordTelemetry(tel(T - i, i));
    a.close();
    // Reopened 8 days later: a week's retention has passed for all of them.
    const b = new History({ path, now: () => T + 8 * 86_400_000 });
    assert.equal(b.counts().telemetry, 0);
    b.close();

    let now = T;
    const c = new History({ path, now: () => now, pruneEveryMs: 10 });
    try {
      for (let i = 0; i < 5; i++) c.recordTelemetry(tel(T - i, i));
      assert.equal(c.counts().telemetry, 5);
      now = T + 8 * 86_400_000; // no further writes: only the timer can prune
      await waitFor("timer pruned", () => c.counts().telemetry === 0, 5000, 10);
    } finally {
      c.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("size cap: the database stays under maxBytes, the device with the most rows pays", () => {
  const maxBytes = 512 * 1024;
  const logs: string[] = [];
  const h = new History({
    path: ":memory:",
    maxBytes,
    now: () => T,
    log: (l) => logs.push(l),
  });
  try {
    // The single device: 1500 rows (~400 KB); five fleet devices: 200 each.
    for (let i = 0; i < 1500; i++) h.recordTelemetry(tel(T - 3_000_000 + i, i));
    for (let d = 0; d < 5; d++) {
      for (let i = 0; i < 200; i++) {
        h.recordTelemetry(tel(T - 1000 + i, i, 2000 + d), `inv-${d}`);
      }
    }
    const r = h.prune();
    assert.ok(r.evicted > 0, "evicted at the cap");
    assert.equal(r.evictedDevices, 1);
    assert.ok(h.usedBytes() <= maxBytes, `${h.usedBytes()} > ${maxBytes}`);
    for (let d = 0; d < 5; d++) {
      assert.equal(h.telemetrySince(0, 10_000, `inv-${d}`).length, 200);
    }
    // The single device kept its newest rows, contiguous.
    const single = h.telemetrySince(0, 10_000).map((t) => t.seq);
    assert.ok(single.length < 1500 && single.length > 200, `${single.length}`);
    assert.equal(single.at(-1), 1499);
    assert.equal(single[0], 1500 - single.length);
    // Nothing more to do below the cap.
    assert.equal(h.prune().evicted, 0);
  } finally {
    h.close();
  }
});

Deno.test("bytes per telemetry row (README's disk figures)", () => {
  const h = new History({ path: ":memory:", now: () => T });
  try {
    const base = h.usedBytes();
    const n = 5000;
    for (let i = 0; i < n; i++) {
      h.recordTelemetry(
        buildTelemetry({
          tsMs: T - n * 1000 + i * 1000,
          deviceId: 1001,
          seq: i,
          values: { ...values, temp_c: 50 + (i % 100) / 10 },
        }),
      );
    }
    const perRow = (h.usedBytes() - base) / n;
    console.log(`history: ${perRow.toFixed(0)} bytes per telemetry row`);
    assert.ok(perRow > 200 && perRow < 350, `${perRow} bytes per row`);
  } finally {
    h.close();
  }
});

Deno.test("fairEviction takes from the largest devices down to a common level", () => {
  const m = (o: Record<string, number>) => new Map(Object.entries(o));
  const plan = (o: Record<string, number>, k: number) =>
    Object.fromEntries(fairEviction(m(o), k));
  // One big device pays alone while it is above the others.
  assert.deepEqual(plan({ a: 1000, b: 10, c: 10 }, 100), { a: 100 });
  // Down to a common level across the largest ones.
  assert.deepEqual(plan({ a: 100, b: 90, c: 10 }, 30), { a: 20, b: 10 });
  // Exactly `excess` rows, remainder one each from the largest at the level.
  const p = plan({ a: 50, b: 50, c: 50 }, 10);
  assert.equal(Object.values(p).reduce((x, y) => x + y, 0), 10);
  assert.deepEqual(Object.values(p).sort(), [3, 3, 4]);
  // Everything, nothing, and the single device's null key.
  assert.deepEqual(plan({ a: 5, b: 3 }, 100), { a: 5, b: 3 });
  assert.deepEqual(plan({ a: 5 }, 0), {});
  const withNull = fairEviction(
    new Map<string | null, number>([[null, 9], ["x", 1]]),
    4,
  );
  assert.deepEqual([...withNull], [[null, 4]]);
});

Deno.test("recording at the size cap evicts in bounded steps, fairly, and stays at the cap", () => {
  const maxBytes = 1024 * 1024;
  const logs: string[] = [];
  let now = T - 3_600_000;
  const h = new History({
    path: ":memory:",
    maxBytes,
    pruneEveryMs: 0,
    now: () => now,
    log: (l) => logs.push(l),
  });
  try {
    const devices = 300;
    let peak = 0;
    for (let i = 0; i < 20_000; i++) {
      const d = i % devices;
      if (d === 0) now += 1000;
      h.recordTelemetry(tel(now, i, 2000 + d), `inv-${d}`);
      if (i % 500 === 0) peak = Math.max(peak, h.usedBytes());
    }
    // Many eviction calls, each bounded in rows and devices.
    const steps = logs.map((l) =>
      /evicted the oldest (\d+) telemetry rows of (\d+) device/.exec(l)
    ).filter((m) => m !== null);
    assert.ok(steps.length > 5, logs.join("\n"));
    for (const [, rows, devs] of steps) {
      assert.ok(Number(rows) <= EVICT_ROWS_PER_CALL, rows);
      assert.ok(Number(devs) <= 100, devs);
    }
    // Never more than one check interval (1000 rows, ~0.3 MB) over the cap.
    assert.ok(peak <= maxBytes + 400 * 1024, `peak ${peak}`);
    // Fair over the calls: every device kept nearly the same number of rows.
    const kept = Array.from(
      { length: devices },
      (_, d) => h.telemetrySince(0, 100_000, `inv-${d}`).length,
    );
    assert.ok(
      Math.max(...kept) - Math.min(...kept) <= 10,
      `kept ${Math.min(...kept)}..${Math.max(...kept)}`,
    );
    assert.equal(kept.reduce((a, b) => a + b, 0), h.counts().telemetry);
  } finally {
    h.close();
  }
});

Deno.test("per-device row counts: kept by triggers through writes, retention and eviction; counted once for a database from before them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "history-counts-" });
  const path = `${dir}/history.db`;
  const actual = () => {
    const db = new DatabaseSync(path);
    try {
      return Object.fromEntries(
        db.prepare(
          "SELECT coalesce(device, '-') AS d, count(*) AS n FROM telemetry GROUP BY device",
        ).all().map((r) => [r.d as string, Number(r.n)]),
      );
    } finally {
      db.close();
    }
  };
  const kept = (h: History) => {
    const n = h.counts().telemetry;
    h.close();
    return n;
  };
  try {
    let h = new History({ path, now: () => T, pruneEveryMs: 0 });
    for (let i = 0; i < 30; i++) h.recordTelemetry(tel(T - 100_000 + i, i));
    for (let i = 0; i < 20; i++) {
      h.recordTelemetry(tel(T - 50_000 + i, i), "inv-1");
    }
    assert.equal(kept(h), 50);
    assert.deepEqual(actual(), { "-": 30, "inv-1": 20 });

    // A database written before the counts existed: counted at open.
    const db = new DatabaseSync(path);
    db.exec(`DROP TRIGGER telemetry_rows_insert;
      DROP TRIGGER telemetry_rows_delete; DROP TABLE telemetry_rows;`);
    db.close();
    h = new History({ path, now: () => T, pruneEveryMs: 0 });
    assert.equal(h.counts().telemetry, 50);
    h.close();

    // Retention (at open) takes the single device's older rows: counted.
    h = new History({
      path,
      now: () => T,
      telemetryRetentionMs: 75_000,
      pruneEveryMs: 0,
    });
    assert.equal(kept(h), 20);
    assert.deepEqual(actual(), { "inv-1": 20 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
