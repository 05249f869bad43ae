/**
 * Operator commands (setpoint writes, alarm acknowledgements): payload
 * shapes and strict validation, as pure functions with the clock passed in.
 * Nothing reaches the device unless it passes here; nothing is coerced or
 * rounded.
 *
 * @example
 * ```ts
 * const v = validateSetpointCommand(payload, Date.now());
 * if (!v.ok) publish(resultTopic, { id: v.id, ok: false, error: v.error });
 * ```
 */
import { SETPOINT_MAX_W, SETPOINT_MIN_W } from "./registers.ts";
import { isoTs, MAX_PAYLOAD_BYTES } from "./contract.ts";

/** A command older than this is refused (it was meant for another moment). */
export const COMMAND_MAX_AGE_MS = 10_000;
/** How far in the future a command's `ts` may be (clock skew), ms. */
export const COMMAND_MAX_SKEW_MS = 2_000;
/** Every command is answered within this, ms (device writes included). */
export const COMMAND_ANSWER_MS = 2_000;

export interface SetpointCommand {
  id: string;
  value: number;
  ts: string;
}

export interface AckCommand {
  id: string;
  alarm: string;
}

export interface CommandResult {
  id: string | null;
  ok: boolean;
  value?: number;
  error?: string;
  ts: string;
}

export type Validated<T> =
  | { ok: true; cmd: T }
  | { ok: false; id: string | null; error: string };

/** Decoded command object, with the JSON source text of its `value`. */
interface Decoded {
  ok: true;
  obj: Record<string, unknown>;
  /** How `value` was written in the JSON text (3500, 3500.0, 3.5e3 ...). */
  valueSource: string | undefined;
}

function decode(
  payload: string | Uint8Array,
): Decoded | { ok: false; error: string } {
  if (payload.length > MAX_PAYLOAD_BYTES) {
    return { ok: false, error: "payload too large" };
  }
  const text = typeof payload === "string"
    ? payload
    : new TextDecoder().decode(payload);
  let v: unknown;
  // JSON.parse turns 3500.0 and 3.5e3 into 3500 (and 5000.0000000000001 into
  // 5000): the reviver's source text is the only way to refuse them.
  const sources = new WeakMap<object, string>();
  try {
    v = JSON.parse(
      text,
      function (this: object, key, value, ctx?: { source?: string }) {
        if (key === "value" && ctx?.source !== undefined) {
          sources.set(this, ctx.source);
        }
        return value;
      },
    );
  } catch {
    return { ok: false, error: "malformed JSON" };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return { ok: false, error: "command must be a JSON object" };
  }
  return {
    ok: true,
    obj: v as Record<string, unknown>,
    valueSource: sources.get(v),
  };
}

/** A JSON integer literal: no fraction, no exponent. */
const INTEGER_LITERAL = /^-?(0|[1-9]\d*)$/;

function idOf(obj: Record<string, unknown>): string | null {
  return typeof obj.id === "string" && obj.id.length > 0 && obj.id.length <= 128
    ? obj.id
    : null;
}

const ISO_RE =
  /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,9})?(Z|[+-](\d\d):(\d\d))$/;

/**
 * Epoch ms of an ISO 8601 date-time with a real calendar date and time
 * (Date.parse accepts 2026-02-30 and T24:00 and shifts them), or NaN.
 */
export function parseIsoTs(ts: string): number {
  const m = ISO_RE.exec(ts);
  if (!m) return NaN;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth) return NaN;
  if (h > 23 || mi > 59 || s > 59) return NaN;
  if (m[9] !== undefined && (Number(m[9]) > 23 || Number(m[10]) > 59)) {
    return NaN;
  }
  return Date.parse(ts);
}

