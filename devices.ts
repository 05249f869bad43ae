/**
 * The devices file of a fleet poller (`DEVICES_FILE`): parsed and validated
 * here, as pure functions (no I/O), so errors are testable and identical
 * everywhere. Every error is one line naming the bad entry and field, e.g.
 * `devices[3] ("inv-4").port: expected an integer in 1..65535, got 70000`.
 *
 * Shape:
 * ```json
 * {
 *   "poller": "site-a",
 *   "devices": [
 *     { "name": "inv-1", "host": "127.0.0.1", "port": 5020, "unit_id": 1,
 *       "interval_ms": 1000, "map": "inverter" }
 *   ]
 * }
 * ```
 * `name`, `host` and `port` are required; `unit_id` (default 1),
 * `interval_ms` (default 1000) and `map` (default "inverter", the only
 * built-in register map) are optional. `poller` (optional, topic-safe) names
 * this poller process: its own retained status lives under
 * `{prefix}/_pollers/{poller}/status`, so two pollers side by side need
 * different names. Unknown keys are errors, so a typo never silently falls
 * back to a default.
 *
 * @example
 * ```ts
 * const file = parseDevicesFile(await Deno.readTextFile("devices.json"));
 * for (const d of file.devices) console.log(d.name, d.host, d.port);
 * ```
 */
import { ConfigError } from "./cli.ts";
import { isTopicSafe } from "./contract.ts";
import { REGISTER_MAPS, type RegisterMapName } from "./registers.ts";

export type { RegisterMapName };

/** Register map names a device may use; "inverter" is the built-in map. */
export const REGISTER_MAP_NAMES = Object.keys(
  REGISTER_MAPS,
) as RegisterMapName[];

/** One validated device entry. */
export interface DeviceSpec {
  name: string;
  host: string;
  port: number;
  unitId: number;
  intervalMs: number;
  map: RegisterMapName;
}

export interface DevicesFile {
  /** Name of this poller process, or null when the file does not set one. */
  poller: string | null;
  devices: DeviceSpec[];
}

export interface DeviceDefaults {
  unitId: number;
  intervalMs: number;
}

export const DEVICE_DEFAULTS: DeviceDefaults = { unitId: 1, intervalMs: 1000 };

/** Most devices one file (one poller process) may list. */
export const MAX_DEVICES = 10_000;
/** Same bounds as POLL_INTERVAL_MS. */
export const INTERVAL_MIN_MS = 50;
export const INTERVAL_MAX_MS = 3_600_000;
/** A device name is one topic level: shorter than a whole topic prefix. */
export const MAX_NAME_LENGTH = 64;

const DEVICE_KEYS = new Set([
  "name",
  "host",
  "port",
  "unit_id",
  "interval_ms",
  "map",
]);
const FILE_KEYS = new Set(["poller", "devices"]);
/** Topic levels the fleet uses itself (poller status lives under `_pollers`). */
const RESERVED_NAMES = new Set(["_pollers", "telemetry", "alarms", "status"]);

function shown(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined
    ? String(v)
    : s.length > 60
    ? s.slice(0, 57) + "..."
    : s;
}

