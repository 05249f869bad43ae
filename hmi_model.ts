/**
 * The HMI island's logic as pure functions: the bounded trend window, value
 * staleness, folding alarm events into rows, poller status and formatting.
 * No DOM, no clock, no I/O (time is passed in), so it is unit-tested and
 * shared by the server render and the browser bundle.
 *
 * @example
 * ```ts
 * const removed = pushPoint(tempSeries, { x: Date.now(), y: 61.2 }, Date.now(), TREND_WINDOW_MS);
 * const view = valueView(last, Date.now(), 1000);
 * rows = foldAlarm(rows, event);
 * ```
 */
import type { AlarmEvent, Status, Telemetry } from "./contract.ts";
import type { TelemetryValues } from "./registers.ts";

/** Default trend window: the last 10 minutes. */
export const TREND_WINDOW_MS = 10 * 60_000;
/** Hard cap per series, whatever the poll rate (memory and draw cost stay flat). */
export const MAX_TREND_POINTS = 3000;
/** A value is stale after this many poll intervals without a message. */
export const STALE_INTERVALS = 3;
/** Alarm rows kept in the list (oldest dropped). */
export const MAX_ALARM_ROWS = 100;

/** Props the server passes to the live island: plain JSON from config. */
export interface HmiProps {
  mqttWsUrl: string;
  topicPrefix: string;
  raiseAboveC: number;
  clearBelowC: number;
  intervalMs: number;
  windowMs: number;
}

// ---- Trend window --------------------------------------------------------

/** One chart point; `y` null draws a gap (bad quality). */
export interface TrendPoint {
  x: number;
  y: number | null;
}

/**
 * Drop points older than `nowMs - windowMs` and beyond `maxPoints` from the
 * front of a time-ordered series, in place. Returns how many were removed.
 */
export function prunePoints(
  data: TrendPoint[],
  nowMs: number,
  windowMs: number = TREND_WINDOW_MS,
  maxPoints: number = MAX_TREND_POINTS,
): number {
  const cutoff = nowMs - windowMs;
  let n = 0;
  while (n < data.length && data[n].x < cutoff) n++;
  n = Math.max(n, data.length - maxPoints);
  if (n > 0) data.splice(0, n);
  return n;
}

/**
 * Append `p` (keeping the series time-ordered: a point older than the last
 * one is dropped) and prune. Returns the number of points removed.
 */
export function pushPoint(
  data: TrendPoint[],
  p: TrendPoint,
  nowMs: number,
  windowMs: number = TREND_WINDOW_MS,
  maxPoints: number = MAX_TREND_POINTS,
): number {
  const last = data[data.length - 1];
  if (!last || p.x >= last.x) data.push(p);
  return prunePoints(data, nowMs, windowMs, maxPoints);
}

/** The trend samples of one telemetry message (nulls for bad quality). */
export function trendSample(
  t: Telemetry,
): {
  x: number;
  temp: number | null;
  power: number | null;
  soc: number | null;
} {
  const x = Date.parse(t.ts);
  if (t.quality !== "good") return { x, temp: null, power: null, soc: null };
  return {
    x,
    temp: t.values.temp_c,
    power: t.values.power_w,
    soc: t.values.soc_pct,
  };
}

// ---- Current values and staleness ---------------------------------------

/** The last telemetry and when the browser received it. */
export interface LastTelemetry {
  msg: Telemetry;
  receivedMs: number;
}

export type ValueView =
  | { kind: "none" }
  | { kind: "fresh"; values: TelemetryValues; ts: string }
  | {
    kind: "stale";
    /** The last good values, if the last message was good. */
    values: TelemetryValues | null;
    ts: string;
    ageMs: number;
  }
  | { kind: "bad"; error: string; ts: string };

/**
 * What the value panel may show. Stale when nothing arrived for
 * `STALE_INTERVALS` poll intervals (whatever the last quality was); bad
 * quality shows the error, never a number.
 */
export function valueView(
  last: LastTelemetry | null,
  nowMs: number,
  intervalMs: number,
): ValueView {
  if (!last) return { kind: "none" };
  const { msg } = last;
  const ageMs = nowMs - last.receivedMs;
  if (ageMs > STALE_INTERVALS * intervalMs) {
    return {
      kind: "stale",
      values: msg.quality === "good" ? msg.values : null,
      ts: msg.ts,
      ageMs,
    };
  }
  if (msg.quality !== "good") {
    return { kind: "bad", error: msg.error, ts: msg.ts };
  }
  return { kind: "fresh", values: msg.values, ts: msg.ts };
}

