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
  /** A fleet device's name: its history is fetched with `device=`. */
  device?: string;
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

// ---- History + live merge (trend) ----------------------------------------

/**
 * The trend window as telemetry messages plus the three chart series, all
 * index-aligned and time-ordered. History (fetched) and live (MQTT)
 * messages are merged into it in any order; a message already present
 * (same ts and seq) is skipped, so the series has no duplicates, and
 * history that arrives late is inserted where it belongs (no gaps).
 */
export interface TrendStore {
  msgs: Telemetry[];
  keys: Set<string>;
  temp: TrendPoint[];
  power: TrendPoint[];
  soc: TrendPoint[];
}

export function newTrendStore(): TrendStore {
  return { msgs: [], keys: new Set(), temp: [], power: [], soc: [] };
}

/** Dedupe key of a telemetry message: timestamp + sequence number. */
export function telemetryKey(t: Telemetry): string {
  return `${t.ts}#${t.seq}`;
}

/**
 * Add messages (history or live) to the store, in place, then prune to the
 * window ending at `nowMs`. Returns how many were new.
 */
export function mergeTelemetry(
  store: TrendStore,
  msgs: readonly Telemetry[],
  nowMs: number,
  windowMs: number = TREND_WINDOW_MS,
  maxPoints: number = MAX_TREND_POINTS,
): number {
  let added = 0;
  const cutoff = nowMs - windowMs;
  for (const m of msgs) {
    const key = telemetryKey(m);
    const p = trendSample(m);
    if (!Number.isFinite(p.x) || p.x < cutoff || store.keys.has(key)) continue;
    // Usually an append; binary search for the (rare) out-of-order insert.
    let i = store.msgs.length;
    if (i > 0 && store.temp[i - 1].x > p.x) {
      let lo = 0, hi = i;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (store.temp[mid].x <= p.x) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
    }
    store.msgs.splice(i, 0, m);
    store.temp.splice(i, 0, { x: p.x, y: p.temp });
    store.power.splice(i, 0, { x: p.x, y: p.power });
    store.soc.splice(i, 0, { x: p.x, y: p.soc });
    store.keys.add(key);
    added++;
  }
  pruneStore(store, nowMs, windowMs, maxPoints);
  return added;
}

/** Drop what fell out of the window (or beyond the cap), in place. */
export function pruneStore(
  store: TrendStore,
  nowMs: number,
  windowMs: number = TREND_WINDOW_MS,
  maxPoints: number = MAX_TREND_POINTS,
): number {
  const n = prunePoints(store.temp, nowMs, windowMs, maxPoints);
  if (n > 0) {
    store.power.splice(0, n);
    store.soc.splice(0, n);
    for (const m of store.msgs.splice(0, n)) store.keys.delete(telemetryKey(m));
  }
  return n;
}

/** The trend window as CSV rows (header first), oldest first. */
export function trendCsvRows(
  msgs: readonly Telemetry[],
): { header: string[]; rows: (string | number | null)[][] } {
  const fields = [
    "temp_c",
    "power_w",
    "soc_pct",
    "voltage_v",
    "current_a",
    "setpoint_w",
    "status_bits",
  ] as const;
  return {
    header: ["ts", "device_id", "seq", "quality", ...fields, "error"],
    rows: msgs.map((m) => [
      m.ts,
      m.device_id,
      m.seq,
      m.quality,
      ...fields.map((f) => m.quality === "good" ? m.values[f] : null),
      m.quality === "bad" ? m.error : null,
    ]),
  };
}

// ---- Alarm journal (history + live) ---------------------------------------

/** Journal events kept on the page. */
export const MAX_JOURNAL_EVENTS = 500;

export function alarmEventKey(e: AlarmEvent): string {
  return `${e.ts}#${e.device_id}#${e.alarm}#${e.state}`;
}

/**
 * Merge events (history newest first, or live) into the journal: newest
 * first, deduplicated, bounded. Returns a new array.
 */
