/**
 * Alarm acknowledgement states after ISA-18.2, as a pure state machine.
 * The rule in alarm.ts decides *when* a condition is active; this module
 * tracks what the operator has seen:
 *
 * | state                    | raise             | clear   | ack    |
 * |--------------------------|-------------------|---------|--------|
 * | normal                   | active-unack      | -       | -      |
 * | active-unacknowledged    | -                 | cleared-unack | active-ack |
 * | active-acknowledged      | -                 | normal  | -      |
 * | cleared-unacknowledged   | active-unack      | -       | normal |
 *
 * "-" means no change (an ack of an acknowledged or normal alarm is refused
 * with a reason).
 *
 * @example
 * ```ts
 * let rec = initialAlarmRecord("temp_high");
 * rec = onRaised(rec, { tsMs, value: 61.2 });
 * const r = onAck(rec, tsMs);
 * ```
 */
import { isoTs } from "./contract.ts";

export type AlarmAckState =
  | "normal"
  | "active-unacknowledged"
  | "active-acknowledged"
  | "cleared-unacknowledged";

export interface AlarmRecord {
  alarm: string;
  state: AlarmAckState;
  /** Value at the last transition. */
  value: number | null;
  raised_ts: string | null;
  cleared_ts: string | null;
  acked_ts: string | null;
}

export function initialAlarmRecord(alarm: string): AlarmRecord {
  return {
    alarm,
    state: "normal",
    value: null,
    raised_ts: null,
    cleared_ts: null,
    acked_ts: null,
  };
}

export const isActive = (s: AlarmAckState) => s.startsWith("active");
export const isUnacknowledged = (s: AlarmAckState) =>
  s.endsWith("unacknowledged");

/** The condition became active. */
export function onRaised(
  r: AlarmRecord,
  ev: { tsMs: number; value: number },
): AlarmRecord {
  if (isActive(r.state)) return r;
  return {
    ...r,
    state: "active-unacknowledged",
    value: ev.value,
    raised_ts: isoTs(ev.tsMs),
    cleared_ts: null,
    acked_ts: null,
  };
}

/** The condition returned to normal. */
export function onCleared(
  r: AlarmRecord,
  ev: { tsMs: number; value: number },
): AlarmRecord {
  if (!isActive(r.state)) return r;
  return {
    ...r,
    state: r.state === "active-acknowledged"
      ? "normal"
      : "cleared-unacknowledged",
    value: ev.value,
    cleared_ts: isoTs(ev.tsMs),
  };
}

/** The operator acknowledged; refused (with a reason) when nothing to ack. */
export function onAck(
  r: AlarmRecord,
  tsMs: number,
): { ok: true; record: AlarmRecord } | { ok: false; error: string } {
  if (!isUnacknowledged(r.state)) {
    return {
      ok: false,
      error: `${r.alarm} is ${r.state}, nothing to acknowledge`,
    };
  }
  return {
    ok: true,
    record: {
      ...r,
      state: r.state === "active-unacknowledged"
        ? "active-acknowledged"
        : "normal",
      acked_ts: isoTs(tsMs),
    },
  };
}

const ACK_STATES: readonly AlarmAckState[] = [
  "normal",
  "active-unacknowledged",
  "active-acknowledged",
  "cleared-unacknowledged",
];

const isTsOrNull = (v: unknown) =>
  v === null || (typeof v === "string" && Number.isFinite(Date.parse(v)));

/**
 * The record of `alarm` in an earlier run's retained alarms/state body
 * (`{alarms: [AlarmRecord, ...]}`), so a restarted poller continues from
 * it; null when absent or malformed (then the poller starts from normal).
 */
export function restoreAlarmRecord(
  body: Record<string, unknown> | null,
  alarm: string,
): AlarmRecord | null {
  const list = body?.alarms;
  if (!Array.isArray(list)) return null;
  const r = list.find((x) => x && typeof x === "object" && x.alarm === alarm);
  if (!r) return null;
  const ok = ACK_STATES.includes(r.state) &&
    (r.value === null || Number.isFinite(r.value)) &&
    isTsOrNull(r.raised_ts) && isTsOrNull(r.cleared_ts) &&
    isTsOrNull(r.acked_ts) &&
    // An alarm that is not normal was raised at some time.
    (r.state === "normal" || typeof r.raised_ts === "string");
  if (!ok) return null;
  return {
    alarm,
    state: r.state,
    value: r.value,
    raised_ts: r.raised_ts,
    cleared_ts: r.cleared_ts,
    acked_ts: r.acked_ts,
  };
}
