import assert from "node:assert/strict";
import {
  ADDR,
  decodeStatusBits,
  fromRaw,
  POLL_BLOCK,
  REGISTER_MAP,
  REGISTER_SPACE,
  scaleRegisters,
  STATUS_BITS,
  toRaw,
} from "../registers.ts";

const words = [1001, 0b10001, 3000, 2301, 1304, 552, 720, 3000, 0, 0];

Deno.test("scales the poll block into engineering units", () => {
  const { deviceId, values } = scaleRegisters(words);
  assert.equal(deviceId, 1001);
  assert.deepEqual(values, {
    status_bits: 17,
    power_w: 3000,
    voltage_v: 230.1,
    current_a: 13.04,
    temp_c: 55.2,
    soc_pct: 72,
    setpoint_w: 3000,
  });
});

Deno.test("signed registers decode two's complement", () => {
  const w = [...words];
  w[ADDR.temp] = 0x10000 - 125; // -12.5 C
  w[ADDR.power] = 0x10000 - 500; // -500 W (charging)
  const { values } = scaleRegisters(w);
  assert.equal(values.temp_c, -12.5);
  assert.equal(values.power_w, -500);
});

Deno.test("toRaw and fromRaw round-trip at the register resolution", () => {
  for (const def of REGISTER_MAP) {
    const limit = def.type === "int16" ? 32767 : 65535;
    for (const v of [0, 1, 12.34, 230.1, 62.5, 4999]) {
      if (v * def.divisor > limit) continue; // not representable
      const back = fromRaw(def, toRaw(def, v));
      assert.ok(
        Math.abs(back - v) <= 0.5 / def.divisor + 1e-9,
        `${def.name} ${v} -> ${back}`,
      );
    }
  }
  const temp = REGISTER_MAP[ADDR.temp];
  assert.equal(toRaw(temp, 62.5), 625);
  assert.equal(toRaw(temp, -1), 0xfff6);
});

Deno.test("a short block is an error, not a silent NaN", () => {
  assert.throws(
    () => scaleRegisters(words.slice(0, 6)),
    /register 6 \(soc_pct_x10\) missing/,
  );
});

Deno.test("the map is consistent: unique addresses, inside the space, poll block covers it", () => {
  const addrs = REGISTER_MAP.map((r) => r.address);
  assert.equal(new Set(addrs).size, addrs.length);
  assert.ok(addrs.every((a) => a >= 0 && a < REGISTER_SPACE));
  assert.ok(
    addrs.every((a) =>
      a >= POLL_BLOCK.start && a < POLL_BLOCK.start + POLL_BLOCK.count
    ),
  );
  assert.deepEqual(REGISTER_MAP.filter((r) => r.writable).map((r) => r.name), [
    "setpoint_w",
  ]);
});

Deno.test("status bits decode by name", () => {
  assert.deepEqual(decodeStatusBits(0), []);
  assert.deepEqual(
    decodeStatusBits((1 << STATUS_BITS.running) | (1 << STATUS_BITS.over_temp)),
    ["running", "over_temp"],
  );
});
