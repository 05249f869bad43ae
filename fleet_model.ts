/**
 * The fleet overview's logic as pure functions: which device a fleet topic
 * belongs to, folding validated messages into per-device state (kept in a
 * Map, mutated in place so 1000 devices at 1 Hz cost no copying), the row
 * each device shows (quality, staleness, alarms, online/offline), filtering,
 * sorting (problems first) and the visible window of rows. No DOM, no
 * clock, no I/O: time is passed in. Shared by the island and its tests.
 *
 * @example
 * ```ts
 * const fleet = newFleetState();
 * applyFleetMessage(fleet, "demo", "demo/inv-1/telemetry", payload, Date.now());
 * const rows = fleetRows(fleet, Date.now(), 1000, { filter: "inv", sort: "severity" });
 * ```
 */
import { isTopicSafe, parseStatus, parseTelemetry } from "./contract.ts";
import type { Status, Telemetry } from "./contract.ts";
import {
  type AlarmsStateMsg,
  onlineOfStatus,
  parseAlarmsState,
  STALE_INTERVALS,
} from "./hmi_model.ts";

// Shared with a fleet device's own page (LiveHmi), which must not pull the
// rest of this module into its first load.
export { onlineOfStatus };

/** Props the server passes to the fleet island: plain JSON from config. */
export interface FleetProps {
  mqttWsUrl: string;
  topicPrefix: string;
  /** Default poll interval (staleness) until a device's own is observed. */
  intervalMs: number;
}

/** Same bound as devices.ts MAX_NAME_LENGTH (not imported: it pulls in cli.ts). */
export const MAX_DEVICE_NAME_LENGTH = 64;
/** Topic levels the fleet uses itself; never device names (as devices.ts). */
const RESERVED = new Set(["_pollers", "telemetry", "alarms", "status"]);

/** A fleet device name: one topic-safe level, not reserved (as devices.ts). */
export function isDeviceName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_DEVICE_NAME_LENGTH &&
    !name.includes("/") && isTopicSafe(name) && !RESERVED.has(name);
}

/** The topic filters the overview subscribes to. */
export function fleetTopics(prefix: string): {
  telemetry: string;
  alarmsState: string;
  status: string;
  pollers: string;
} {
  return {
    telemetry: `${prefix}/+/telemetry`,
    alarmsState: `${prefix}/+/alarms/state`,
    status: `${prefix}/+/status`,
    pollers: `${prefix}/_pollers/+/status`,
  };
}

export type FleetTopicKind = "telemetry" | "alarmsState" | "status" | "poller";

/**
 * Which device (or poller) a topic under `prefix` is about, or null for
 * anything else (the single-device topics, `_pollers` as a device, names
 * that are not topic-safe).
 */
export function parseFleetTopic(
  prefix: string,
  topic: string,
): { kind: FleetTopicKind; name: string } | null {
  if (!topic.startsWith(prefix + "/")) return null;
  const rest = topic.slice(prefix.length + 1).split("/");
  if (rest[0] === "_pollers") {
    return rest.length === 3 && rest[2] === "status" && isDeviceName(rest[1])
      ? { kind: "poller", name: rest[1] }
      : null;
  }
  if (!isDeviceName(rest[0])) return null;
  const tail = rest.slice(1).join("/");
  const kind: FleetTopicKind | null = tail === "telemetry"
    ? "telemetry"
    : tail === "alarms/state"
    ? "alarmsState"
    : tail === "status"
    ? "status"
    : null;
  return kind ? { kind, name: rest[0] } : null;
}

/** A device's status message may name its poller (fleet.ts adds it). */
export interface DeviceStatus extends Status {
  poller?: string;
}

/** Everything the overview knows about one device. */
export interface FleetDevice {
  name: string;
  last: Telemetry | null;
  /** When the browser received `last`. */
  receivedMs: number;
  /** Poll interval observed from consecutive payload timestamps, or null. */
  intervalMs: number | null;
  alarms: AlarmsStateMsg | null;
  status: DeviceStatus | null;
}

export interface FleetState {
  devices: Map<string, FleetDevice>;
  /** Retained `{prefix}/_pollers/{poller}/status`, by poller name. */
  pollers: Map<string, Status>;
  /** Messages rejected by the contract parsers. */
  rejected: number;
  /** The latest rejected message's topic and why (for the console log). */
  lastRejected: { topic: string; error: string } | null;
}

export function newFleetState(): FleetState {
  return {
    devices: new Map(),
    pollers: new Map(),
    rejected: 0,
    lastRejected: null,
  };
}

function deviceOf(s: FleetState, name: string): FleetDevice {
  let d = s.devices.get(name);
  if (!d) {
    d = {
      name,
      last: null,
      receivedMs: 0,
      intervalMs: null,
      alarms: null,
      status: null,
    };
    s.devices.set(name, d);
  }
  return d;
}

