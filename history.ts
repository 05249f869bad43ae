/**
 * Trend history and alarm journal in embedded SQLite (Deno's `node:sqlite`,
 * no server). The HMI server records every telemetry and alarm message it
 * receives; pages load the recent past from it before going live.
 *
 * Retention: telemetry 7 days and alarm events 1 year by default, and a
 * row cap on each table so disk use stays bounded whatever the rate.
 *
 * @example
 * ```ts
 * const h = openHistory({ path: "./data/history.db" });
 * h.recordTelemetry(telemetry);
 * const rows = h.telemetrySince(Date.now() - 10 * 60_000);
 * h.close();
 * ```
 */
import { DatabaseSync } from "node:sqlite";
import type { AlarmEvent, Telemetry } from "./contract.ts";
import { isDeviceName } from "./fleet_model.ts";

export interface HistoryOptions {
  /** Database file, or ":memory:". */
  path: string;
  telemetryRetentionMs?: number;
  alarmRetentionMs?: number;
  /** Hard caps on rows (oldest deleted first). */
  maxTelemetryRows?: number;
  maxAlarmRows?: number;
}

export const DEFAULT_TELEMETRY_RETENTION_MS = 7 * 24 * 3600_000;
export const DEFAULT_ALARM_RETENTION_MS = 365 * 24 * 3600_000;
/** 7 days at 1 Hz is 604,800 rows; the cap leaves headroom for a second source. */
export const DEFAULT_MAX_TELEMETRY_ROWS = 1_500_000;
export const DEFAULT_MAX_ALARM_ROWS = 100_000;

/** Largest window and page the API serves. */
export const MAX_HISTORY_MINUTES = 7 * 24 * 60;
export const MAX_ALARM_LIMIT = 1000;
/** Most telemetry rows one history response carries (newest kept). */
export const MAX_HISTORY_ROWS = 20_000;

export class History {
  readonly #db: DatabaseSync;
  readonly #o: Required<HistoryOptions>;
  #insertTelemetry;
  #insertAlarm;
  #writesSincePrune = 0;

