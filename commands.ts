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

function decode(
  payload: string | Uint8Array,
): { ok: true; obj: Record<string, unknown> } | { ok: false; error: string } {
  if (payload.length > MAX_PAYLOAD_BYTES) {
    return { ok: false, error: "payload too large" };
  }
  const text = typeof payload === "string"
    ? payload
    : new TextDecoder().decode(payload);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, error: "malformed JSON" };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return { ok: false, error: "command must be a JSON object" };
  }
  return { ok: true, obj: v as Record<string, unknown> };
}

function idOf(obj: Record<string, unknown>): string | null {
  return typeof obj.id === "string" && obj.id.length > 0 && obj.id.length <= 128
    ? obj.id
    : null;
}

const ISO_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/;

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
  if (!Number.isInteger(o.value)) {
    return { ok: false, id, error: "value must be an integer" };
  }
  if (o.value < SETPOINT_MIN_W || o.value > SETPOINT_MAX_W) {
    return {
      ok: false,
      id,
      error: `value out of range ${SETPOINT_MIN_W}..${SETPOINT_MAX_W}`,
    };
  }
  if (
    typeof o.ts !== "string" || !ISO_RE.test(o.ts) ||
    Number.isNaN(Date.parse(o.ts))
  ) {
    return { ok: false, id, error: "ts must be an ISO 8601 timestamp" };
  }
  const age = nowMs - Date.parse(o.ts);
  if (age > COMMAND_MAX_AGE_MS) {
    return {
      ok: false,
      id,
      error: `command too old (${Math.round(age / 1000)} s > 10 s)`,
    };
  }
  if (age < -COMMAND_MAX_SKEW_MS) {
    return { ok: false, id, error: "ts is in the future" };
  }
  return { ok: true, cmd: { id, value: o.value, ts: o.ts } };
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