/**
 * Validate and fold one MQTT message into the state, in place. Returns true
 * when the state changed (a render is due), false when the topic is not a
 * fleet topic or the payload was rejected (counted in `rejected`).
 */
export function applyFleetMessage(
  s: FleetState,
  prefix: string,
  topic: string,
  payload: string | Uint8Array,
  nowMs: number,
): boolean {
  const t = parseFleetTopic(prefix, topic);
  if (!t) return false;
  switch (t.kind) {
    case "telemetry": {
      const r = parseTelemetry(payload);
      if (!r.ok) return reject(s, topic, r.error);
      const d = deviceOf(s, t.name);
      const prev = d.last;
      if (prev && r.value.seq === prev.seq + 1) {
        const gap = Date.parse(r.value.ts) - Date.parse(prev.ts);
        if (gap > 0) d.intervalMs = gap;
      }
      d.last = r.value;
      d.receivedMs = nowMs;
      return true;
    }
    case "alarmsState": {
      const r = parseAlarmsState(payload);
      if (!r.ok) return reject(s, topic, r.error);
      deviceOf(s, t.name).alarms = r.value;
      return true;
    }
    case "status": {
      const r = parseStatus(payload);
      if (!r.ok) return reject(s, topic, r.error);
      const d = deviceOf(s, t.name);
      const poller = (r.value as DeviceStatus).poller;
      d.status = typeof poller === "string" && isDeviceName(poller)
        ? r.value as DeviceStatus
        : { state: r.value.state, ts: r.value.ts, session: r.value.session };
      return true;
    }
    case "poller": {
      const r = parseStatus(payload);
      if (!r.ok) return reject(s, topic, r.error);
      s.pollers.set(t.name, r.value);
      return true;
    }
  }
}

function reject(s: FleetState, topic: string, error: string): false {
  s.rejected++;
  s.lastRejected = { topic, error };
  return false;
}

// ---- Rows ------------------------------------------------------------------

export type RowQuality = "none" | "good" | "bad" | "stale";
export type RowOnline = "online" | "offline" | "unknown";

/** What one row of the overview shows. */
export interface FleetRow {
  name: string;
  quality: RowQuality;
  /** The error of a bad read. */
  error: string | null;
  /** Temperature and power of the last good read (null when not fresh). */
  tempC: number | null;
  powerW: number | null;
  ts: string | null;
  ageMs: number | null;
  /** Active alarms (active-acknowledged or active-unacknowledged). */
  active: number;
  /** Alarms waiting for acknowledgement (active or cleared). */
  unacked: number;
  /** Names of the active alarms. */
  activeNames: string[];
  online: RowOnline;
  /** Problems first: higher is worse (see severityOf). */
  severity: number;
}

/**
 * Online/offline of a device of the overview: its retained status, turned
 * offline by its dead poller's will (see onlineOfStatus in hmi_model.ts).
 */
export function onlineOf(
  d: FleetDevice,
  pollers: ReadonlyMap<string, Status>,
): RowOnline {
  return onlineOfStatus(d.status, pollers);
}

/** Rank of a row: unacked active alarm 6, active 5, bad 4, stale 3, offline 2, no data 1, fine 0. */
export function severityOf(
  r: Pick<FleetRow, "quality" | "active" | "unacked" | "online">,
): number {
  if (r.active > 0 && r.unacked > 0) return 6;
  if (r.active > 0) return 5;
  if (r.quality === "bad") return 4;
  if (r.quality === "stale") return 3;
  if (r.online === "offline") return 2;
  if (r.quality === "none") return 1;
  return 0;
}

/**
 * The row of one device at `nowMs`. Stale when nothing arrived for
 * STALE_INTERVALS poll intervals (the device's observed interval, else
 * `defaultIntervalMs`); bad quality shows the error, never a number.
 */
export function rowOf(
  d: FleetDevice,
  nowMs: number,
  defaultIntervalMs: number,
  pollers: ReadonlyMap<string, Status> = new Map(),
  /** Without a broker connection nothing is current: all stale, unknown. */
  connected = true,
): FleetRow {
  const last = d.last;
  let quality: RowQuality = "none";
  let ageMs: number | null = null;
  if (last) {
    ageMs = Math.max(0, nowMs - d.receivedMs);
    const interval = d.intervalMs ?? defaultIntervalMs;
    quality = !connected || ageMs > STALE_INTERVALS * interval
      ? "stale"
      : last.quality === "good"
      ? "good"
      : "bad";
  }
  let active = 0, unacked = 0;
  const activeNames: string[] = [];
  for (const a of d.alarms?.alarms ?? []) {
    if (a.state.startsWith("active")) {
      active++;
      activeNames.push(a.alarm);
    }
    if (a.state.endsWith("unacknowledged")) unacked++;
  }
  const good = quality === "good" && last?.quality === "good"
    ? last.values
    : null;
  const row: FleetRow = {
    name: d.name,
    quality,
    error: quality === "bad" && last?.quality === "bad" ? last.error : null,
    tempC: good ? good.temp_c : null,
    powerW: good ? good.power_w : null,
    ts: last?.ts ?? null,
    ageMs,
    active,
    unacked,
    activeNames,
    online: connected ? onlineOf(d, pollers) : "unknown",
    severity: 0,
  };
  row.severity = severityOf(row);
  return row;
}

