/**
 * The device's holding-register map: the one source of truth imported by the
 * simulator, the poller, the HMI and the README table.
 *
 * Pure data and pure functions only (no I/O), so islands can import it too.
 *
 * @example
 * ```ts
 * import { scaleRegisters, POLL_BLOCK } from "./registers.ts";
 * const values = scaleRegisters(rawWords); // rawWords: 10 uint16 words from 0
 * ```
 */

/** How a 16-bit word is interpreted. */
export type WordType = "uint16" | "int16";

/** One holding register. */
export interface RegisterDef {
  /** Zero-based protocol address (Modbus "PDU address"). */
  readonly address: number;
  /** Register name as in the device documentation. */
  readonly name: string;
  /** Engineering-value field in telemetry, or null for registers not published. */
  readonly field: string | null;
  readonly unit: string;
  /** Engineering value = raw / divisor. */
  readonly divisor: number;
  readonly type: WordType;
  /** Present only on writable registers: the accepted raw range. */
  readonly writable?: { readonly min: number; readonly max: number };
  readonly notes: string;
}

export const DEVICE_ID = 1001;
export const SETPOINT_MIN_W = 0;
export const SETPOINT_MAX_W = 5000;

/** Registers 0..9 carry data; 10..19 are reserved and read as 0. */
export const REGISTER_MAP: readonly RegisterDef[] = [
  {
    address: 0,
    name: "device_id",
    field: null,
    unit: "-",
    divisor: 1,
    type: "uint16",
    notes: "1001 (fleet: 1001 + index)",
  },
  {
    address: 1,
    name: "status_bits",
    field: "status_bits",
    unit: "-",
    divisor: 1,
    type: "uint16",
    notes: "bitfield, see STATUS_BITS",
  },
  {
    address: 2,
    name: "power_w",
    field: "power_w",
    unit: "W",
    divisor: 1,
    type: "int16",
    notes: "AC output power",
  },
  {
    address: 3,
    name: "voltage_v_x10",
    field: "voltage_v",
    unit: "V",
    divisor: 10,
    type: "uint16",
    notes: "230.0 V stored as 2300",
  },
  {
    address: 4,
    name: "current_a_x100",
    field: "current_a",
    unit: "A",
    divisor: 100,
    type: "int16",
    notes: "5.13 A stored as 513",
  },
  {
    address: 5,
    name: "temp_c_x10",
    field: "temp_c",
    unit: "C",
    divisor: 10,
    type: "int16",
    notes: "62.5 C stored as 625",
  },
  {
    address: 6,
    name: "soc_pct_x10",
    field: "soc_pct",
    unit: "%",
    divisor: 10,
    type: "uint16",
    notes: "72.0 % stored as 720",
  },
  {
    address: 7,
    name: "setpoint_w",
    field: "setpoint_w",
    unit: "W",
    divisor: 1,
    type: "uint16",
    writable: { min: SETPOINT_MIN_W, max: SETPOINT_MAX_W },
    notes: "writable (FC06/FC16), 0..5000",
  },
  {
    address: 8,
    name: "reserved1",
    field: null,
    unit: "-",
    divisor: 1,
    type: "uint16",
    notes: "reads 0",
  },
  {
    address: 9,
    name: "reserved2",
    field: null,
    unit: "-",
    divisor: 1,
    type: "uint16",
    notes: "reads 0",
  },
];

/** Addresses 0..REGISTER_SPACE-1 exist; anything else is exception 02. */
export const REGISTER_SPACE = 20;

/** The block the poller reads each tick: registers 0..9 in one FC03. */
export const POLL_BLOCK = { start: 0, count: 10 } as const;

/**
 * Register maps a device may name in a devices file. The poller reads each
 * through a read plan (read_plan.ts) over all of the map's registers, which
 * for the built-in inverter map is exactly POLL_BLOCK.
 */
