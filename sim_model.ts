/**
 * Physics of one simulated battery inverter, as pure functions: no clock, no
 * I/O. The caller passes the time step and a random source, so tests run
 * hours of simulated time in milliseconds and noise 0 is fully deterministic.
 *
 * - power follows the setpoint with a first-order lag (`powerTauS`, 0.5 s),
 *   limited while the temperature is above 70 C (derating: the limit drops
 *   `derateWPerC` W per degree above 70, so 5000 W settles near 70.8 C);
 * - temperature tends to `25 + 0.01 * power_w` C with a first-order lag
 *   `tauS` (10 s): 3000 W sits at 55 C, 4000 W at 65 C;
 * - voltage wanders around 230 V (mean-reverting, scaled by `noise`);
 *   current = power / voltage;
 * - state of charge falls with output power (10 kWh battery); when it reaches
 *   `rechargeBelowPct` (10 %) the battery recharges at `rechargeW` until
 *   `rechargeUntilPct` (95 %), so a long run cycles and never pins at 0.
 *
 * @example
 * ```ts
 * const params = modelParams({ tauS: 10, noise: 0 });
 * let s = initialState(params);
 * s = stepModel(s, 0.1, params, Math.random);
 * const words = registerWords(s, 1001); // 20 uint16 words, addresses 0..19
 * ```
 */
import {
  REGISTER_MAP,
  REGISTER_SPACE,
  STATUS_BITS,
  type TelemetryValues,
  toRaw,
} from "./registers.ts";

/** A random source returning numbers in [0, 1), like Math.random. */
export type Random = () => number;

export interface ModelParams {
  /** Temperature time constant, s. */
  readonly tauS: number;
  /** Power time constant, s. */
  readonly powerTauS: number;
  /** Noise scale: 0 = deterministic, 1 = default. */
  readonly noise: number;
  readonly ambientC: number;
  /** Steady-state temperature rise per watt of output, C/W. */
  readonly cPerW: number;
  /** Derating starts strictly above this temperature, C. */
  readonly derateAboveC: number;
  /** Power limit reduction per degree above `derateAboveC`, W/C. */
  readonly derateWPerC: number;
  /** Rated (and largest) output power, W. */
  readonly ratedW: number;
  readonly nominalV: number;
  readonly capacityWh: number;
  /** Start recharging at or below this state of charge, %. */
  readonly rechargeBelowPct: number;
  /** Stop recharging at or above this state of charge, %. */
  readonly rechargeUntilPct: number;
  /** Recharge power into the battery (PV/grid), W. */
  readonly rechargeW: number;
  /** Initial setpoint, W. */
  readonly initialSetpointW: number;
  /** Initial state of charge, %. */
  readonly initialSocPct: number;
}

export const DEFAULT_MODEL_PARAMS: ModelParams = {
  tauS: 10,
  powerTauS: 0.5,
  noise: 1,
  ambientC: 25,
  cPerW: 0.01,
  derateAboveC: 70,
  derateWPerC: 500,
  ratedW: 5000,
  nominalV: 230,
  capacityWh: 10_000,
  rechargeBelowPct: 10,
  rechargeUntilPct: 95,
  rechargeW: 5000,
  initialSetpointW: 3000,
  initialSocPct: 72,
};

/** DEFAULT_MODEL_PARAMS with some fields replaced. */
export function modelParams(over: Partial<ModelParams> = {}): ModelParams {
  const p = { ...DEFAULT_MODEL_PARAMS, ...over };
  if (!(p.tauS > 0) || !(p.powerTauS > 0)) {
    throw new RangeError("time constants must be > 0");
  }
  if (!(p.noise >= 0)) throw new RangeError("noise must be >= 0");
  return p;
}

export interface SimState {
  /** Commanded output, W (register 7). */
  readonly setpoint_w: number;
  /** Actual output, W. */
  readonly power_w: number;
  readonly temp_c: number;
  readonly voltage_v: number;
  /** power_w / voltage_v, A. */
  readonly current_a: number;
  readonly soc_pct: number;
  /** True while the battery recharges (between 10 % and 95 %). */
  readonly charging: boolean;
  /** True while the output is limited by temperature. */
  readonly derating: boolean;
}

