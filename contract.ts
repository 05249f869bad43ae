/**
 * The MQTT contract: topic names and payload shapes, builders (used by the
 * poller) and validating parsers (used by the HMI and tests). Pure; no I/O.
 *
 * @example
 * ```ts
 * const t = topicsFor("demo");
 * const msg = buildTelemetry({ tsMs: Date.now(), deviceId: 1001, seq: 1, values });
 * client.publish(t.telemetry, JSON.stringify(msg), { qos: 1 });
 * ```
 */
import type { TelemetryValues } from "./registers.ts";

export const DEFAULT_TOPIC_PREFIX = "demo";

/** Every topic of one device. With `device` set (fleet), topics nest under it. */
export interface Topics {
  telemetry: string;
  alarms: string;
  /** Retained: every alarm's acknowledgement state (ISA-18.2). */
  alarmsState: string;
  status: string;
  /** Operator commands in, and their one answer each. */
  cmdSetpoint: string;
  cmdSetpointResult: string;
  cmdAck: string;
  cmdAckResult: string;
}

/** Topics under `prefix` (and `device`, for a fleet entry). */
export function topicsFor(prefix: string, device?: string): Topics {
  const base = device ? `${prefix}/${device}` : prefix;
  return {
    telemetry: `${base}/telemetry`,
    alarms: `${base}/alarms`,
    alarmsState: `${base}/alarms/state`,
    status: `${base}/status`,
    cmdSetpoint: `${base}/cmd/setpoint`,
    cmdSetpointResult: `${base}/cmd/setpoint/result`,
    cmdAck: `${base}/cmd/ack`,
    cmdAckResult: `${base}/cmd/ack/result`,
  };
}

/** A topic prefix or device name: MQTT-safe, no wildcards, no empty levels. */
export function isTopicSafe(s: string): boolean {
  return /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(s) && s.length <= 128;
}

export type Quality = "good" | "bad";

export interface GoodTelemetry {
  ts: string;
  device_id: number;
  seq: number;
  quality: "good";
  values: TelemetryValues;
  replayed?: true;
}

export interface BadTelemetry {
  ts: string;
  /** Last device id read on this connection's device, or null if never read. */
  device_id: number | null;
  seq: number;
  quality: "bad";
  values: null;
  error: string;
  replayed?: true;
}

export type Telemetry = GoodTelemetry | BadTelemetry;

export type AlarmName = "temp_high";
/** Condition transitions, plus the operator's acknowledgement. */
export type AlarmTransition = "raised" | "cleared" | "acked";

export interface AlarmEvent {
  ts: string;
  device_id: number | null;
  alarm: AlarmName;
  state: AlarmTransition;
  value: number;
  message: string;
  replayed?: true;
}

export interface Status {
  state: "online" | "offline";
  ts: string;
  /** Increments on every MQTT (re)connect; a will from an older session is stale. */
  session?: number;
}

/** UTC ISO 8601 with milliseconds. */
export function isoTs(tsMs: number): string {
  return new Date(tsMs).toISOString();
}

export function buildTelemetry(
  a: { tsMs: number; deviceId: number; seq: number; values: TelemetryValues },
): GoodTelemetry {
  return {
    ts: isoTs(a.tsMs),
    device_id: a.deviceId,
    seq: a.seq,
    quality: "good",
    values: a.values,
  };
}

export function buildBadTelemetry(
  a: { tsMs: number; deviceId: number | null; seq: number; error: string },
): BadTelemetry {
  return {
    ts: isoTs(a.tsMs),
    device_id: a.deviceId,
    seq: a.seq,
    quality: "bad",
    values: null,
    error: a.error,
  };
}

export function buildAlarmEvent(
  a: {
    tsMs: number;
    deviceId: number | null;
    alarm: AlarmName;
    state: AlarmTransition;
    value: number;
    message: string;
  },
): AlarmEvent {
  return {
    ts: isoTs(a.tsMs),
    device_id: a.deviceId,
    alarm: a.alarm,
    state: a.state,
    value: a.value,
    message: a.message,
  };
}

export function buildStatus(
  state: Status["state"],
  tsMs: number,
  session?: number,
): Status {
  return session === undefined
    ? { state, ts: isoTs(tsMs) }
    : { state, ts: isoTs(tsMs), session };
}