export function mergeJournal(
  journal: readonly AlarmEvent[],
  events: readonly AlarmEvent[],
  max: number = MAX_JOURNAL_EVENTS,
): AlarmEvent[] {
  const seen = new Set(journal.map(alarmEventKey));
  const out = [...journal];
  for (const e of events) {
    if (!Number.isFinite(Date.parse(e.ts))) continue;
    const k = alarmEventKey(e);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(e);
  }
  // Stable sort: equal timestamps keep arrival order (reversed: newest first).
  return out
    .map((e, i) => ({ e, i, t: Date.parse(e.ts) }))
    .sort((a, b) => b.t - a.t || b.i - a.i)
    .slice(0, max)
    .map((x) => x.e);
}

/** The alarm list rows (see foldAlarm) of a newest-first journal. */
export function foldJournal(journal: readonly AlarmEvent[]): AlarmRow[] {
  let rows: AlarmRow[] = [];
  for (let i = journal.length - 1; i >= 0; i--) {
    rows = foldAlarm(rows, journal[i]);
  }
  return rows;
}

export function journalCsvRows(
  journal: readonly AlarmEvent[],
): { header: string[]; rows: (string | number | null)[][] } {
  return {
    header: ["ts", "device_id", "alarm", "state", "value", "message"],
    rows: journal.map((e) => [
      e.ts,
      e.device_id,
      e.alarm,
      e.state,
      Number.isFinite(e.value) ? e.value : null,
      e.message,
    ]),
  };
}

// ---- Alarm state (retained, ISA-18.2) -------------------------------------

export const ACK_STATES = [
  "normal",
  "active-unacknowledged",
  "active-acknowledged",
  "cleared-unacknowledged",
] as const;
export type AckState = typeof ACK_STATES[number];

export interface AlarmStateRecord {
  alarm: string;
  state: AckState;
  value: number | null;
  raised_ts: string | null;
  cleared_ts: string | null;
  acked_ts: string | null;
}

