/** The island's pure history/operator logic (hmi_model.ts) and csv.ts. */
import assert from "node:assert/strict";
import {
  activeAlarmCount,
  checkSetpointInput,
  commandAfterAnswer,
  commandAfterTimeout,
  type CommandView,
  foldJournal,
  journalCsvRows,
  mergeJournal,
  mergeTelemetry,
  newTrendStore,
  parseAlarmsState,
  parseCommandAnswer,
  trendCsvRows,
} from "../hmi_model.ts";
import {
  type AlarmEvent,
  buildAlarmEvent,
  buildBadTelemetry,
  buildTelemetry,
} from "../contract.ts";
import { toCsv } from "../csv.ts";
import { toCsv as toCsvFromHistory } from "../history.ts";

const VALUES = {
  status_bits: 1,
  power_w: 3000,
  voltage_v: 230,
  current_a: 13,
  temp_c: 55,
  soc_pct: 72,
  setpoint_w: 3000,
};
const T0 = Date.parse("2026-01-01T12:00:00.000Z");
const tel = (i: number) =>
  buildTelemetry({
    tsMs: T0 + i * 1000,
    deviceId: 1001,
    seq: i,
    values: { ...VALUES, temp_c: 50 + i },
  });

Deno.test("mergeTelemetry: live during the fetch, then history: ordered, no duplicates, no gaps", () => {
  const s = newTrendStore();
  const now = T0 + 20_000;
  // Live messages 8..12 arrive while /api/history (0..9) is in flight.
  assert.equal(mergeTelemetry(s, [8, 9, 10, 11, 12].map(tel), now), 5);
  assert.equal(
    mergeTelemetry(s, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(tel), now),
    8,
  );
  // A redelivered live message changes nothing.
  assert.equal(mergeTelemetry(s, [tel(12)], now), 0);
  assert.deepEqual(
    s.temp.map((p) => p.x),
    [...Array(13).keys()].map((i) => T0 + i * 1000),
  );
  assert.deepEqual(
    s.temp.map((p) => p.y),
    [...Array(13).keys()].map((i) => 50 + i),
  );
  assert.equal(s.power.length, 13);
  assert.equal(s.soc.length, 13);
  assert.deepEqual(s.msgs.map((m) => m.seq), [...Array(13).keys()]);
  // Bad quality draws a gap (null), still one point.
  mergeTelemetry(s, [
    buildBadTelemetry({
      tsMs: T0 + 13_000,
      deviceId: 1001,
      seq: 13,
      error: "timeout",
    }),
  ], now);
  assert.equal(s.temp.at(-1)!.y, null);
  // The window moves: old points and their keys go; re-adding an old one is refused.
  mergeTelemetry(s, [], T0 + 5_000 + 10 * 60_000);
  assert.equal(s.temp[0].x, T0 + 5_000);
  assert.equal(s.keys.size, s.msgs.length);
  assert.equal(mergeTelemetry(s, [tel(1)], T0 + 5_000 + 10 * 60_000), 0);
  // Same ts, different seq: two messages (dedupe is by ts + seq).
  const t = newTrendStore();
  mergeTelemetry(t, [tel(1), { ...tel(1), seq: 99 }], T0 + 2000);
  assert.equal(t.msgs.length, 2);
  // Replayed messages (after a broker outage) fill the trend like any other.
  const r = newTrendStore();
  mergeTelemetry(r, [tel(1), tel(4)], T0 + 5000);
  mergeTelemetry(r, [{ ...tel(2), replayed: true }, {
    ...tel(3),
    replayed: true,
  }], T0 + 5000);
  assert.deepEqual(r.msgs.map((m) => m.seq), [1, 2, 3, 4]);
  assert.deepEqual(r.temp.map((p) => p.y), [51, 52, 53, 54]);
});

Deno.test("mergeTelemetry respects the message cap", () => {
  const s = newTrendStore({ maxMsgs: 10 });
  mergeTelemetry(s, [...Array(50).keys()].map(tel), T0 + 60_000);
  assert.equal(s.msgs.length, 10);
  assert.equal(s.msgs[0].seq, 40);
  assert.equal(s.keys.size, 10);
});

const ev = (sec: number, state: AlarmEvent["state"], value = 61): AlarmEvent =>
  buildAlarmEvent({
    tsMs: T0 + sec * 1000,
    deviceId: 1001,
    alarm: "temp_high",
    state,
    value,
    message: `${state} at ${sec}`,
  });

Deno.test("mergeJournal: history newest first + live, deduplicated; foldJournal rows", () => {
  let j = mergeJournal([], [ev(30, "cleared", 57)]); // live first
  j = mergeJournal(j, [
    ev(30, "cleared", 57),
    ev(20, "acked"),
    ev(10, "raised"),
  ]); // history
  assert.deepEqual(j.map((e) => e.state), ["cleared", "acked", "raised"]);
  j = mergeJournal(j, [ev(40, "raised", 62)]);
  assert.deepEqual(j.map((e) => e.state), [
    "raised",
    "cleared",
    "acked",
    "raised",
  ]);
  const rows = foldJournal(j);
  assert.equal(rows.length, 2);
  assert.equal(rows[0].active, true);
  assert.equal(rows[1].active, false);
  assert.equal(rows[1].clearValue, 57);
  assert.equal(
    mergeJournal([], [...Array(20).keys()].map((i) => ev(i, "raised")), 5)
      .length,
    5,
  );
});

