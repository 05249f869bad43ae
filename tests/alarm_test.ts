import assert from "node:assert/strict";
import {
  alarmMessage,
  type AlarmParams,
  alarmParamsError,
  type AlarmState,
  DEFAULT_ALARM_PARAMS,
  evaluateAlarm,
  INITIAL_ALARM_STATE,
} from "../alarm.ts";

/** Feed [tsMs, value] samples; return the events with their timestamps. */
function run(
  samples: [number, number | null][],
  start: AlarmState = INITIAL_ALARM_STATE,
  params: AlarmParams = DEFAULT_ALARM_PARAMS,
) {
  let state = start;
  const events: string[] = [];
  for (const [tsMs, value] of samples) {
    const r = evaluateAlarm(state, { tsMs, value }, params);
    state = r.state;
    if (r.event) {
      events.push(`${r.event.state}@${r.event.tsMs}=${r.event.value}`);
    }
  }
  return { state, events };
}

const every = (from: number, to: number, step: number, v: number) => {
  const out: [number, number][] = [];
  for (let t = from; t <= to; t += step) out.push([t, v]);
  return out;
};

const ACTIVE: AlarmState = { active: true, pendingSinceMs: null };

Deno.test("raises only after more than 5000 ms above 60 C", () => {
  const { events } = run(every(0, 6000, 1000, 61));
  assert.deepEqual(events, ["raised@6000=61"]);
});

Deno.test("exactly 5000 ms above 60 C is not enough", () => {
  const { state, events } = run([[0, 61], [5000, 61]]);
  assert.deepEqual(events, []);
  assert.equal(state.active, false);
  assert.equal(state.pendingSinceMs, 0);
  assert.deepEqual(run([[0, 61], [5001, 61]]).events, ["raised@5001=61"]);
});

Deno.test("60.0 C itself is not above the threshold", () => {
  assert.deepEqual(run(every(0, 10_000, 1000, 60)).events, []);
});

Deno.test("a dip to 59 restarts the raise timer", () => {
  const samples: [number, number][] = [
    ...every(0, 4000, 1000, 61),
    [5000, 59],
    ...every(6000, 11_000, 1000, 61),
  ];
  assert.deepEqual(run(samples).events, []);
  assert.deepEqual(run([...samples, [11_001, 61.5]]).events, [
    "raised@11001=61.5",
  ]);
});

Deno.test("clears only after more than 3000 ms below 58 C", () => {
  assert.deepEqual(run([[0, 57], [3000, 57]], ACTIVE).events, []);
  assert.deepEqual(run([[0, 57], [3001, 57.9]], ACTIVE).events, [
    "cleared@3001=57.9",
  ]);
});

Deno.test("the 58..60 band holds state either way", () => {
  const band = [
    ...every(0, 60_000, 1000, 59),
    [61_000, 58] as [number, number],
    [62_000, 60] as [number, number],
  ];
  const fromNormal = run(band);
  assert.deepEqual(fromNormal.events, []);
  assert.equal(fromNormal.state.active, false);
  const fromActive = run(band, ACTIVE);
  assert.deepEqual(fromActive.events, []);
  assert.equal(fromActive.state.active, true);
});

Deno.test("a value in the band resets a pending clear", () => {
  const samples: [number, number][] = [[0, 57], [2000, 57], [2500, 59], [
    3500,
    57,
  ], [6000, 57]];
  assert.deepEqual(run(samples, ACTIVE).events, []);
  assert.deepEqual(run([...samples, [6501, 57]], ACTIVE).events, [
    "cleared@6501=57",
  ]);
});

Deno.test("bad samples break continuity but never clear an active alarm", () => {
  // Raise pending interrupted by a bad sample: timer restarts.
  const pending = run([[0, 61], [4000, 61], [4500, null], [5000, 61], [
    9000,
    61,
  ]]);
  assert.deepEqual(pending.events, []);
  assert.equal(pending.state.pendingSinceMs, 5000);
  // Active alarm through a long outage stays active.
  const outage = run(
    every(0, 120_000, 1000, NaN).map(([t]) => [t, null]),
    ACTIVE,
  );
  assert.equal(outage.state.active, true);
  assert.deepEqual(outage.events, []);
  // Clear pending interrupted by a bad sample restarts too.
  const clearing = run([[0, 57], [2000, null], [3001, 57], [6001, 57]], ACTIVE);
  assert.deepEqual(clearing.events, []);
  assert.deepEqual(
    run([[0, 57], [2000, null], [3001, 57], [6002, 57]], ACTIVE).events,
    ["cleared@6002=57"],
  );
});

Deno.test("full cycle: raise, hold, clear, raise again", () => {
  const samples: [number, number][] = [
    ...every(0, 6000, 1000, 65),
    ...every(7000, 20_000, 1000, 59),
    ...every(21_000, 25_000, 1000, 55),
    ...every(26_000, 32_000, 1000, 62),
  ];
  assert.deepEqual(run(samples).events, [
    "raised@6000=65",
    "cleared@25000=55",
    "raised@32000=62",
  ]);
});

Deno.test("thresholds and delays are parameters", () => {
  const p = {
    raiseAboveC: 40,
    raiseDelayMs: 100,
    clearBelowC: 30,
    clearDelayMs: 50,
  };
  assert.deepEqual(
    run([[0, 41], [101, 41], [200, 29], [251, 29]], INITIAL_ALARM_STATE, p)
      .events,
    [
      "raised@101=41",
      "cleared@251=29",
    ],
  );
  assert.equal(alarmParamsError(p), null);
  assert.match(alarmParamsError({ ...p, clearBelowC: 50 })!, /clear threshold/);
  assert.match(alarmParamsError({ ...p, raiseDelayMs: -1 })!, /negative/);
  assert.match(alarmParamsError({ ...p, raiseAboveC: NaN })!, /finite/);
});

Deno.test("the rule is pure: same input, same output, input untouched", () => {
  const s: AlarmState = Object.freeze({ active: false, pendingSinceMs: 100 });
  const a = evaluateAlarm(s, { tsMs: 5200, value: 70 });
  const b = evaluateAlarm(s, { tsMs: 5200, value: 70 });
  assert.deepEqual(a, b);
  assert.equal(a.event?.state, "raised");
  assert.deepEqual(s, { active: false, pendingSinceMs: 100 });
});

Deno.test("alarm messages name the value, threshold and delay", () => {
  assert.equal(
    alarmMessage({ state: "raised", tsMs: 0, value: 61.3 }),
    "temperature 61.3 C above 60 C for more than 5 s",
  );
  assert.equal(
    alarmMessage({ state: "cleared", tsMs: 0, value: 57.2 }),
    "temperature 57.2 C below 58 C for more than 3 s",
  );
});
