import assert from "node:assert/strict";
import {
  applyWrite,
  checkWrite,
  initialState,
  modelParams,
  powerLimitW,
  registerWords,
  seededRandom,
  type SimState,
  statusBits,
  stepModel,
} from "../sim_model.ts";
import {
  ADDR,
  decodeStatusBits,
  DEVICE_ID,
  fromRaw,
  POLL_BLOCK,
  REGISTER_MAP,
  REGISTER_SPACE,
  scaleRegisters,
} from "../registers.ts";

const quiet = modelParams({ noise: 0 });
const never = () => {
  throw new Error("rand must not be called with noise 0");
};

/** Run `seconds` of simulated time in steps of `dt`. */
function run(
  s: SimState,
  seconds: number,
  p = quiet,
  dt = 0.1,
  rand: () => number = never,
): SimState {
  const n = Math.round(seconds / dt);
  for (let i = 0; i < n; i++) s = stepModel(s, dt, p, rand);
  return s;
}

Deno.test("boots at steady state: 3000 W, 55 C, no alarm bits", () => {
  const s = initialState(quiet);
  assert.equal(s.setpoint_w, 3000);
  assert.equal(s.power_w, 3000);
  assert.equal(s.temp_c, 55);
  assert.equal(s.voltage_v, 230);
  assert.deepEqual(decodeStatusBits(statusBits(s)), ["running"]);
  // And it stays there.
  const later = run(s, 120);
  assert.ok(Math.abs(later.temp_c - 55) < 1e-9, `${later.temp_c}`);
  assert.ok(Math.abs(later.power_w - 3000) < 1e-9);
});

Deno.test("power follows the setpoint within a couple of seconds", () => {
  let s = applyWrite(initialState(quiet), ADDR.setpoint, [4000]);
  s = run(s, 2);
  assert.ok(Math.abs(s.power_w - 4000) < 20, `power ${s.power_w}`);
  s = run(applyWrite(s, ADDR.setpoint, [0]), 10);
  assert.equal(s.power_w, 0);
  assert.equal(statusBits(s) & 1, 0, "running bit off at 0 W");
});

Deno.test("4000 W tends to 65 C and back to 3000 W returns to 55 C", () => {
  let s = applyWrite(initialState(quiet), ADDR.setpoint, [4000]);
  s = run(s, 10); // one time constant: about 63 % of the way
  assert.ok(s.temp_c > 60 && s.temp_c < 62.5, `after 10 s ${s.temp_c}`);
  s = run(s, 120);
  assert.ok(Math.abs(s.temp_c - 65) < 0.01, `after 130 s ${s.temp_c}`);
  assert.ok(decodeStatusBits(statusBits(s)).includes("over_temp"));
  s = run(applyWrite(s, ADDR.setpoint, [3000]), 150);
  assert.ok(Math.abs(s.temp_c - 55) < 0.01, `back ${s.temp_c}`);
  assert.ok(!decodeStatusBits(statusBits(s)).includes("over_temp"));
});

Deno.test("tauS sets the temperature lag", () => {
  const fast = modelParams({ noise: 0, tauS: 1 });
  const s = run(applyWrite(initialState(fast), ADDR.setpoint, [4000]), 8, fast);
  assert.ok(Math.abs(s.temp_c - 65) < 0.05, `${s.temp_c}`);
});

Deno.test("derating limits power while temperature is above 70 C", () => {
  assert.equal(powerLimitW(70, quiet), 5000);
  assert.ok(powerLimitW(72, quiet) < 5000);
  // Hot device: output is cut and the derating bit is set.
  let s: SimState = { ...initialState(quiet), temp_c: 80, setpoint_w: 5000 };
  s = run(s, 1);
  assert.ok(s.derating);
  assert.ok(decodeStatusBits(statusBits(s)).includes("derating"));
  assert.ok(s.power_w < 3000, `power ${s.power_w}`);
  // Full setpoint for a long time settles just above 70 C, below 5000 W.
  s = run(applyWrite(initialState(quiet), ADDR.setpoint, [5000]), 600);
  assert.ok(s.temp_c > 70 && s.temp_c < 71.5, `temp ${s.temp_c}`);
  assert.ok(s.power_w < 5000 && s.power_w > 4000, `power ${s.power_w}`);
  assert.ok(s.derating);
  // Lower setpoint: cools below 70, derating clears.
  s = run(applyWrite(s, ADDR.setpoint, [3000]), 120);
  assert.ok(!s.derating);
  assert.ok(Math.abs(s.power_w - 3000) < 1);
});

