/**
 * The HMI island's logic as pure functions: the bounded, decimated trend
 * window, the current value and how fresh it is, folding alarm events into
 * rows, poller and broker state as the badges show them, and formatting.
 * No DOM, no clock, no I/O (time is passed in), so it is unit-tested and
 * shared by the server render and the browser bundle.
 *
 * @example
 * ```ts
 * const store = newTrendStore({ intervalMs: 1000 });
 * mergeTelemetry(store, [msg], Date.now());
 * current = foldCurrent(current, msg, Date.now(), 3000);
 * const view = valueView(current, Date.now(), 1000, { connected: true, pollerOffline: false });
 * rows = foldAlarm(rows, event);
 * ```
 */
import type { AlarmEvent, Status, Telemetry } from "./contract.ts";
import type { TelemetryValues } from "./registers.ts";

/** Default trend window: the last 10 minutes. */
export const TREND_WINDOW_MS = 10 * 60_000;
/**
 * Raw messages kept for the window (CSV export, dedupe): 10 minutes at the
 * fastest poll interval the poller accepts (50 ms). Memory stays bounded
 * whatever arrives.
 */
export const MAX_TREND_MSGS = 12_000;
/**
 * The chart draws the window as this many time buckets, each as at most
 * its minimum, its maximum and one gap: at most 3 points per bucket, so the
 * draw cost is flat however fast the device is polled, and the whole
 * window is always shown. At 1 Hz (0.6 s buckets) every sample is drawn.
 */
export const TREND_BUCKETS = 1000;
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
  /**
   * The fleet's topic prefix (a fleet device's page): the page also follows
   * `{fleetPrefix}/_pollers/+/status`, the poller processes' wills.
   */
  fleetPrefix?: string;
  raiseAboveC: number;
  clearBelowC: number;
  intervalMs: number;
  windowMs: number;
}

/** The stale check runs this often: every second, faster for fast polling. */
export function staleTickMs(intervalMs: number): number {
  return Math.max(10, Math.min(1000, intervalMs));
}

// ---- Trend window --------------------------------------------------------

/** One chart point; `y` null draws a gap (bad quality, or no data). */
export interface TrendPoint {
  x: number;
  y: number | null;
}

/**
 * Drop points older than `nowMs - windowMs` from the front of a
 * time-ordered series, in place. Returns how many were removed.
 */