// ---- Validating parsers: for anything that reads these topics. -----------

/** Largest payload a subscriber accepts before parsing (bytes). */
export const MAX_PAYLOAD_BYTES = 64 * 1024;

const VALUE_FIELDS: (keyof TelemetryValues)[] = [
  "status_bits",
  "power_w",
  "voltage_v",
  "current_a",
  "temp_c",
  "soc_pct",
  "setpoint_w",
];

/** Result of a parse: the value, or a one-line reason it was rejected. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function isIsoTs(x: unknown): x is string {
  return typeof x === "string" &&
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(x) &&
    !Number.isNaN(Date.parse(x));
}

function parseJson(payload: string | Uint8Array): Parsed<unknown> {
  const size = typeof payload === "string" ? payload.length : payload.length;
  if (size > MAX_PAYLOAD_BYTES) {
    return { ok: false, error: `payload too large (${size} bytes)` };
  }
  const text = typeof payload === "string"
    ? payload
    : new TextDecoder().decode(payload);
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, error: "malformed JSON" };
  }
}

/** Validate a telemetry payload (string or bytes). */
export function parseTelemetry(
  payload: string | Uint8Array,
): Parsed<Telemetry> {
  const j = parseJson(payload);
  if (!j.ok) return j;
  const m = j.value;
  if (!isObj(m)) return { ok: false, error: "telemetry is not an object" };
  if (!isIsoTs(m.ts)) return { ok: false, error: "telemetry.ts not ISO 8601" };
  if (!Number.isInteger(m.seq)) {
    return { ok: false, error: "telemetry.seq not an integer" };
  }
  if (m.device_id !== null && !Number.isInteger(m.device_id)) {
    return { ok: false, error: "telemetry.device_id not an integer" };
  }
  if (m.quality === "bad") {
    if (m.values !== null) {
      return { ok: false, error: "bad telemetry must have values null" };
    }
    if (typeof m.error !== "string") {
      return { ok: false, error: "bad telemetry needs an error string" };
    }
    return { ok: true, value: m as unknown as BadTelemetry };
  }
  if (m.quality !== "good") {
    return { ok: false, error: "telemetry.quality not good|bad" };
  }
  if (!Number.isInteger(m.device_id)) {
    return { ok: false, error: "telemetry.device_id not an integer" };
  }
  if (!isObj(m.values)) {
    return { ok: false, error: "telemetry.values not an object" };
  }
  for (const f of VALUE_FIELDS) {
    const v = (m.values as Record<string, unknown>)[f];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      return { ok: false, error: `telemetry.values.${f} not a number` };
    }
  }
  return { ok: true, value: m as unknown as GoodTelemetry };
}

/** Validate an alarm event payload. */
export function parseAlarmEvent(
  payload: string | Uint8Array,
): Parsed<AlarmEvent> {
  const j = parseJson(payload);
  if (!j.ok) return j;
  const m = j.value;
  if (!isObj(m)) return { ok: false, error: "alarm is not an object" };
  if (!isIsoTs(m.ts)) return { ok: false, error: "alarm.ts not ISO 8601" };
  if (typeof m.alarm !== "string" || m.alarm.length > 64) {
    return { ok: false, error: "alarm.alarm not a name" };
  }
  if (typeof m.state !== "string" || m.state.length > 32) {
    return { ok: false, error: "alarm.state not a string" };
  }
  if (typeof m.value !== "number" || !Number.isFinite(m.value)) {
    return { ok: false, error: "alarm.value not a number" };
  }
  if (typeof m.message !== "string") {
    return { ok: false, error: "alarm.message not a string" };
  }
  return { ok: true, value: m as unknown as AlarmEvent };
}

/** Validate a status payload. */
export function parseStatus(payload: string | Uint8Array): Parsed<Status> {
  const j = parseJson(payload);
  if (!j.ok) return j;
  const m = j.value;
  if (!isObj(m)) return { ok: false, error: "status is not an object" };
  if (m.state !== "online" && m.state !== "offline") {
    return { ok: false, error: "status.state not online|offline" };
  }
  if (!isIsoTs(m.ts)) return { ok: false, error: "status.ts not ISO 8601" };
  if (m.session !== undefined && !Number.isInteger(m.session)) {
    return { ok: false, error: "status.session not an integer" };
  }
  return { ok: true, value: m as unknown as Status };
}