Deno.test("SOC stays in 0..100 over a long run and cycles", () => {
  const p = modelParams({ noise: 1 });
  const rand = seededRandom(42);
  let s = applyWrite(initialState(p), ADDR.setpoint, [5000]);
  let min = 100, max = 0, lowSeen = false, fullSeen = false;
  let charges = 0;
  // 48 simulated hours in 1 s steps.
  for (let i = 0; i < 48 * 3600; i++) {
    const was = s.charging;
    s = stepModel(s, 1, p, rand);
    if (!was && s.charging) charges++;
    min = Math.min(min, s.soc_pct);
    max = Math.max(max, s.soc_pct);
    const bits = decodeStatusBits(statusBits(s));
    if (bits.includes("low_soc")) {
      lowSeen = true;
      assert.ok(s.soc_pct < 20);
    }
    if (bits.includes("soc_full")) fullSeen = true;
  }
  assert.ok(min >= 0 && max <= 100, `${min}..${max}`);
  assert.ok(min > 5, `never near empty: min ${min}`);
  assert.ok(lowSeen && fullSeen);
  assert.ok(charges >= 3, `recharged ${charges} times`);
});

Deno.test("SOC discharges slowly while producing, holds at 0 W", () => {
  let s = run(initialState(quiet), 3600);
  // 3000 W for one hour from a 10 kWh battery: 72 % -> 42 %.
  assert.ok(Math.abs(s.soc_pct - 42) < 0.01, `${s.soc_pct}`);
  s = run(applyWrite(s, ADDR.setpoint, [0]), 60);
  const held = s.soc_pct;
  s = run(s, 3600);
  assert.equal(s.soc_pct, held);
});

Deno.test("current = power / voltage", () => {
  const p = modelParams({ noise: 2 });
  const rand = seededRandom(7);
  let s = initialState(p);
  for (let i = 0; i < 500; i++) {
    s = stepModel(s, 0.1, p, rand);
    assert.ok(Math.abs(s.current_a - s.power_w / s.voltage_v) < 1e-9);
    assert.ok(Math.abs(s.voltage_v - 230) <= 10);
  }
  const words = registerWords(s, DEVICE_ID);
  assert.equal(words[ADDR.current], Math.round(s.power_w / s.voltage_v * 100));
});

Deno.test("noise 0 is deterministic; noise > 0 varies with the seed", () => {
  const a = run(initialState(quiet), 300, quiet, 0.1, never);
  const b = run(initialState(quiet), 300, quiet, 0.1, () => 0.123);
  assert.deepEqual(a, b);
  const noisy = modelParams({ noise: 1 });
  const n1 = run(initialState(noisy), 30, noisy, 0.1, seededRandom(1));
  const n1b = run(initialState(noisy), 30, noisy, 0.1, seededRandom(1));
  const n2 = run(initialState(noisy), 30, noisy, 0.1, seededRandom(2));
  assert.deepEqual(n1, n1b, "same seed, same run");
  assert.notDeepEqual(n1, n2);
  assert.ok(Math.abs(n1.voltage_v - 230) < 5 && n1.voltage_v !== 230);
  assert.ok(Math.abs(n1.temp_c - 55) < 1);
});