export interface AlarmsStateMsg {
  ts: string;
  device_id: number | null;
  alarms: AlarmStateRecord[];
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const tsOrNull = (x: unknown) =>
  x === null || (typeof x === "string" && ISO.test(x));

/** Validate the retained `{prefix}/alarms/state` payload. */
export function parseAlarmsState(
  payload: string | Uint8Array,
): { ok: true; value: AlarmsStateMsg } | { ok: false; error: string } {
  if (payload.length > 64 * 1024) {
    return { ok: false, error: "payload too large" };
  }
  let m: unknown;
  try {
    m = JSON.parse(
      typeof payload === "string" ? payload : new TextDecoder().decode(payload),
    );
  } catch {
    return { ok: false, error: "malformed JSON" };
  }
  const o = m as Record<string, unknown>;
  if (typeof m !== "object" || m === null || Array.isArray(m)) {
    return { ok: false, error: "alarm state is not an object" };
  }
  if (typeof o.ts !== "string" || !ISO.test(o.ts)) {
    return { ok: false, error: "alarm state ts not ISO 8601" };
  }
  if (o.device_id !== null && !Number.isInteger(o.device_id)) {
    return { ok: false, error: "alarm state device_id not an integer" };
  }
  if (!Array.isArray(o.alarms) || o.alarms.length > 64) {
    return { ok: false, error: "alarm state alarms not an array" };
  }
  for (const a of o.alarms as Record<string, unknown>[]) {
    if (
      typeof a !== "object" || a === null ||
      typeof a.alarm !== "string" || a.alarm.length > 64 ||
      !ACK_STATES.includes(a.state as AckState) ||
      !(a.value === null ||
        (typeof a.value === "number" && Number.isFinite(a.value))) ||
      !tsOrNull(a.raised_ts) || !tsOrNull(a.cleared_ts) ||
      !tsOrNull(a.acked_ts)
    ) {
      return { ok: false, error: "alarm state entry malformed" };
    }
  }
  return { ok: true, value: o as unknown as AlarmsStateMsg };
}

export const ACK_STATE_LABEL: Record<AckState, string> = {
  "normal": "normal",
  "active-unacknowledged": "ACTIVE, unacknowledged",
  "active-acknowledged": "ACTIVE, acknowledged",
  "cleared-unacknowledged": "cleared, unacknowledged",
};

export const canAcknowledge = (s: AckState) => s.endsWith("unacknowledged");

/**
 * How many alarms are active: from the retained state when it is at least
 * as new as the journal's latest event of that alarm, else from the journal
 * (the state message may lag its event by a moment, or be missing).
 */
export function activeAlarmCount(
  state: AlarmsStateMsg | null,
  rows: readonly AlarmRow[],
): number {
  const names = new Set<string>([
    ...(state?.alarms.map((a) => a.alarm) ?? []),
    ...rows.map((r) => r.alarm),
  ]);
  let n = 0;
  const stateMs = state ? Date.parse(state.ts) : -Infinity;
  for (const name of names) {
    const rec = state?.alarms.find((a) => a.alarm === name);
    const row = rows.find((r) => r.alarm === name); // newest first
    const rowMs = row ? Math.max(row.raisedMs ?? -1, row.clearedMs ?? -1) : -1;
    const active = rec && stateMs >= rowMs
      ? rec.state.startsWith("active")
      : row?.active ?? false;
    if (active) n++;
  }
  return n;
}

// ---- Operator commands ------------------------------------------------------

/** The page gives up waiting for a command's answer after this, ms. */
export const COMMAND_UI_TIMEOUT_MS = 3000;

/** A command answer from `cmd/.../result`. */
export interface CommandAnswer {
  id: string | null;
  ok: boolean;
  value?: number;
  error?: string;
}

export function parseCommandAnswer(
  payload: string | Uint8Array,
): CommandAnswer | null {
  if (payload.length > 64 * 1024) return null;
  try {
    const m = JSON.parse(
      typeof payload === "string" ? payload : new TextDecoder().decode(payload),
    );
    if (typeof m !== "object" || m === null || typeof m.ok !== "boolean") {
      return null;
    }
    if (m.id !== null && typeof m.id !== "string") return null;
    if (m.value !== undefined && typeof m.value !== "number") return null;
    if (m.error !== undefined && typeof m.error !== "string") return null;
    return { id: m.id, ok: m.ok, value: m.value, error: m.error };
  } catch {
    return null;
  }
}

/** The operator's setpoint entry, checked before sending (the poller re-checks). */
export function checkSetpointInput(
  raw: string,
  min: number,
  max: number,
): { ok: true; value: number } | { ok: false; error: string } {
  const s = raw.trim();
  if (!/^\d{1,6}$/.test(s)) {
    return {
      ok: false,
      error: `enter a whole number of watts, ${min}..${max}`,
    };
  }
  const v = Number(s);
  if (v < min || v > max) {
    return { ok: false, error: `out of range ${min}..${max} W` };
  }
  return { ok: true, value: v };
}

/** Where one operator command stands, as the page shows it. */
export type CommandView =
  | { kind: "idle" }
  | { kind: "invalid"; error: string }
  | { kind: "pending"; id: string; sentMs: number; value?: number }
  | { kind: "accepted"; id: string; value?: number }
  | { kind: "rejected"; id: string; error: string }
  | { kind: "timeout"; id: string };

/** Fold an answer into the view: only the answer to the pending command counts. */
export function commandAfterAnswer(
  v: CommandView,
  a: CommandAnswer,
): CommandView {
  if (v.kind !== "pending" && v.kind !== "timeout") return v;
  if (a.id !== v.id) return v;
  return a.ok
    ? {
      kind: "accepted",
      id: v.id,
      value: a.value ?? (v.kind === "pending" ? v.value : undefined),
    }
    : { kind: "rejected", id: v.id, error: a.error ?? "refused" };
}

/** After the UI timeout: still pending means no answer came. */
export function commandAfterTimeout(v: CommandView, id: string): CommandView {
  return v.kind === "pending" && v.id === id ? { kind: "timeout", id } : v;
}