/** The value fields shown, in order, with units and decimals. */
export const VALUE_FIELDS: readonly {
  field: keyof TelemetryValues;
  label: string;
  unit: string;
  decimals: number;
}[] = [
  { field: "temp_c", label: "Temperature", unit: "C", decimals: 1 },
  { field: "power_w", label: "Power", unit: "W", decimals: 0 },
  { field: "soc_pct", label: "State of charge", unit: "%", decimals: 1 },
  { field: "voltage_v", label: "Voltage", unit: "V", decimals: 1 },
  { field: "current_a", label: "Current", unit: "A", decimals: 2 },
  { field: "setpoint_w", label: "Setpoint", unit: "W", decimals: 0 },
];

/** A number with fixed decimals, or an em dash for a non-number. */
export function formatNumber(v: unknown, decimals: number): string {
  return typeof v === "number" && Number.isFinite(v)
    ? v.toFixed(decimals)
    : "\u2014";
}

// ---- Alarm list ----------------------------------------------------------

export interface AlarmRow {
  /** Stable key for rendering. */
  key: string;
  alarm: string;
  device_id: number | null;
  active: boolean;
  /** Value at raise (or at clear, for a clear seen without its raise). */
  value: number;
  clearValue: number | null;
  message: string;
  raisedMs: number | null;
  clearedMs: number | null;
}

function sortKey(r: AlarmRow): number {
  return r.raisedMs ?? r.clearedMs ?? 0;
}

/**
 * Fold one alarm event into the list (newest first, bounded). A "raised"
 * while the same alarm of the same device is active is a duplicate and is
 * ignored; a "cleared" closes the newest active row, or becomes a row of its
 * own when the raise was never seen (page opened mid-alarm). Unknown states
 * are ignored. Returns a new array; `rows` is not modified.
 */
export function foldAlarm(
  rows: readonly AlarmRow[],
  ev: AlarmEvent,
  maxRows: number = MAX_ALARM_ROWS,
): AlarmRow[] {
  const tsMs = Date.parse(ev.ts);
  if (!Number.isFinite(tsMs)) return [...rows];
  const same = (r: AlarmRow) =>
    r.alarm === ev.alarm && r.device_id === ev.device_id;
  const open = rows.findIndex((r) => r.active && same(r));
  let next: AlarmRow[];
  if (ev.state === "raised") {
    if (open >= 0) return [...rows];
    next = [{
      key: `${ev.alarm}/${ev.device_id}/${tsMs}`,
      alarm: ev.alarm,
      device_id: ev.device_id,
      active: true,
      value: ev.value,
      clearValue: null,
      message: ev.message,
      raisedMs: tsMs,
      clearedMs: null,
    }, ...rows];
  } else if (ev.state === "cleared") {
    if (open >= 0) {
      next = rows.map((r, i) =>
        i === open
          ? { ...r, active: false, clearValue: ev.value, clearedMs: tsMs }
          : r
      );
    } else {
      if (rows.some((r) => same(r) && r.clearedMs === tsMs)) return [...rows];
      next = [{
        key: `${ev.alarm}/${ev.device_id}/c${tsMs}`,
        alarm: ev.alarm,
        device_id: ev.device_id,
        active: false,
        value: ev.value,
        clearValue: ev.value,
        message: ev.message,
        raisedMs: null,
        clearedMs: tsMs,
      }, ...rows];
    }
  } else {
    return [...rows];
  }
  next.sort((a, b) => sortKey(b) - sortKey(a));
  return next.slice(0, maxRows);
}

/** How long an alarm has been (or was) active; null when the raise is unknown. */
export function alarmDurationMs(row: AlarmRow, nowMs: number): number | null {
  if (row.raisedMs === null) return null;
  return Math.max(0, (row.clearedMs ?? nowMs) - row.raisedMs);
}

/** `75 s` -> "1 min 15 s"; `3725 s` -> "1 h 02 min". */
export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return "\u2014";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${String(m % 60).padStart(2, "0")} min`;
}

/** Local wall-clock time HH:MM:SS (the browser's time zone). */
export function formatLocalTime(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return "\u2014";
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// ---- Poller status and broker connection ---------------------------------

export type PollerState = "unknown" | "online" | "offline";

/**
 * Fold a status message: an "offline" from an older session than the
 * current "online" one is a late will and is ignored.
 */
export function foldStatus(prev: Status | null, s: Status): Status {
  if (
    prev && prev.state === "online" && s.state === "offline" &&
    prev.session !== undefined && s.session !== undefined &&
    s.session < prev.session
  ) {
    return prev;
  }
  return s;
}

export type BrokerState =
  | "connecting"
  | "connected"
  | "reconnecting"
  | "offline";

/** The broker-connection state after an mqtt.js client event. */
export function brokerStateAfter(
  prev: BrokerState,
  event: "connect" | "reconnect" | "close" | "offline" | "error",
): BrokerState {
  switch (event) {
    case "connect":
      return "connected";
    case "reconnect":
      return "reconnecting";
    case "close":
    case "offline":
      return prev === "connecting" ? "connecting" : "reconnecting";
    case "error":
      return prev === "connected" ? "reconnecting" : prev;
  }
}