Deno.test("parseAlarmsState accepts the poller's payload and rejects malformed ones", () => {
  const good = {
    ts: new Date(T0).toISOString(),
    device_id: 1001,
    alarms: [{
      alarm: "temp_high",
      state: "active-unacknowledged",
      value: 61.2,
      raised_ts: new Date(T0).toISOString(),
      cleared_ts: null,
      acked_ts: null,
    }],
  };
  assert.ok(parseAlarmsState(JSON.stringify(good)).ok);
  const initial = {
    ...good,
    device_id: null,
    alarms: [{
      ...good.alarms[0],
      state: "normal",
      value: null,
      raised_ts: null,
    }],
  };
  assert.ok(parseAlarmsState(JSON.stringify(initial)).ok);
  for (
    const bad of [
      "{",
      "[]",
      { ...good, ts: "now" },
      { ...good, alarms: {} },
      { ...good, alarms: [{ ...good.alarms[0], state: "raised" }] },
      { ...good, alarms: [{ ...good.alarms[0], value: "61" }] },
      { ...good, alarms: [{ ...good.alarms[0], acked_ts: 5 }] },
    ]
  ) {
    assert.equal(
      parseAlarmsState(typeof bad === "string" ? bad : JSON.stringify(bad)).ok,
      false,
      JSON.stringify(bad),
    );
  }
});

Deno.test("activeAlarmCount: retained state wins unless the journal is newer", () => {
  const state = (sec: number, s: string) => ({
    ts: new Date(T0 + sec * 1000).toISOString(),
    device_id: 1001,
    alarms: [{
      alarm: "temp_high",
      state: s as "normal",
      value: 61,
      raised_ts: null,
      cleared_ts: null,
      acked_ts: null,
    }],
  });
  const raisedRows = foldJournal([ev(10, "raised")]);
  // Fresh page: no events yet, retained state says active.
  assert.equal(activeAlarmCount(state(10, "active-acknowledged"), []), 1);
  // The event arrived, the state not yet.
  assert.equal(activeAlarmCount(state(5, "normal"), raisedRows), 1);
  // Cleared but unacknowledged is not active.
  assert.equal(
    activeAlarmCount(state(20, "cleared-unacknowledged"), raisedRows),
    0,
  );
  assert.equal(activeAlarmCount(null, raisedRows), 1);
  assert.equal(activeAlarmCount(null, []), 0);
});

Deno.test("operator commands: input check, answers matched by id, timeout", () => {
  assert.deepEqual(checkSetpointInput(" 4000 ", 0, 5000), {
    ok: true,
    value: 4000,
  });
  assert.deepEqual(checkSetpointInput("0", 0, 5000), { ok: true, value: 0 });
  assert.deepEqual(checkSetpointInput("5000", 0, 5000), {
    ok: true,
    value: 5000,
  });
  for (const bad of ["", "5001", "-1", "12.5", "1e3", "abc", "0x10"]) {
    assert.equal(checkSetpointInput(bad, 0, 5000).ok, false, bad);
  }
  assert.match(
    (checkSetpointInput("6000", 0, 5000) as { error: string }).error,
    /0\.\.5000/,
  );

  const pending: CommandView = {
    kind: "pending",
    id: "a",
    sentMs: 0,
    value: 4000,
  };
  assert.deepEqual(commandAfterAnswer(pending, { id: "b", ok: true }), pending);
  assert.deepEqual(
    commandAfterAnswer(pending, { id: "a", ok: true, value: 4000 }),
    { kind: "accepted", id: "a", value: 4000 },
  );
  assert.deepEqual(
    commandAfterAnswer(pending, {
      id: "a",
      ok: false,
      error: "value out of range 0..5000",
    }),
    { kind: "rejected", id: "a", error: "value out of range 0..5000" },
  );
  assert.deepEqual(commandAfterTimeout(pending, "a"), {
    kind: "timeout",
    id: "a",
  });
  assert.deepEqual(commandAfterTimeout(pending, "b"), pending);
  // A late answer still shows.
  assert.equal(
    commandAfterAnswer({ kind: "timeout", id: "a" }, { id: "a", ok: true })
      .kind,
    "accepted",
  );

  assert.deepEqual(
    parseCommandAnswer('{"id":"a","ok":false,"error":"x","ts":"t"}'),
    { id: "a", ok: false, value: undefined, error: "x" },
  );
  assert.equal(parseCommandAnswer('{"id":"a"}'), null);
  assert.equal(parseCommandAnswer("nope"), null);
  assert.equal(parseCommandAnswer('{"id":5,"ok":true}'), null);
});

Deno.test("CSV rows of the trend window and the journal; toCsv shared with history.ts", () => {
  assert.equal(toCsvFromHistory, toCsv);
  const t = trendCsvRows([
    tel(1),
    buildBadTelemetry({
      tsMs: T0,
      deviceId: 1001,
      seq: 2,
      error: "=cmd|timeout",
    }),
  ]);
  const csv = toCsv(t.header, t.rows).split("\r\n");
  assert.equal(
    csv[0],
    "ts,device_id,seq,quality,temp_c,power_w,soc_pct,voltage_v,current_a,setpoint_w,status_bits,error",
  );
  assert.equal(
    csv[1],
    "2026-01-01T12:00:01.000Z,1001,1,good,51,3000,72,230,13,3000,1,",
  );
  assert.equal(
    csv[2],
    "2026-01-01T12:00:00.000Z,1001,2,bad,,,,,,,,'=cmd|timeout",
  );
  const j = journalCsvRows([
    { ...ev(1, "raised"), message: 'a "quoted", text' },
    { ...ev(2, "acked"), value: NaN },
  ]);
  const jc = toCsv(j.header, j.rows).split("\r\n");
  assert.equal(jc[0], "ts,device_id,alarm,state,value,message");
  assert.equal(
    jc[1],
    '2026-01-01T12:00:01.000Z,1001,temp_high,raised,61,"a ""quoted"", text"',
  );
  assert.equal(
    jc[2],
    "2026-01-01T12:00:02.000Z,1001,temp_high,acked,,acked at 2",
  );
});