export function prunePoints(
  data: TrendPoint[],
  nowMs: number,
  windowMs: number = TREND_WINDOW_MS,
): number {
  const cutoff = nowMs - windowMs;
  let n = 0;
  while (n < data.length && data[n].x < cutoff) n++;
  if (n > 0) data.splice(0, n);
  return n;
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

/** The open (newest) bucket of one chart series; older buckets are final. */
interface BucketTail {
  /** `floor(x / bucketMs)`, NaN when there is none. */
  id: number;
  min: TrendPoint | null;
  max: TrendPoint | null;
  gap: TrendPoint | null;
  /** How many points of the series (at its end) belong to this bucket. */
  emitted: number;
}

const newTail = (): BucketTail => ({
  id: NaN,
  min: null,
  max: null,
  gap: null,
  emitted: 0,
});

/**
 * The trend window: the raw telemetry messages (time-ordered, for the CSV
 * export and dedupe) and the three chart series drawn from them. History
 * (fetched) and live (MQTT) messages are merged in any order; a message
 * already present (same ts and seq) is skipped, history that arrives late
 * is inserted where it belongs. The chart series are not index-aligned
 * with `msgs`: they are decimated (min/max per time bucket) and carry a
 * null point wherever the line must break: bad quality, or consecutive
 * samples more than STALE_INTERVALS poll intervals apart (the poller was
 * down: never draw a straight line through a period without data). The
 * series arrays are mutated in place, so a chart can hold them.
 */
export interface TrendStore {
  windowMs: number;
  /** Configured poll interval: the gap rule until one is observed. */
  intervalMs: number;
  bucketMs: number;
  maxMsgs: number;
  msgs: Telemetry[];
  keys: Set<string>;
  temp: TrendPoint[];
  power: TrendPoint[];
  soc: TrendPoint[];
  tails: [BucketTail, BucketTail, BucketTail];
  /** x of the newest sample fed to the series (NaN: none yet). */
  lastX: number;
  /** Recent intervals between consecutive polls (seq n, n + 1), ms. */
  deltas: number[];
  /** Median of `deltas`: the device's actual poll interval, or null. */
  observedMs: number | null;
}

/** Intervals kept for the observed poll interval. */
const DELTAS_KEPT = 15;

export function newTrendStore(
  opts: {
    windowMs?: number;
    intervalMs?: number;
    maxMsgs?: number;
    buckets?: number;
  } = {},
): TrendStore {
  const windowMs = opts.windowMs ?? TREND_WINDOW_MS;
  return {
    windowMs,
    intervalMs: opts.intervalMs ?? 1000,
    bucketMs: windowMs / (opts.buckets ?? TREND_BUCKETS),
    maxMsgs: opts.maxMsgs ?? MAX_TREND_MSGS,
    msgs: [],
    keys: new Set(),
    temp: [],
    power: [],
    soc: [],
    tails: [newTail(), newTail(), newTail()],
    lastX: NaN,
    deltas: [],
    observedMs: null,
  };
}

/** Dedupe key of a telemetry message: timestamp + sequence number. */
export function telemetryKey(t: Telemetry): string {
  return `${t.ts}#${t.seq}`;
}

/** The poll interval the page judges by: observed if known, else configured. */
export function effectiveIntervalMs(store: TrendStore): number {
  return store.observedMs ?? store.intervalMs;
}

/** Samples further apart than this are not joined by a line. */
export function trendGapMs(store: TrendStore): number {
  return STALE_INTERVALS * effectiveIntervalMs(store);
}

function observeDelta(store: TrendStore, prev: Telemetry, m: Telemetry): void {
  if (m.seq !== prev.seq + 1) return;
  const d = Date.parse(m.ts) - Date.parse(prev.ts);
  if (!(d > 0)) return;
  store.deltas.push(d);
  if (store.deltas.length > DELTAS_KEPT) store.deltas.shift();
  const sorted = [...store.deltas].sort((a, b) => a - b);
  store.observedMs = sorted[sorted.length >> 1];
}

/** Put one point into a series' open bucket (or open the next bucket). */
function feedPoint(
  out: TrendPoint[],
  t: BucketTail,
  p: TrendPoint,
  bucketMs: number,
): void {
  const id = Math.floor(p.x / bucketMs);
  if (id !== t.id) {
    t.id = id;
    t.min = t.max = t.gap = null;
    t.emitted = 0;
  } else {
    for (let k = 0; k < t.emitted; k++) out.pop();
  }
  if (p.y === null) {
    t.gap ??= p;
  } else {
    // Earliest minimum, latest maximum: two equal samples are both kept.
    if (!t.min || p.y < t.min.y!) t.min = p;
    if (!t.max || p.y >= t.max.y!) t.max = p;
  }
  const pts: TrendPoint[] = [];
  for (const q of [t.min, t.max, t.gap]) {
    if (q && !pts.includes(q)) pts.push(q);
  }
  pts.sort((a, b) => a.x - b.x);
  for (const q of pts) out.push(q);
  t.emitted = pts.length;
}

/** Feed one message's samples to the three series (time order). */
function feedMessage(store: TrendStore, m: Telemetry): void {
  const s = trendSample(m);
  const series = [store.temp, store.power, store.soc];
  const ys = [s.temp, s.power, s.soc];
  if (Number.isFinite(store.lastX) && s.x - store.lastX > trendGapMs(store)) {
    // No data for longer than the gap rule: break the line in between.
    const gx = store.lastX + (s.x - store.lastX) / 2;
    for (let i = 0; i < 3; i++) {
      feedPoint(series[i], store.tails[i], { x: gx, y: null }, store.bucketMs);
    }
  }
  for (let i = 0; i < 3; i++) {
    feedPoint(series[i], store.tails[i], { x: s.x, y: ys[i] }, store.bucketMs);
  }
  store.lastX = s.x;
}

/** Redraw the series from `msgs` (after an out-of-order insert), in place. */
function rebuildSeries(store: TrendStore): void {
  const fresh = newTrendStore({
    windowMs: store.windowMs,
    intervalMs: store.intervalMs,
    buckets: store.windowMs / store.bucketMs,
  });
  for (let i = 0; i < store.msgs.length; i++) {
    if (i > 0) observeDelta(fresh, store.msgs[i - 1], store.msgs[i]);
    feedMessage(fresh, store.msgs[i]);
  }
  // One splice per series: a chart holding the arrays sees one change.
  store.temp.splice(0, store.temp.length, ...fresh.temp);
  store.power.splice(0, store.power.length, ...fresh.power);
  store.soc.splice(0, store.soc.length, ...fresh.soc);
  store.tails = fresh.tails;
  store.lastX = fresh.lastX;
  store.deltas = fresh.deltas;
  store.observedMs = fresh.observedMs;
}

/**
 * Add messages (history or live, any order) to the store, in place, then
 * prune to the window ending at `nowMs`. Returns how many were new.
 * Appends (the live case) cost O(1); anything older than the newest
 * message already held is inserted in order and the series are redrawn
 * once for the whole batch.
 */
export function mergeTelemetry(
  store: TrendStore,
  msgs: readonly Telemetry[],
  nowMs: number,
): number {
  const cutoff = nowMs - store.windowMs;
  const fresh: { m: Telemetry; x: number }[] = [];
  for (const m of msgs) {
    const key = telemetryKey(m);
    const x = Date.parse(m.ts);
    if (!Number.isFinite(x) || x < cutoff || store.keys.has(key)) continue;
    store.keys.add(key);
    fresh.push({ m, x });
  }
  if (fresh.length === 0) {
    pruneStore(store, nowMs);
    return 0;
  }
  let lastX = store.msgs.length
    ? Date.parse(store.msgs[store.msgs.length - 1].ts)
    : -Infinity;
  let inOrder = true;
  for (const f of fresh) {
    if (f.x < lastX) inOrder = false;
    lastX = Math.max(lastX, f.x);
  }
  if (inOrder) {
    for (const { m } of fresh) {
      const prev = store.msgs[store.msgs.length - 1];
      store.msgs.push(m);
      if (prev) observeDelta(store, prev, m);
      feedMessage(store, m);
    }
  } else {
    // Stable sort: equal timestamps keep the order they arrived in.
    const all = [
      ...store.msgs.map((m) => ({ m, x: Date.parse(m.ts) })),
      ...fresh,
    ];
    all.sort((a, b) => a.x - b.x);
    store.msgs = all.map((e) => e.m);
    rebuildSeries(store);
  }
  pruneStore(store, nowMs);
  return fresh.length;
}

/** Drop what fell out of the window (or beyond the message cap), in place. */
export function pruneStore(store: TrendStore, nowMs: number): number {
  const cutoff = nowMs - store.windowMs;
  let n = 0;
  while (n < store.msgs.length && Date.parse(store.msgs[n].ts) < cutoff) n++;
  n = Math.max(n, store.msgs.length - store.maxMsgs);
  if (n > 0) {
    for (const m of store.msgs.splice(0, n)) store.keys.delete(telemetryKey(m));
  }
  const series = [store.temp, store.power, store.soc];
  for (let i = 0; i < 3; i++) {
    prunePoints(series[i], nowMs, store.windowMs);
    // The open bucket lost points to the window edge: it is closed now.
    if (series[i].length < store.tails[i].emitted) store.tails[i] = newTail();
  }
  return n;
}

// ---- Current value and its freshness ---------------------------------------

/** Recent clock offsets kept for the freshness estimate. */
export const OFFSET_SAMPLES = 16;
/** Device and browser clocks further apart than this are pointed out. */
export const CLOCK_SKEW_NOTE_MS = 5_000;

/**
 * The telemetry message the value panel shows, and what is needed to judge
 * how fresh it is.
 *
 * Freshness is judged from the message's own `ts` (the poller's clock at
 * the read), not from when the browser happened to receive it: a message
 * delivered late is old however recently it arrived. The poller and the
 * browser are different machines whose clocks may disagree, so `ts` is
 * first mapped onto the browser's clock with an offset estimate: the
 * smallest `receivedMs - ts` among the last OFFSET_SAMPLES live messages.
 * Delivery delay is never negative, so the smallest offset is that of the
 * best-delivered message: clock skew plus the minimum latency (NTP's
 * minimum-delay filter, in one direction). A constant skew then cancels
 * out and is reported ("device clock 42 s behind this browser") instead of
 * marking every value stale or every value fresh; a message delivered
 * later than its peers shows its real age. What no one-way estimate can
 * tell apart is a constant skew from a constant delivery delay: both are
 * reported as skew.
 */
export interface CurrentValue {
  msg: Telemetry;
  /** The message's `ts`, epoch ms (device clock). */
  tsMs: number;
  /** When the browser received it (browser clock). */
  receivedMs: number;
  /** `ts` of the first bad message of the current run of bad ones. */
  badSinceMs: number | null;
  /** `receivedMs - tsMs` of recent live messages, oldest first. */
  offsets: number[];
  /** Their minimum: the device clock mapped onto the browser's. */
  offsetMs: number;
  /** Messages not shown (replayed, or older than the one shown). */
  ignored: number;
}

/**
 * Fold one live telemetry message into the current value. A replayed
 * message (`replayed: true`, delivered after a broker outage) or one older
 * than the message shown never replaces it: those fill the trend only.
 * Two exceptions keep a device whose clock stepped back from being ignored
 * for good: the poller's next message (`seq` + 1, seq has no gaps within a
 * poller run) and the first message of a new poller run (`seq` 1) are
 * always taken, and the offset estimate restarts from them.
 */
export function foldCurrent(
  prev: CurrentValue | null,
  m: Telemetry,
  receivedMs: number,
): CurrentValue | null {
  const tsMs = Date.parse(m.ts);
  if (!Number.isFinite(tsMs)) return prev;
  if (prev && tsMs === prev.tsMs && m.seq === prev.msg.seq) return prev; // a redelivery
  const next = prev !== null && m.seq === prev.msg.seq + 1;
  const restart = prev !== null && m.seq === 1 && prev.msg.seq !== 1;
  if (m.replayed || (prev && tsMs < prev.tsMs && !next && !restart)) {
    return prev ? { ...prev, ignored: prev.ignored + 1 } : null;
  }
  const steppedBack = prev !== null && tsMs < prev.tsMs;
  const offsets = steppedBack || !prev
    ? [receivedMs - tsMs]
    : [...prev.offsets, receivedMs - tsMs].slice(-OFFSET_SAMPLES);
  return {
    msg: m,
    tsMs,
    receivedMs,
    badSinceMs: m.quality !== "bad"
      ? null
      : prev?.msg.quality === "bad" && prev.badSinceMs !== null
      ? prev.badSinceMs
      : tsMs,
    offsets,
    offsetMs: Math.min(...offsets),
    ignored: 0,
  };
}

/** What else the value panel must know: the broker link and the poller. */
export interface ValueContext {
  /** Connected to the broker now (else nothing new can arrive). */
  connected: boolean;
  /** The poller is known to be offline (its status or its will). */
  pollerOffline: boolean;
}

export type ValueView =
  | { kind: "none" }
  | {
    kind: "fresh";
    values: TelemetryValues;
    ts: string;
    /** Device clock minus browser clock when far apart, else null. */
    skewMs: number | null;
  }
  | {
    kind: "stale";
    /** Why: no broker connection, poller offline, or no data for a while. */
    reason: string;
    /** The last good values, if the last message was good. */
    values: TelemetryValues | null;
    /** The error, if the last message was bad. */
    error: string | null;
    ts: string;
    ageMs: number;
    skewMs: number | null;
  }
  | {
    kind: "bad";
    error: string;
    ts: string;
    /** Since when every report has been bad. */
    sinceMs: number;
    /** Age of the latest bad report. */
    ageMs: number;
    skewMs: number | null;
  };

/**
 * What the value panel may show. Stale at once when the page has no broker
 * connection or the poller is offline; stale when the newest message is
 * older than `STALE_INTERVALS` poll intervals (by its `ts`, see
 * CurrentValue). While reports are bad (the device is lost and the poller
 * backs off, so reports come further and further apart) it stays "bad
 * since ..." with the age of the latest report instead of flipping between
 * bad and stale. Bad quality shows the error, never a number.
 */
export function valueView(
  cur: CurrentValue | null,
  nowMs: number,
  intervalMs: number,
  ctx: ValueContext = { connected: true, pollerOffline: false },
): ValueView {
  if (!cur) return { kind: "none" };
  const { msg } = cur;
  const ageMs = Math.max(0, nowMs - (cur.tsMs + cur.offsetMs));
  const skewMs = Math.abs(cur.offsetMs) > CLOCK_SKEW_NOTE_MS
    ? -cur.offsetMs
    : null;
  const stale = (reason: string): ValueView => ({
    kind: "stale",
    reason,
    values: msg.quality === "good" ? msg.values : null,
    error: msg.quality === "bad" ? msg.error : null,
    ts: msg.ts,
    ageMs,
    skewMs,
  });
  if (!ctx.connected) return stale("no broker connection");
  if (ctx.pollerOffline) return stale("poller offline");
  if (msg.quality !== "good") {
    return {
      kind: "bad",
      error: msg.error,
      ts: msg.ts,
      sinceMs: cur.badSinceMs ?? cur.tsMs,
      ageMs,
      skewMs,
    };
  }
  if (ageMs > STALE_INTERVALS * intervalMs) {
    return stale(`no data for ${formatDuration(ageMs)}`);
  }
  return { kind: "fresh", values: msg.values, ts: msg.ts, skewMs };
}

/** "device clock 42 s behind this browser" */
export function skewText(skewMs: number): string {
  return `device clock ${formatDuration(Math.abs(skewMs))} ${
    skewMs < 0 ? "behind" : "ahead of"
  } this browser`;
}

/** The one-line quality text above the values. */
export function qualityText(v: ValueView, nowMs: number): string {
  const skew = v.kind !== "none" && v.skewMs !== null
    ? `; ${skewText(v.skewMs)}`
    : "";
  switch (v.kind) {
    case "none":
      return "No data yet";
    case "fresh":
      return `Quality: good, ${formatWhen(Date.parse(v.ts), nowMs)}${skew}`;
    case "stale":
      return `STALE: ${v.reason} (last ${
        v.error !== null ? `report BAD: ${v.error}, ` : ""
      }${formatWhen(Date.parse(v.ts), nowMs)}${skew})`;
    case "bad":
      return `BAD since ${formatWhen(v.sinceMs, nowMs)} (${v.error}), ` +
        `last report ${formatDuration(v.ageMs)} ago${skew}`;
  }
}

/** The value fields shown, in order, with units, decimals and their alarm. */
export const VALUE_FIELDS: readonly {
  field: keyof TelemetryValues;
  label: string;
  unit: string;
  decimals: number;
  /** The alarm on this value: its tile turns red while it is active. */
  alarm?: string;
}[] = [
  {
    field: "temp_c",
    label: "Temperature",
    unit: "\u00b0C",
    decimals: 1,
    alarm: "temp_high",
  },
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

/** "1 event", "2 events". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
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

const pad2 = (n: number) => String(n).padStart(2, "0");

/** Local wall-clock time HH:MM:SS (the browser's time zone). */
export function formatLocalTime(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return "\u2014";
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${
    pad2(d.getSeconds())
  }`;
}

/**
 * A moment as the operator reads it: HH:MM:SS today (local time, the day of
 * `nowMs`), YYYY-MM-DD HH:MM:SS on any other day (the alarm journal spans a
 * year).
 */
export function formatWhen(ms: number | null, nowMs: number): string {
  if (ms === null || !Number.isFinite(ms)) return "\u2014";
  const d = new Date(ms);
  const now = new Date(nowMs);
  const time = formatLocalTime(ms);
  if (
    d.getFullYear() === now.getFullYear() &&
    d.getMonth() === now.getMonth() && d.getDate() === now.getDate()
  ) return time;
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${
    pad2(d.getDate())
  } ${time}`;
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

/**
 * Online/offline of a device from its retained status (null: none yet),
 * turned offline when the poller it names (fleet.ts adds `poller` to each
 * device's status) is offline in a session at least as new: the poller
 * process died and its will fired on `{prefix}/_pollers/{poller}/status`,
 * and the device statuses it kept could not be updated. Used by the fleet
 * overview (fleet_model.ts onlineOf) and by a fleet device's own page.
 */
export function onlineOfStatus(
  st: (Status & { poller?: unknown }) | null,
  pollers: ReadonlyMap<string, Status>,
): PollerState {
  if (!st) return "unknown";
  if (st.state === "offline") return "offline";
  const p = typeof st.poller === "string" ? pollers.get(st.poller) : undefined;
  if (
    p && p.state === "offline" &&
    (p.session === undefined || st.session === undefined ||
      p.session >= st.session)
  ) return "offline";
  return "online";
}

/**
 * The poller name of a `{fleetPrefix}/_pollers/{poller}/status` topic (the
 * one-level wildcard a fleet device's page subscribes to), else null.
 */
export function pollerOfTopic(
  fleetPrefix: string,
  topic: string,
): string | null {
  const head = `${fleetPrefix}/_pollers/`, tail = "/status";
  if (
    topic.length <= head.length + tail.length || !topic.startsWith(head) ||
    !topic.endsWith(tail)
  ) return null;
  const name = topic.slice(head.length, -tail.length);
  return name.includes("/") ? null : name;
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
 * Which alarms are active: from the retained state when it is at least as
 * new as the journal's latest event of that alarm, else from the journal
 * (the state message may lag its event by a moment, or be missing).
 */
export function activeAlarmNames(
  state: AlarmsStateMsg | null,
  rows: readonly AlarmRow[],
): string[] {
  const names = new Set<string>([
    ...(state?.alarms.map((a) => a.alarm) ?? []),
    ...rows.map((r) => r.alarm),
  ]);
  const out: string[] = [];
  const stateMs = state ? Date.parse(state.ts) : -Infinity;
  for (const name of names) {
    const rec = state?.alarms.find((a) => a.alarm === name);
    const row = rows.find((r) => r.alarm === name); // newest first
    const rowMs = row ? Math.max(row.raisedMs ?? -1, row.clearedMs ?? -1) : -1;
    const active = rec && stateMs >= rowMs
      ? rec.state.startsWith("active")
      : row?.active ?? false;
    if (active) out.push(name);
  }
  return out;
}

/** How many alarms are active (see activeAlarmNames). */
export function activeAlarmCount(
  state: AlarmsStateMsg | null,
  rows: readonly AlarmRow[],
): number {
  return activeAlarmNames(state, rows).length;
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

// ---- Badges ------------------------------------------------------------------

/** What a badge shows: its text and tone (grey unless known good or bad). */
export interface Badge {
  tone: "good" | "bad" | "alarm" | "unknown";
  text: string;
}

/**
 * The poller badge. Green or red only for a status received on the current
 * broker connection (a retained status is redelivered on every subscribe);
 * without a connection nothing can be known, so it is grey "unknown" with
 * the last moment the poller was known to be online.
 */
export function pollerBadge(
  a: {
    connected: boolean;
    /** A status arrived on the current connection. */
    live: boolean;
    state: PollerState;
    /** When the page last knew the poller online (browser clock). */
    lastOnlineMs: number | null;
  },
  nowMs: number,
): Badge {
  if (a.connected && a.live && a.state !== "unknown") {
    return a.state === "online"
      ? { tone: "good", text: "Poller: online" }
      : { tone: "bad", text: "Poller: offline" };
  }
  return {
    tone: "unknown",
    text: a.lastOnlineMs === null
      ? "Poller: unknown"
      : `Poller: unknown (last online ${formatWhen(a.lastOnlineMs, nowMs)})`,
  };
}

/**
 * The alarm summary badge. Red whenever an alarm is known active; green
 * "No active alarms" only from the retained alarm state received on the
 * current connection; grey "unknown" otherwise (no broker, or no state
 * yet), with the last count known when the connection was lost.
 */
export function alarmBadge(a: {
  connected: boolean;
  /** The retained alarm state arrived on the current connection. */
  live: boolean;
  active: number;
}): Badge {
  if (!a.connected) {
    return {
      tone: "unknown",
      text: a.active > 0
        ? `Alarms: unknown (${
          plural(a.active, "active alarm")
        } when last connected)`
        : "Alarms: unknown",
    };
  }
  if (a.active > 0) {
    return { tone: "alarm", text: plural(a.active, "active alarm") };
  }
  return a.live
    ? { tone: "good", text: "No active alarms" }
    : { tone: "unknown", text: "Alarms: unknown" };
}

// ---- Logging rejected input -------------------------------------------------

/** Rejected messages logged one by one before only counts are logged. */
export const REJECT_LOG_FIRST = 5;
/** After that, at most one summary line per this many ms. */
export const REJECT_LOG_EVERY_MS = 10_000;

/** Rate limiter state for the console log of rejected messages. */
export interface RejectLog {
  count: number;
  /** Rejections not logged yet. */
  pending: number;
  lastTopic: string;
  lastError: string;
  lastLogMs: number;
}

export function newRejectLog(): RejectLog {
  return { count: 0, pending: 0, lastTopic: "", lastError: "", lastLogMs: 0 };
}

/**
 * Note one rejected message, in place. Returns the line to log
 * (console.warn) or null: the first REJECT_LOG_FIRST one by one, then at
 * most one count per REJECT_LOG_EVERY_MS (see flushRejectLog), so a flood
 * of garbage cannot flood the console.
 */
export function noteRejection(
  log: RejectLog,
  topic: string,
  error: string,
  nowMs: number,
): string | null {
  log.count++;
  log.lastTopic = topic.slice(0, 200);
  log.lastError = error.slice(0, 200);
  if (log.count <= REJECT_LOG_FIRST) {
    log.lastLogMs = nowMs;
    return `hmi: ignored an invalid message on ${log.lastTopic}: ${log.lastError}${
      log.count === REJECT_LOG_FIRST
        ? ` (from now on counted, logged at most every ${
          REJECT_LOG_EVERY_MS / 1000
        } s)`
        : ""
    }`;
  }
  log.pending++;
  return flushRejectLog(log, nowMs);
}

/** The summary line of the rejections not logged yet, when one is due. */
export function flushRejectLog(log: RejectLog, nowMs: number): string | null {
  if (log.pending === 0 || nowMs - log.lastLogMs < REJECT_LOG_EVERY_MS) {
    return null;
  }
  const line = `hmi: ignored ${
    plural(log.pending, "more invalid message")
  } (${log.count} in all; latest on ${log.lastTopic}: ${log.lastError})`;
  log.pending = 0;
  log.lastLogMs = nowMs;
  return line;
}

// ---- Chart helpers -----------------------------------------------------------

/** Round steps for the time axis, ms. */
const TICK_STEPS = [
  1_000,
  2_000,
  5_000,
  10_000,
  15_000,
  30_000,
  60_000,
  120_000,
  300_000,
  600_000,
  900_000,
  1_800_000,
  3_600_000,
];

/**
 * Round time-axis ticks between `minMs` and `maxMs`: the smallest round
 * step (…, 30 s, 1 min, 2 min, 5 min, …) giving at most `maxTicks`,
 * aligned to local wall-clock time (`tzOffsetMs` = local minus UTC).
 */
export function timeTicks(
  minMs: number,
  maxMs: number,
  maxTicks: number,
  tzOffsetMs = 0,
): { step: number; ticks: number[] } {
  const span = Math.max(0, maxMs - minMs);
  const n = Math.max(1, Math.floor(maxTicks));
  const step = TICK_STEPS.find((s) => span / s <= n) ??
    TICK_STEPS[TICK_STEPS.length - 1];
  const ticks: number[] = [];
  const first = Math.ceil((minMs + tzOffsetMs) / step) * step - tzOffsetMs;
  for (let t = first; t <= maxMs; t += step) ticks.push(t);
  return { step, ticks };
}

/** A tick label: HH:MM for whole-minute steps, else HH:MM:SS. */
export function tickLabel(ms: number, stepMs: number): string {
  const t = formatLocalTime(ms);
  return stepMs % 60_000 === 0 ? t.slice(0, 5) : t;
}

/**
 * Label positions (pixels, any order) moved apart so that no two are
 * closer than `minGap`, keeping their order; the first ones stay put.
 */
export function spreadLabels(ys: readonly number[], minGap: number): number[] {
  const order = ys.map((y, i) => ({ y, i })).sort((a, b) => a.y - b.y);
  for (let k = 1; k < order.length; k++) {
    order[k].y = Math.max(order[k].y, order[k - 1].y + minGap);
  }
  const out = new Array<number>(ys.length);
  for (const o of order) out[o.i] = o.y;
  return out;
}