export type FleetSort = "severity" | "name" | "temp" | "power";
export const FLEET_SORTS: readonly FleetSort[] = [
  "severity",
  "name",
  "temp",
  "power",
];

const collator = new Intl.Collator("en", { numeric: true });

/** Natural name order: inv-2 before inv-10. */
export function compareNames(a: string, b: string): number {
  return collator.compare(a, b);
}

/** Highest first, missing values last. */
function byNumberDesc(a: number | null, b: number | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return b - a;
}

export function compareRows(
  sort: FleetSort,
): (a: FleetRow, b: FleetRow) => number {
  switch (sort) {
    case "name":
      return (a, b) => compareNames(a.name, b.name);
    case "temp":
      return (a, b) =>
        byNumberDesc(a.tempC, b.tempC) || compareNames(a.name, b.name);
    case "power":
      return (a, b) =>
        byNumberDesc(a.powerW, b.powerW) || compareNames(a.name, b.name);
    case "severity":
      return (a, b) => b.severity - a.severity || compareNames(a.name, b.name);
  }
}

/** Case-insensitive substring match on the name, or a state word. */
export function matchesFilter(r: FleetRow, filter: string): boolean {
  const f = filter.trim().toLowerCase();
  if (!f) return true;
  if (r.name.toLowerCase().includes(f)) return true;
  switch (f) {
    case "alarm":
    case "alarms":
      return r.active > 0 || r.unacked > 0;
    case "bad":
    case "stale":
    case "good":
      return r.quality === f;
    case "offline":
    case "online":
      return r.online === f;
    case "problem":
    case "problems":
      return r.severity > 0;
  }
  return false;
}

export interface FleetSummary {
  total: number;
  good: number;
  bad: number;
  stale: number;
  offline: number;
  alarms: number;
}

/** All rows (filtered and sorted) plus counts over the whole fleet. */
export function fleetRows(
  s: FleetState,
  nowMs: number,
  defaultIntervalMs: number,
  view: { filter: string; sort: FleetSort; connected?: boolean },
): { rows: FleetRow[]; summary: FleetSummary } {
  const summary: FleetSummary = {
    total: 0,
    good: 0,
    bad: 0,
    stale: 0,
    offline: 0,
    alarms: 0,
  };
  const rows: FleetRow[] = [];
  for (const d of s.devices.values()) {
    const r = rowOf(
      d,
      nowMs,
      defaultIntervalMs,
      s.pollers,
      view.connected ?? true,
    );
    summary.total++;
    if (r.quality === "good") summary.good++;
    else if (r.quality === "bad") summary.bad++;
    else if (r.quality === "stale") summary.stale++;
    if (r.online === "offline") summary.offline++;
    if (r.active > 0) summary.alarms++;
    if (matchesFilter(r, view.filter)) rows.push(r);
  }
  rows.sort(compareRows(view.sort));
  return { rows, summary };
}

/**
 * The rows to render for a scroll position (windowing): `[start, end)` plus
 * `overscan` rows either side, clamped. Row height is fixed (CSS).
 */
export function visibleRange(
  total: number,
  scrollTop: number,
  viewportPx: number,
  rowPx: number,
  overscan = 10,
): { start: number; end: number } {
  if (total <= 0 || rowPx <= 0) return { start: 0, end: 0 };
  const count = Math.ceil(Math.max(0, viewportPx) / rowPx) + 1;
  // Scrolled past the end (the list just shrank): show its last screenful.
  const first = Math.min(
    Math.floor(Math.max(0, scrollTop) / rowPx),
    Math.max(0, total - count),
  );
  const start = Math.max(0, Math.min(total, first - overscan));
  const end = Math.max(start, Math.min(total, first + count + overscan));
  return { start, end };
}

/** The single-device page of a fleet device. */
export function deviceHref(name: string): string {
  return `/device/${encodeURIComponent(name)}`;
}

/**
 * The fleet device a `{prefix}/{name}/{leaf}` topic belongs to, or null
 * (other topics, and names that are not device names, e.g. `_pollers`).
 */
export function deviceOfTopic(
  prefix: string,
  topic: string,
  leaf: "telemetry" | "alarms",
): string | null {
  const head = prefix + "/", tail = "/" + leaf;
  if (
    topic.length <= head.length + tail.length || !topic.startsWith(head) ||
    !topic.endsWith(tail)
  ) return null;
  const name = topic.slice(head.length, topic.length - tail.length);
  return isDeviceName(name) ? name : null;
}