/** Validate a setpoint command received at `nowMs`. */
export function validateSetpointCommand(
  payload: string | Uint8Array,
  nowMs: number,
): Validated<SetpointCommand> {
  const d = decode(payload);
  if (!d.ok) return { ok: false, id: null, error: d.error };
  const o = d.obj;
  const id = idOf(o);
  if (id === null) {
    return {
      ok: false,
      id: null,
      error: "id must be a non-empty string (at most 128 characters)",
    };
  }
  if (!("value" in o)) return { ok: false, id, error: "value missing" };
  if (typeof o.value !== "number") {
    return {
      ok: false,
      id,
      error: "value must be a JSON number, not " + typeName(o.value),
    };
  }
  if (
    !Number.isInteger(o.value) ||
    (d.valueSource !== undefined && !INTEGER_LITERAL.test(d.valueSource))
  ) {
    return {
      ok: false,
      id,
      error: `value must be a JSON integer (no fraction or exponent), got ${
        (d.valueSource ?? String(o.value)).slice(0, 32)
      }`,
    };
  }
  if (o.value < SETPOINT_MIN_W || o.value > SETPOINT_MAX_W) {
    return {
      ok: false,
      id,
      error: `value out of range ${SETPOINT_MIN_W}..${SETPOINT_MAX_W}`,
    };
  }
  const tsMs = typeof o.ts === "string" ? parseIsoTs(o.ts) : NaN;
  if (Number.isNaN(tsMs)) {
    return {
      ok: false,
      id,
      error:
        "ts must be an ISO 8601 date-time with a time zone (e.g. 2026-12-03T18:00:00.000Z)",
    };
  }
  const age = nowMs - tsMs;
  if (age > COMMAND_MAX_AGE_MS) {
    return {
      ok: false,
      id,
      error: `command too old (${(age / 1000).toFixed(1)} s old, limit ${
        COMMAND_MAX_AGE_MS / 1000
      } s)`,
    };
  }
  if (age < -COMMAND_MAX_SKEW_MS) {
    return {
      ok: false,
      id,
      error: `ts is ${
        (-age / 1000).toFixed(1)
      } s in the future (clock skew limit ${COMMAND_MAX_SKEW_MS / 1000} s)`,
    };
  }
  return { ok: true, cmd: { id, value: o.value, ts: o.ts as string } };
}

/** Validate an acknowledgement; `known` lists the alarm names that exist. */
export function validateAckCommand(
  payload: string | Uint8Array,
  known: readonly string[],
): Validated<AckCommand> {
  const d = decode(payload);
  if (!d.ok) return { ok: false, id: null, error: d.error };
  const id = idOf(d.obj);
  if (id === null) {
    return {
      ok: false,
      id: null,
      error: "id must be a non-empty string (at most 128 characters)",
    };
  }
  if (typeof d.obj.alarm !== "string" || !known.includes(d.obj.alarm)) {
    return { ok: false, id, error: `alarm must be one of ${known.join(", ")}` };
  }
  return { ok: true, cmd: { id, alarm: d.obj.alarm } };
}

export function buildCommandResult(
  a:
    & { id: string | null; tsMs: number }
    & (
      | { ok: true; value?: number }
      | { ok: false; error: string }
    ),
): CommandResult {
  return a.ok
    ? {
      id: a.id,
      ok: true,
      ...(a.value === undefined ? {} : { value: a.value }),
      ts: isoTs(a.tsMs),
    }
    : { id: a.id, ok: false, error: a.error, ts: isoTs(a.tsMs) };
}

function typeName(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "an array" : `a ${typeof v}`;
}

/** Remembers recent command ids so a redelivered command runs once. */
export class RecentIds {
  readonly #max: number;
  #ids = new Set<string>();
  constructor(max = 1000) {
    this.#max = max;
  }
  /** True the first time `id` is seen (within the last `max` ids). */
  firstTime(id: string): boolean {
    if (this.#ids.has(id)) return false;
    this.#ids.add(id);
    if (this.#ids.size > this.#max) {
      this.#ids.delete(this.#ids.values().next().value!);
    }
    return true;
  }
}
