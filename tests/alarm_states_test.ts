import assert from "node:assert/strict";
import {
  type AlarmRecord,
  initialAlarmRecord,
  onAck,
  onCleared,
  onRaised,
  restoreAlarmRecord,
} from "../alarm_states.ts";

const T = Date.UTC(2026, 11, 3, 18, 0, 0);
const iso = (s: number) => new Date(T + s * 1000).toISOString();
const ack = (r: AlarmRecord, s: number) => {
  const x = onAck(r, T + s * 1000);
  if (!x.ok) throw new Error(x.error);
  return x.record;
};

Deno.test("normal -> raised: active-unacknowledged with value and time", () => {
  const r = onRaised(initialAlarmRecord("temp_high"), { tsMs: T, value: 61.2 });
  assert.deepEqual(r, {
    alarm: "temp_high",
    state: "active-unacknowledged",
    value: 61.2,
    raised_ts: iso(0),
    cleared_ts: null,
    acked_ts: null,
  });
});

Deno.test("ack while active, then clear: back to normal", () => {
  let r = onRaised(initialAlarmRecord("temp_high"), { tsMs: T, value: 61 });
  r = ack(r, 10);
  assert.equal(r.state, "active-acknowledged");
  assert.equal(r.acked_ts, iso(10));
  r = onCleared(r, { tsMs: T + 20_000, value: 57 });
  assert.equal(r.state, "normal");
  assert.equal(r.cleared_ts, iso(20));
});

Deno.test("clear before ack: cleared-unacknowledged, then ack -> normal", () => {
  let r = onRaised(initialAlarmRecord("temp_high"), { tsMs: T, value: 61 });
  r = onCleared(r, { tsMs: T + 5000, value: 57.5 });
  assert.equal(r.state, "cleared-unacknowledged");
  assert.equal(r.value, 57.5);
  r = ack(r, 9);
  assert.equal(r.state, "normal");
});

Deno.test("re-raise while cleared-unacknowledged: active-unacknowledged again", () => {
  let r = onRaised(initialAlarmRecord("temp_high"), { tsMs: T, value: 61 });
  r = onCleared(r, { tsMs: T + 5000, value: 57 });
  r = onRaised(r, { tsMs: T + 9000, value: 62 });
  assert.equal(r.state, "active-unacknowledged");
  assert.equal(r.raised_ts, iso(9));
  assert.equal(r.cleared_ts, null);
});

Deno.test("nothing to acknowledge is refused with the reason", () => {
  const n = onAck(initialAlarmRecord("temp_high"), T);
  assert.deepEqual(n, {
    ok: false,
    error: "temp_high is normal, nothing to acknowledge",
  });
  const acked = ack(
    onRaised(initialAlarmRecord("temp_high"), { tsMs: T, value: 61 }),
    1,
  );
  const again = onAck(acked, T + 2000);
  assert.equal(again.ok, false);
});

Deno.test("raise while active and clear while normal change nothing", () => {
  const active = onRaised(initialAlarmRecord("temp_high"), {
    tsMs: T,
    value: 61,
  });
  assert.equal(onRaised(active, { tsMs: T + 1, value: 70 }), active);
  const normal = initialAlarmRecord("temp_high");
  assert.equal(onCleared(normal, { tsMs: T, value: 50 }), normal);
});

Deno.test("restoreAlarmRecord: an earlier run's retained state comes back as it was", () => {
  const cleared = onCleared(
    onRaised(initialAlarmRecord("temp_high"), { tsMs: T, value: 61 }),
    { tsMs: T + 9000, value: 57.5 },
  );
  const body = { ts: iso(9), device_id: 1001, alarms: [cleared] };
  assert.deepEqual(
    restoreAlarmRecord(JSON.parse(JSON.stringify(body)), "temp_high"),
    cleared,
  );
  assert.equal(restoreAlarmRecord(body, "other_alarm"), null);
});

Deno.test("restoreAlarmRecord: absent or malformed state is refused (start from normal)", () => {
  const good = onRaised(initialAlarmRecord("temp_high"), {
    tsMs: T,
    value: 61,
  });
  const bad: unknown[] = [
    null,
    {},
    { alarms: "x" },
    { alarms: [null, 3] },
    { alarms: [{ ...good, state: "raised" }] },
    { alarms: [{ ...good, value: "61" }] },
    { alarms: [{ ...good, raised_ts: "yesterday" }] },
    { alarms: [{ ...good, raised_ts: null }] },
    { alarms: [{ ...good, acked_ts: 5 }] },
  ];
  for (const b of bad) {
    assert.equal(
      restoreAlarmRecord(b as Record<string, unknown> | null, "temp_high"),
      null,
      JSON.stringify(b),
    );
  }
});