function fail(where: string, why: string, ...value: unknown[]): never {
  throw new ConfigError(
    `${where}: ${why}${value.length ? `, got ${shown(value[0])}` : ""}`,
  );
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function intIn(
  where: string,
  v: unknown,
  min: number,
  max: number,
): number {
  if (
    typeof v !== "number" || !Number.isInteger(v) || v < min || v > max
  ) {
    fail(where, `expected an integer in ${min}..${max}`, v);
  }
  return v;
}

/** One entry of `devices`; `i` is its index, for error messages. */
export function parseDevice(
  raw: unknown,
  i: number,
  defaults: DeviceDefaults = DEVICE_DEFAULTS,
): DeviceSpec {
  const at = `devices[${i}]`;
  if (!isObj(raw)) fail(at, "expected an object", raw);
  for (const k of Object.keys(raw)) {
    if (!DEVICE_KEYS.has(k)) {
      fail(
        `${at}.${k}`,
        `unknown key (expected one of ${[...DEVICE_KEYS].join(", ")})`,
      );
    }
  }
  const name = raw.name;
  if (typeof name !== "string") fail(`${at}.name`, "expected a string", name);
  if (
    name.includes("/") || !isTopicSafe(name) ||
    name.length > MAX_NAME_LENGTH
  ) {
    fail(
      `${at}.name`,
      `expected 1..${MAX_NAME_LENGTH} letters, digits, _ . - (one topic level)`,
      name,
    );
  }
  if (RESERVED_NAMES.has(name)) {
    fail(`${at}.name`, "reserved topic level, choose another name", name);
  }
  // From here on the error names the device too, so it can be found by name.
  const dev = `${at} ("${name}")`;
  const host = raw.host;
  if (typeof host !== "string" || !/^[A-Za-z0-9.:_-]{1,253}$/.test(host)) {
    fail(`${dev}.host`, "expected a host name or IP address", host);
  }
  const port = intIn(`${dev}.port`, raw.port, 1, 65535);
  const unitId = raw.unit_id === undefined
    ? defaults.unitId
    : intIn(`${dev}.unit_id`, raw.unit_id, 0, 255);
  const intervalMs = raw.interval_ms === undefined
    ? defaults.intervalMs
    : intIn(
      `${dev}.interval_ms`,
      raw.interval_ms,
      INTERVAL_MIN_MS,
      INTERVAL_MAX_MS,
    );
  const map = raw.map === undefined ? "inverter" : raw.map;
  if (!(REGISTER_MAP_NAMES as readonly unknown[]).includes(map)) {
    fail(
      `${dev}.map`,
      `unknown register map (known: ${REGISTER_MAP_NAMES.join(", ")})`,
      map,
    );
  }
  return {
    name,
    host,
    port,
    unitId,
    intervalMs,
    map: map as RegisterMapName,
  };
}

/** Validate an already-parsed JSON value. Throws ConfigError (one line). */
export function parseDevicesValue(
  value: unknown,
  defaults: DeviceDefaults = DEVICE_DEFAULTS,
): DevicesFile {
  if (!isObj(value)) fail("devices file", "expected a JSON object", value);
  for (const k of Object.keys(value)) {
    if (!FILE_KEYS.has(k)) {
      fail(k, "unknown key (expected poller, devices)");
    }
  }
  let poller: string | null = null;
  if (value.poller !== undefined) {
    const p = value.poller;
    if (
      typeof p !== "string" || p.includes("/") || !isTopicSafe(p) ||
      p.length > MAX_NAME_LENGTH
    ) {
      fail(
        "poller",
        `expected 1..${MAX_NAME_LENGTH} letters, digits, _ . - (one topic level)`,
        p,
      );
    }
    poller = p;
  }
  const list = value.devices;
  if (!Array.isArray(list)) fail("devices", "expected an array", list);
  if (list.length === 0) fail("devices", "expected at least one device");
  if (list.length > MAX_DEVICES) {
    fail("devices", `at most ${MAX_DEVICES} devices per poller`, list.length);
  }
  const devices: DeviceSpec[] = [];
  const byName = new Map<string, number>();
  const byAddress = new Map<string, number>();
  list.forEach((raw, i) => {
    const d = parseDevice(raw, i, defaults);
    const sameName = byName.get(d.name);
    if (sameName !== undefined) {
      fail(
        `devices[${i}].name`,
        `duplicate of devices[${sameName}].name`,
        d.name,
      );
    }
    byName.set(d.name, i);
    const address = `${d.host.toLowerCase()}:${d.port}#${d.unitId}`;
    const sameAddress = byAddress.get(address);
    if (sameAddress !== undefined) {
      fail(
        `devices[${i}]`,
        `same host, port and unit_id as devices[${sameAddress}] (${address})`,
      );
    }
    byAddress.set(address, i);
    devices.push(d);
  });
  return { poller, devices };
}

/** Parse and validate the text of a devices file. Throws ConfigError. */
export function parseDevicesFile(
  text: string,
  defaults: DeviceDefaults = DEVICE_DEFAULTS,
): DevicesFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    fail("devices file", `not valid JSON (${(e as Error).message})`);
  }
  return parseDevicesValue(value, defaults);
}

/** A default poller name from the devices file path: `site-a.json` -> `site-a`. */
export function pollerNameFromPath(path: string): string {
  const base = path.split("/").pop()!.replace(/\.[^.]*$/, "");
  const safe = base.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, MAX_NAME_LENGTH);
  return safe || "fleet";
}