Deno.test("large time steps stay stable", () => {
  const s = stepModel(
    applyWrite(initialState(quiet), ADDR.setpoint, [4000]),
    3600,
    quiet,
    never,
  );
  assert.ok(Math.abs(s.temp_c - 65) < 0.01);
  assert.ok(s.soc_pct >= 0 && s.soc_pct <= 100);
  assert.equal(stepModel(s, 0, quiet, never), s);
  assert.equal(stepModel(s, -1, quiet, never), s);
});

Deno.test("register words encode per registers.ts", () => {
  const s: SimState = {
    ...initialState(quiet),
    power_w: 2999.6,
    voltage_v: 231.26,
    current_a: 5.128,
    temp_c: 62.54,
    soc_pct: 19.94,
    setpoint_w: 3000,
  };
  const words = registerWords(s, 1007);
  assert.equal(words.length, REGISTER_SPACE);
  assert.equal(words[0], 1007);
  assert.equal(words[ADDR.power], 3000);
  assert.equal(words[ADDR.voltage], 2313);
  assert.equal(words[ADDR.current], 513);
  assert.equal(words[ADDR.temp], 625);
  assert.equal(words[ADDR.soc], 199);
  assert.equal(words[ADDR.setpoint], 3000);
  assert.deepEqual(
    decodeStatusBits(words[ADDR.statusBits]),
    ["running", "low_soc", "over_temp"],
  );
  for (let a = 8; a < REGISTER_SPACE; a++) assert.equal(words[a], 0);
  for (const w of words) assert.ok(Number.isInteger(w) && w >= 0 && w < 65536);
  // The poller's decoding gives back the engineering values.
  const { deviceId, values } = scaleRegisters(
    words.slice(POLL_BLOCK.start, POLL_BLOCK.start + POLL_BLOCK.count),
  );
  assert.equal(deviceId, 1007);
  assert.equal(values.temp_c, 62.5);
  assert.equal(values.voltage_v, 231.3);
  assert.equal(values.current_a, 5.13);
  const tempDef = REGISTER_MAP[ADDR.temp];
  assert.equal(fromRaw(tempDef, words[ADDR.temp]), 62.5);
});

Deno.test("status bits: low_soc below 20 %, soc_full at 95 %", () => {
  const base = initialState(quiet);
  const bits = (soc: number) =>
    decodeStatusBits(statusBits({ ...base, soc_pct: soc }));
  assert.ok(bits(19.9).includes("low_soc"));
  assert.ok(!bits(20).includes("low_soc"));
  assert.ok(!bits(19.96).includes("low_soc"), "reads 20.0 %: no low_soc");
  const temp = (t: number) =>
    decodeStatusBits(statusBits({ ...base, temp_c: t }));
  assert.ok(!temp(60.04).includes("over_temp"), "reads 60.0 C");
  assert.ok(temp(60.1).includes("over_temp"));
  assert.ok(bits(95).includes("soc_full"));
  assert.ok(!bits(94.9).includes("soc_full"));
});

Deno.test("write checks: only the setpoint, only 0..5000, all or nothing", () => {
  assert.equal(checkWrite(ADDR.setpoint, [0]), 0);
  assert.equal(checkWrite(ADDR.setpoint, [5000]), 0);
  assert.equal(checkWrite(ADDR.setpoint, [5001]), 3);
  assert.equal(checkWrite(ADDR.setpoint, [65535]), 3);
  for (let a = 0; a < REGISTER_SPACE; a++) {
    if (a !== ADDR.setpoint) assert.equal(checkWrite(a, [1]), 2, `addr ${a}`);
  }
  assert.equal(checkWrite(6, [1, 100]), 2);
  assert.equal(checkWrite(7, [100, 0]), 2);
  assert.equal(checkWrite(19, [1, 1]), 2);
  const s = initialState(quiet);
  assert.throws(() => applyWrite(s, ADDR.setpoint, [6000]), RangeError);
  assert.equal(applyWrite(s, ADDR.setpoint, [1234]).setpoint_w, 1234);
  assert.equal(s.setpoint_w, 3000, "state is immutable");
});