export const REGISTER_MAPS = {
  inverter: REGISTER_MAP,
} as const satisfies Record<
  string,
  readonly RegisterDef[]
>;
export type RegisterMapName = keyof typeof REGISTER_MAPS;

/** Largest quantity a read may ask for (Modbus spec, FC03/FC04). */
export const MAX_READ_QUANTITY = 125;
/** Largest quantity an FC16 write may carry (Modbus spec). */
export const MAX_WRITE_QUANTITY = 123;

/** Address of a register by name; throws on a typo so mistakes surface early. */
export function addressOf(name: string): number {
  const def = REGISTER_MAP.find((r) => r.name === name);
  if (!def) throw new Error(`unknown register ${name}`);
  return def.address;
}

export const ADDR = {
  deviceId: addressOf("device_id"),
  statusBits: addressOf("status_bits"),
  power: addressOf("power_w"),
  voltage: addressOf("voltage_v_x10"),
  current: addressOf("current_a_x100"),
  temp: addressOf("temp_c_x10"),
  soc: addressOf("soc_pct_x10"),
  setpoint: addressOf("setpoint_w"),
} as const;

/** status_bits (register 1): bit number -> meaning. */
export const STATUS_BITS = {
  /** Power output above 0 W. */
  running: 0,
  /** Output limited because temperature is above 70 C. */
  derating: 1,
  /** State of charge below 20 %. */
  low_soc: 2,
  /** State of charge at or above 95 %. */
  soc_full: 3,
  /** Instantaneous temperature above 60 C (device flag, no delay). */
  over_temp: 4,
} as const;

export type StatusBitName = keyof typeof STATUS_BITS;

/** Names of the bits set in a status word, in bit order. */
export function decodeStatusBits(word: number): StatusBitName[] {
  return (Object.entries(STATUS_BITS) as [StatusBitName, number][])
    .filter(([, bit]) => (word >> bit) & 1)
    .map(([name]) => name);
}

/** Engineering values of one good poll, as published in telemetry. */
export interface TelemetryValues {
  status_bits: number;
  power_w: number;
  voltage_v: number;
  current_a: number;
  temp_c: number;
  soc_pct: number;
  setpoint_w: number;
}

/** Interpret a raw word as its declared type. */
export function wordToNumber(word: number, type: WordType): number {
  const w = word & 0xffff;
  return type === "int16" && w >= 0x8000 ? w - 0x10000 : w;
}

/** Engineering value -> raw word (rounded, two's complement for negatives). */
export function toRaw(def: RegisterDef, value: number): number {
  return Math.round(value * def.divisor) & 0xffff;
}

/** Raw word -> engineering value, rounded to the register's resolution. */
export function fromRaw(def: RegisterDef, word: number): number {
  const n = wordToNumber(word, def.type);
  // Divide then round to the resolution so 2301/10 prints as 230.1, not 230.10000000000002.
  const decimals = Math.round(Math.log10(def.divisor));
  return Number((n / def.divisor).toFixed(decimals));
}

/**
 * Scale raw words (`words[i]` is the register at address `start + i`; a
 * sparse array is fine) into engineering values of `map`. Throws when a
 * published register is missing.
 */
export function scaleRegisters(
  words: readonly number[],
  start: number = POLL_BLOCK.start,
  map: readonly RegisterDef[] = REGISTER_MAP,
): { deviceId: number; values: TelemetryValues } {
  const out: Record<string, number> = {};
  let deviceId = NaN;
  for (const def of map) {
    const i = def.address - start;
    if (def.field === null && def.name !== "device_id") continue;
    const word = words[i];
    if (word === undefined || !Number.isInteger(word)) {
      throw new RangeError(`register ${def.address} (${def.name}) missing`);
    }
    if (def.name === "device_id") deviceId = word;
    else out[def.field as string] = fromRaw(def, word);
  }
  return { deviceId, values: out as unknown as TelemetryValues };
}