  constructor(o: HistoryOptions) {
    this.#o = {
      telemetryRetentionMs: DEFAULT_TELEMETRY_RETENTION_MS,
      alarmRetentionMs: DEFAULT_ALARM_RETENTION_MS,
      maxTelemetryRows: DEFAULT_MAX_TELEMETRY_ROWS,
      maxAlarmRows: DEFAULT_MAX_ALARM_ROWS,
      ...o,
    };
    this.#db = new DatabaseSync(o.path);
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      CREATE TABLE IF NOT EXISTS telemetry (
        ts_ms INTEGER NOT NULL,
        device_id INTEGER,
        seq INTEGER NOT NULL,
        json TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS telemetry_ts ON telemetry (ts_ms);
      CREATE TABLE IF NOT EXISTS alarms (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms INTEGER NOT NULL,
        json TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS alarms_ts ON alarms (ts_ms);
    `);
    // Fleet devices (schema 2): a nullable device name on both tables; the
    // single-device rows keep NULL. Added in place to databases of schema 1.
    for (const table of ["telemetry", "alarms"]) {
      const cols = this.#db.prepare(`PRAGMA table_info(${table})`).all();
      if (!cols.some((c) => c.name === "device")) {
        this.#db.exec(`ALTER TABLE ${table} ADD COLUMN device TEXT`);
      }
    }
    this.#db.exec(`
      CREATE INDEX IF NOT EXISTS telemetry_device_ts ON telemetry (device, ts_ms);
      CREATE INDEX IF NOT EXISTS alarms_device_ts ON alarms (device, ts_ms);
    `);
    this.#insertTelemetry = this.#db.prepare(
      "INSERT INTO telemetry (ts_ms, device_id, seq, json, device) VALUES (?, ?, ?, ?, ?)",
    );
    this.#insertAlarm = this.#db.prepare(
      "INSERT INTO alarms (ts_ms, json, device) VALUES (?, ?, ?)",
    );
  }

  /** Record one message; `device` names a fleet device (null: the single device). */
  recordTelemetry(t: Telemetry, device: string | null = null): void {
    this.#insertTelemetry.run(
      Date.parse(t.ts),
      t.device_id,
      t.seq,
      JSON.stringify(t),
      device,
    );
    this.#maybePrune(Date.parse(t.ts));
  }

  recordAlarm(a: AlarmEvent, device: string | null = null): void {
    this.#insertAlarm.run(Date.parse(a.ts), JSON.stringify(a), device);
  }

  /**
   * Telemetry with ts >= sinceMs, oldest first: at most `maxRows`, the newest
   * ones, so a week-long window cannot build a response of 600k rows.
   * `device` selects a fleet device's rows; null (default) the single device's.
   */
  telemetrySince(
    sinceMs: number,
    maxRows = MAX_HISTORY_ROWS,
    device: string | null = null,
  ): Telemetry[] {
    return this.#db
      .prepare(
        `SELECT json FROM (SELECT json, ts_ms, seq FROM telemetry
         WHERE device IS ? AND ts_ms >= ? ORDER BY ts_ms DESC, seq DESC LIMIT ?)
         ORDER BY ts_ms, seq`,
      )
      .all(device, sinceMs, maxRows)
      .map((r) => JSON.parse(r.json as string));
  }

  /** The newest `limit` alarm events (of `device`, null: the single device), newest first. */
  recentAlarms(limit: number, device: string | null = null): AlarmEvent[] {
    return this.#db
      .prepare(
        "SELECT json FROM alarms WHERE device IS ? ORDER BY ts_ms DESC, id DESC LIMIT ?",
      )
      .all(device, limit)
      .map((r) => JSON.parse(r.json as string));
  }

  counts(): { telemetry: number; alarms: number } {
    const one = (sql: string) => Number(this.#db.prepare(sql).get()!.n);
    return {
      telemetry: one("SELECT count(*) AS n FROM telemetry"),
      alarms: one("SELECT count(*) AS n FROM alarms"),
    };
  }

  /** Apply retention and row caps as of `nowMs`. */
  prune(nowMs: number): void {
    const o = this.#o;
    this.#db.prepare("DELETE FROM telemetry WHERE ts_ms < ?").run(
      nowMs - o.telemetryRetentionMs,
    );
    this.#db.prepare("DELETE FROM alarms WHERE ts_ms < ?").run(
      nowMs - o.alarmRetentionMs,
    );
    this.#db.prepare(
      `DELETE FROM telemetry WHERE rowid IN (SELECT rowid FROM telemetry ORDER BY ts_ms
       LIMIT max(0, (SELECT count(*) FROM telemetry) - ?))`,
    ).run(o.maxTelemetryRows);
    this.#db.prepare(
      `DELETE FROM alarms WHERE id IN (SELECT id FROM alarms ORDER BY ts_ms
       LIMIT max(0, (SELECT count(*) FROM alarms) - ?))`,
    ).run(o.maxAlarmRows);
  }

  close(): void {
    this.#db.close();
  }

  #maybePrune(nowMs: number): void {
    // Pruning every write would cost a count(*) per message; every 1000 is enough.
    if (++this.#writesSincePrune < 1000) return;
    this.#writesSincePrune = 0;
    this.prune(nowMs);
  }
}

export function openHistory(o: HistoryOptions): History {
  return new History(o);
}

/** A validated query parameter, or a one-line reason for a 400. */
export type Param = { ok: true; value: number } | { ok: false; error: string };

/** `?minutes=N`: an integer 1..MAX_HISTORY_MINUTES; absent means `def`. */
export function parseMinutes(raw: string | null | undefined, def = 10): Param {
  return intParam("minutes", raw, def, 1, MAX_HISTORY_MINUTES);
}

/** `?limit=N`: an integer 1..MAX_ALARM_LIMIT; absent means `def`. */
export function parseLimit(raw: string | null | undefined, def = 50): Param {
  return intParam("limit", raw, def, 1, MAX_ALARM_LIMIT);
}

/** `?device=name`: a fleet device name (see fleet_model.ts); absent means null. */
export function parseDeviceParam(
  raw: string | null | undefined,
): { ok: true; value: string | null } | { ok: false; error: string } {
  if (raw === null || raw === undefined) return { ok: true, value: null };
  if (!isDeviceName(raw)) {
    return {
      ok: false,
      error:
        "device must be a device name: 1..64 letters, digits, _ . - (one topic level)",
    };
  }
  return { ok: true, value: raw };
}

function intParam(
  name: string,
  raw: string | null | undefined,
  def: number,
  min: number,
  max: number,
): Param {
  if (raw === null || raw === undefined) return { ok: true, value: def };
  if (!/^\d{1,9}$/.test(raw)) {
    return { ok: false, error: `${name} must be an integer in ${min}..${max}` };
  }
  const n = Number(raw);
  if (n < min || n > max) {
    return { ok: false, error: `${name} must be an integer in ${min}..${max}` };
  }
  return { ok: true, value: n };
}

export { toCsv } from "./csv.ts";