/** Temperature the device settles at for a given output, C. */
export function equilibriumTempC(powerW: number, p: ModelParams): number {
  return p.ambientC + p.cPerW * powerW;
}

/** Output limit at temperature `tempC`: rated power, reduced above 70 C. */
export function powerLimitW(tempC: number, p: ModelParams): number {
  if (tempC <= p.derateAboveC) return p.ratedW;
  return Math.max(0, p.ratedW - p.derateWPerC * (tempC - p.derateAboveC));
}

/** Steady state for the initial setpoint: 3000 W, 55 C, 230 V, 72 %. */
export function initialState(p: ModelParams = DEFAULT_MODEL_PARAMS): SimState {
  // Start at the thermal equilibrium of the (possibly derated) setpoint.
  let power = p.initialSetpointW;
  for (let i = 0; i < 100; i++) {
    power = Math.min(
      p.initialSetpointW,
      powerLimitW(equilibriumTempC(power, p), p),
    );
  }
  const temp = equilibriumTempC(power, p);
  return {
    setpoint_w: p.initialSetpointW,
    power_w: power,
    temp_c: temp,
    voltage_v: p.nominalV,
    current_a: power / p.nominalV,
    soc_pct: p.initialSocPct,
    charging: false,
    derating: p.initialSetpointW > powerLimitW(temp, p),
  };
}

/** Roughly standard-normal number from three uniforms (cheap, bounded). */
function gauss(rand: Random): number {
  return (rand() + rand() + rand() - 1.5) * 2;
}

/** Fraction of the way a first-order lag moves in `dtS` (exact, any dt). */
function lag(dtS: number, tauS: number): number {
  return 1 - Math.exp(-dtS / tauS);
}

/**
 * Advance the state by `dtS` seconds. Exact exponential discretisation, so it
 * is stable for any step; large steps are split so derating and SOC limits
 * still react in time. `rand` is only called when `p.noise > 0`.
 */
export function stepModel(
  s: SimState,
  dtS: number,
  p: ModelParams,
  rand: Random,
): SimState {
  if (!(dtS > 0)) return s;
  const maxStep = 1;
  let out = s;
  let left = dtS;
  while (left > 1e-12) {
    const dt = Math.min(left, maxStep);
    out = step1(out, dt, p, rand);
    left -= dt;
  }
  return out;
}

function step1(
  s: SimState,
  dt: number,
  p: ModelParams,
  rand: Random,
): SimState {
  const limit = powerLimitW(s.temp_c, p);
  const target = Math.min(s.setpoint_w, limit);
  const derating = s.temp_c > p.derateAboveC && s.setpoint_w > limit;

  let power = s.power_w + (target - s.power_w) * lag(dt, p.powerTauS);
  if (p.noise > 0 && target > 0) {
    power += p.noise * 3 * gauss(rand) * Math.sqrt(Math.min(dt, 1));
  }
  power = Math.min(Math.max(power, 0), p.ratedW * 1.02);
  // Snap the tail of the exponential so "running" turns off after setpoint 0.
  if (target === 0 && power < 0.5) power = 0;

  let temp = s.temp_c +
    (equilibriumTempC(power, p) - s.temp_c) * lag(dt, p.tauS);
  let voltage = p.nominalV + (s.voltage_v - p.nominalV) * Math.exp(-dt / 5);
  if (p.noise > 0) {
    temp += p.noise * 0.02 * gauss(rand) * Math.sqrt(Math.min(dt, 1));
    voltage += p.noise * 0.4 * gauss(rand) * Math.sqrt(Math.min(dt, 1));
    const band = 5 * p.noise;
    voltage = Math.min(Math.max(voltage, p.nominalV - band), p.nominalV + band);
  }

  let charging = s.charging;
  let soc = s.soc_pct - (power * dt / 3600) / p.capacityWh * 100;
  if (charging) soc += (p.rechargeW * dt / 3600) / p.capacityWh * 100;
  soc = Math.min(Math.max(soc, 0), 100);
  if (!charging && soc <= p.rechargeBelowPct) charging = true;
  else if (charging && soc >= p.rechargeUntilPct) charging = false;

  return {
    setpoint_w: s.setpoint_w,
    power_w: power,
    temp_c: temp,
    voltage_v: voltage,
    current_a: power / voltage,
    soc_pct: soc,
    charging,
    derating,
  };
}

/** Value as its register publishes it (rounded to the register's resolution). */
function published(field: string, value: number): number {
  const def = REGISTER_MAP.find((d) => d.field === field)!;
  return Math.round(value * def.divisor) / def.divisor;
}

/**
 * status_bits word per STATUS_BITS in registers.ts. Thresholds are applied to
 * the published (rounded) values, so a reader never sees low_soc next to a
 * SOC register of 20.0 %.
 */
export function statusBits(s: SimState): number {
  let w = 0;
  if (published("power_w", s.power_w) > 0) w |= 1 << STATUS_BITS.running;
  if (s.derating) w |= 1 << STATUS_BITS.derating;
  const soc = published("soc_pct", s.soc_pct);
  if (soc < 20) w |= 1 << STATUS_BITS.low_soc;
  if (soc >= 95) w |= 1 << STATUS_BITS.soc_full;
  if (published("temp_c", s.temp_c) > 60) w |= 1 << STATUS_BITS.over_temp;
  return w;
}

/** Engineering values as the registers publish them. */
export function telemetryOf(s: SimState): TelemetryValues {
  return {
    status_bits: statusBits(s),
    power_w: s.power_w,
    voltage_v: s.voltage_v,
    current_a: s.current_a,
    temp_c: s.temp_c,
    soc_pct: s.soc_pct,
    setpoint_w: s.setpoint_w,
  };
}

/**
 * The REGISTER_SPACE (20) holding-register words, addresses 0..19: 0 is the
 * device id, 1..7 the values per REGISTER_MAP (encoded with `toRaw`), and
 * every reserved or unmapped address reads 0.
 */
export function registerWords(s: SimState, deviceId: number): number[] {
  const words = new Array<number>(REGISTER_SPACE).fill(0);
  const values = telemetryOf(s) as unknown as Record<string, number>;
  for (const def of REGISTER_MAP) {
    if (def.name === "device_id") words[def.address] = deviceId & 0xffff;
    else if (def.field !== null) {
      words[def.address] = toRaw(def, values[def.field]);
    }
  }
  return words;
}

/** Modbus exception codes a write can fail with. */
export const WRITE_OK = 0;
export const ILLEGAL_DATA_ADDRESS = 2;
export const ILLEGAL_DATA_VALUE = 3;

/**
 * Check a write of raw words at `start` without changing anything: 0 when
 * acceptable, 2 when any target register does not exist or is read-only,
 * 3 when any value is outside its register's writable range.
 */
export function checkWrite(start: number, values: readonly number[]): number {
  if (start < 0 || start + values.length > REGISTER_SPACE) {
    return ILLEGAL_DATA_ADDRESS;
  }
  for (let i = 0; i < values.length; i++) {
    if (!REGISTER_MAP[start + i]?.writable) return ILLEGAL_DATA_ADDRESS;
  }
  for (let i = 0; i < values.length; i++) {
    const w = REGISTER_MAP[start + i].writable!;
    if (values[i] < w.min || values[i] > w.max) return ILLEGAL_DATA_VALUE;
  }
  return WRITE_OK;
}

/** Apply a write that `checkWrite` accepted. Throws on one it would refuse. */
export function applyWrite(
  s: SimState,
  start: number,
  values: readonly number[],
): SimState {
  const code = checkWrite(start, values);
  if (code !== WRITE_OK) throw new RangeError(`write refused (${code})`);
  let out = s;
  for (let i = 0; i < values.length; i++) {
    const def = REGISTER_MAP[start + i];
    if (def.field === "setpoint_w") {
      out = { ...out, setpoint_w: values[i] / def.divisor };
    }
  }
  return out;
}

/** Small seeded PRNG (mulberry32) so noisy runs and fuzz tests reproduce. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
