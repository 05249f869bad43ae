/**
 * Trend history and alarm journal in embedded SQLite (Deno's `node:sqlite`,
 * no server). The HMI server records every telemetry and alarm message it
 * receives; pages load the recent past from it before going live.
 *
 * Bounds, all against the server's clock (never a message's own `ts`):
 * - retention: telemetry 7 days, alarm events 1 year;
 * - a message dated more than `maxFutureMs` (5 min) ahead is refused, so one
 *   message from a wrong clock cannot make everything else look expired;
 * - disk: the database's used size stays at `maxBytes` (HISTORY_MAX_MB; at
 *   most one check interval of rows over it). Past it the oldest telemetry
 *   of the device with the most rows goes first (water-filling, see
 *   `fairEviction`), so a large fleet cannot push a small device's history
 *   out; alarm events have their own row cap instead.
 * Pruning runs at open, every 1000 writes and on an (unref'd) timer. While
 * recording, one call evicts a bounded number of rows from a bounded number
 * of devices, and row counts per device come from triggers, so no call
 * stalls the server however large the database is.
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
  /** Bound on the database's used size, bytes (telemetry evicted fairly past it). */
  maxBytes?: number;
  /** Hard cap on alarm rows (oldest deleted first). */
  maxAlarmRows?: number;
  /** Messages dated further ahead of `now()` than this are refused, ms. */
  maxFutureMs?: number;
  /** Prune on a timer this often, ms (0: only at open and every 1000 writes). */
  pruneEveryMs?: number;
  /** The server clock. */
  now?: () => number;
  /** Where eviction at the size cap and timer failures are reported. */
  log?: (l: string) => void;
}

/** Outcome of recording one message: refused ones say why. */
export type RecordResult = { ok: true } | { ok: false; error: string };

/** What one `prune()` removed. */
export interface PruneReport {
  telemetryExpired: number;
  alarmsExpired: number;
  /** Alarm rows over `maxAlarmRows`. */
  alarmsCapped: number;
  /** Telemetry rows evicted at the size cap, and of how many devices. */
  evicted: number;
  evictedDevices: number;
}

export const DEFAULT_TELEMETRY_RETENTION_MS = 7 * 24 * 3600_000;
export const DEFAULT_ALARM_RETENTION_MS = 365 * 24 * 3600_000;
/** HISTORY_MAX_MB's default: 7 days of one device at 1 Hz take ~165 MB. */
export const DEFAULT_MAX_MB = 1024;
export const DEFAULT_MAX_ALARM_ROWS = 100_000;
export const DEFAULT_MAX_FUTURE_MS = 5 * 60_000;
export const DEFAULT_PRUNE_EVERY_MS = 60_000;
/** At the size cap, evict down to this fraction of it (not one row per write). */
const EVICT_TO = 0.95;
/** While recording, prune after this many writes ... */
const PRUNE_EVERY_WRITES = 1000;
/**
 * ... and evict at most this many rows per call (≤ ~37 ms here): more than
 * were written since, so the size stays at the cap, but never a pause of a
 * second, which the eviction of 5 % of a large database in one go was.
 */
export const EVICT_ROWS_PER_CALL = 2 * PRUNE_EVERY_WRITES;
/** ... from at most this many devices (the largest). */
const EVICT_DEVICES_PER_CALL = 100;

/** Largest window and page the API serves. */
export const MAX_HISTORY_MINUTES = 7 * 24 * 60;
export const MAX_ALARM_LIMIT = 1000;
/** Most telemetry rows one history response carries (newest kept). */
export const MAX_HISTORY_ROWS = 20_000;

export class History {
  readonly #db: DatabaseSync;
  readonly #o: Required<Omit<HistoryOptions, "log">> & {
    log?: (l: string) => void;
  };
  #insertTelemetry;
  #insertAlarm;
  #writesSincePrune = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(o: HistoryOptions) {
    this.#o = {
      telemetryRetentionMs: DEFAULT_TELEMETRY_RETENTION_MS,
      alarmRetentionMs: DEFAULT_ALARM_RETENTION_MS,
      maxBytes: DEFAULT_MAX_MB * 1024 * 1024,
      maxAlarmRows: DEFAULT_MAX_ALARM_ROWS,
      maxFutureMs: DEFAULT_MAX_FUTURE_MS,
      pruneEveryMs: DEFAULT_PRUNE_EVERY_MS,
      now: Date.now,
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
    this.#countRowsPerDevice();
    this.#insertTelemetry = this.#db.prepare(
      "INSERT INTO telemetry (ts_ms, device_id, seq, json, device) VALUES (?, ?, ?, ?, ?)",
    );
    this.#insertAlarm = this.#db.prepare(
      "INSERT INTO alarms (ts_ms, json, device) VALUES (?, ?, ?)",
    );
    // Whatever expired while the server was down goes now, not 1000 writes later.
    this.prune();
    if (this.#o.pruneEveryMs > 0) {
      const timer = this.#timer = setInterval(() => {
        try {
          this.#pruneAndReport();
        } catch (e) {
          this.#o.log?.(`history: pruning failed: ${(e as Error).message}`);
        }
      }, this.#o.pruneEveryMs);
      // A quiet HMI still prunes, but the timer never keeps a process alive.
      Deno.unrefTimer(timer);
    }
  }

  /**
   * Record one message; `device` names a fleet device (null: the single
   * device). Refused (not stored) when dated too far in the future.
   */
  recordTelemetry(t: Telemetry, device: string | null = null): RecordResult {
    const tsMs = Date.parse(t.ts);
    const future = this.#checkFuture(tsMs);
    if (!future.ok) return future;
    this.#insertTelemetry.run(
      tsMs,
      t.device_id,
      t.seq,
      JSON.stringify(t),
      device,
    );
    this.#maybePrune();
    return future;
  }

  /** Record one alarm event (see `recordTelemetry`). */
  recordAlarm(a: AlarmEvent, device: string | null = null): RecordResult {
    const tsMs = Date.parse(a.ts);
    const future = this.#checkFuture(tsMs);
    if (!future.ok) return future;
    this.#insertAlarm.run(tsMs, JSON.stringify(a), device);
    this.#maybePrune();
    return future;
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
    return this.telemetryWindow(sinceMs, maxRows, device).rows;
  }

  /**
   * `telemetrySince` that also says whether older rows of the window were
   * left out (`truncated`) because of `maxRows`.
   */
  telemetryWindow(
    sinceMs: number,
    maxRows = MAX_HISTORY_ROWS,
    device: string | null = null,
  ): { rows: Telemetry[]; truncated: boolean } {
    const rows = this.#db
      .prepare(
        `SELECT json FROM telemetry WHERE device IS ? AND ts_ms >= ?
         ORDER BY ts_ms DESC, seq DESC LIMIT ?`,
      )
      .all(device, sinceMs, maxRows + 1);
    const truncated = rows.length > maxRows;
    if (truncated) rows.pop();
    return {
      rows: rows.reverse().map((r) => JSON.parse(r.json as string)),
      truncated,
    };
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

  /** Rows stored (telemetry from the per-device counts: no table scan). */
  counts(): { telemetry: number; alarms: number } {
    return { telemetry: sum(this.#rowsPerDevice()), alarms: this.#alarmRows() };
  }

  /** Alarm rows (bounded by `maxAlarmRows`, so counting them is cheap). */
  #alarmRows(): number {
    return Number(
      this.#db.prepare("SELECT count(*) AS n FROM alarms").get()!.n,
    );
  }

  /**
   * Telemetry rows per device (null: the single device), kept by triggers
   * in `telemetry_rows`: eviction needs them every time, and counting a
   * table of millions of rows would stall the server for a second.
   */
  #rowsPerDevice(): Map<string | null, number> {
    const counts = new Map<string | null, number>();
    for (
      const r of this.#db.prepare(
        "SELECT device, n FROM telemetry_rows WHERE n > 0",
      ).all()
    ) {
      counts.set(r.device === "" ? null : r.device as string, Number(r.n));
    }
    return counts;
  }

  /**
   * Create `telemetry_rows` and its triggers, counting the rows a database
   * from before them already holds (once). The single device is ''.
   */
  #countRowsPerDevice(): void {
    const db = this.#db;
    const exists = db.prepare(
      "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'telemetry_rows'",
    ).get();
    if (exists) return;
    db.exec(`
      BEGIN;
      CREATE TABLE telemetry_rows (
        device TEXT PRIMARY KEY,
        n INTEGER NOT NULL
      ) WITHOUT ROWID;
      INSERT INTO telemetry_rows (device, n)
        SELECT coalesce(device, ''), count(*) FROM telemetry GROUP BY device;
      CREATE TRIGGER telemetry_rows_insert AFTER INSERT ON telemetry BEGIN
        INSERT OR IGNORE INTO telemetry_rows (device, n)
          VALUES (coalesce(NEW.device, ''), 0);
        UPDATE telemetry_rows SET n = n + 1
          WHERE device = coalesce(NEW.device, '');
      END;
      CREATE TRIGGER telemetry_rows_delete AFTER DELETE ON telemetry BEGIN
        UPDATE telemetry_rows SET n = n - 1
          WHERE device = coalesce(OLD.device, '');
      END;
      COMMIT;
    `);
  }

  /**
   * Bytes of the database in use (pages minus free pages; deleted rows'
   * pages are reused, so the file stays near the largest used size).
   */
  usedBytes(): number {
    const n = (p: string) =>
      Number(Object.values(this.#db.prepare(`PRAGMA ${p}`).get()!)[0]);
    return (n("page_count") - n("freelist_count")) * n("page_size");
  }

  /** The size bound, bytes. */
  get maxBytes(): number {
    return this.#o.maxBytes;
  }

  /**
   * Apply retention, the alarm row cap and the size cap as of `nowMs`.
   * `maxEvictRows` bounds the rows one call evicts at the size cap (the
   * calls while recording use EVICT_ROWS_PER_CALL, so a pass never stalls
   * the server; at open, unbounded).
   */
  prune(
    nowMs: number = this.#o.now(),
    maxEvictRows = Infinity,
  ): PruneReport {
    const o = this.#o;
    const db = this.#db;
    const changes = (r: { changes: number | bigint }) => Number(r.changes);
    db.exec("BEGIN");
    try {
      const report: PruneReport = {
        telemetryExpired: changes(
          db.prepare("DELETE FROM telemetry WHERE ts_ms < ?").run(
            nowMs - o.telemetryRetentionMs,
          ),
        ),
        alarmsExpired: changes(
          db.prepare("DELETE FROM alarms WHERE ts_ms < ?").run(
            nowMs - o.alarmRetentionMs,
          ),
        ),
        alarmsCapped: changes(
          db.prepare(
            `DELETE FROM alarms WHERE id IN (SELECT id FROM alarms ORDER BY ts_ms
             LIMIT max(0, (SELECT count(*) FROM alarms) - ?))`,
          ).run(o.maxAlarmRows),
        ),
        evicted: 0,
        evictedDevices: 0,
      };
      this.#enforceSize(report, maxEvictRows);
      db.exec("COMMIT");
      return report;
    } catch (e) {
      db.exec("ROLLBACK");
      throw e;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#db.close();
  }

  #checkFuture(tsMs: number): RecordResult {
    const ahead = tsMs - this.#o.now();
    if (ahead <= this.#o.maxFutureMs) return { ok: true };
    return {
      ok: false,
      error: `ts is ${
        Math.round(ahead / 1000)
      } s ahead of the server clock (at most ${
        Math.round(this.#o.maxFutureMs / 1000)
      } s)`,
    };
  }

  /**
   * Evict the oldest telemetry, largest devices first, until under the cap
   * (or `maxRows` are gone; the next call goes on).
   */
  #enforceSize(report: PruneReport, maxRows: number): void {
    const db = this.#db;
    const target = this.#o.maxBytes * EVICT_TO;
    const devices = new Set<string | null>();
    // Deleting rows frees whole pages only as b-tree pages merge, so the
    // estimate may fall short: measure again, a few passes at most (one
    // when bounded: the next call goes on).
    const bounded = Number.isFinite(maxRows);
    for (let pass = 0; pass < (bounded ? 1 : 8); pass++) {
      const used = this.usedBytes();
      if (used <= (pass === 0 ? this.#o.maxBytes : target)) break;
      const budget = maxRows - report.evicted;
      if (budget <= 0) break;
      const all = this.#rowsPerDevice();
      const telemetry = sum(all);
      if (telemetry === 0) break; // alarms alone: bounded by their row cap
      const perRow = used / (telemetry + this.#alarmRows());
      const excess = Math.min(
        telemetry,
        budget,
        Math.max(1, Math.ceil((used - target) / perRow)),
      );
      // A bounded call takes from the largest devices only: one statement
      // per device is what costs, and the next call's largest are others.
      const counts = bounded ? largest(all, EVICT_DEVICES_PER_CALL) : all;
      const del = db.prepare(
        `DELETE FROM telemetry WHERE rowid IN (SELECT rowid FROM telemetry
         WHERE device IS ? ORDER BY ts_ms LIMIT ?)`,
      );
      for (const [device, n] of fairEviction(counts, excess)) {
        report.evicted += Number(del.run(device, n).changes);
        devices.add(device);
      }
    }
    report.evictedDevices = devices.size;
  }

  #pruneAndReport(): void {
    if (this.#closed) return;
    const r = this.prune(this.#o.now(), EVICT_ROWS_PER_CALL);
    if (r.evicted > 0) {
      this.#o.log?.(
        `history: database at its ${
          Math.round(this.#o.maxBytes / 1048576)
        } MB cap (HISTORY_MAX_MB): evicted the oldest ${r.evicted} telemetry rows of ${r.evictedDevices} device(s) with the most rows`,
      );
    }
  }

  #maybePrune(): void {
    // Checking every write would cost a transaction per message; every
    // PRUNE_EVERY_WRITES is enough, as each call may evict more rows than
    // were written since (EVICT_ROWS_PER_CALL).
    if (++this.#writesSincePrune < PRUNE_EVERY_WRITES) return;
    this.#writesSincePrune = 0;
    this.#pruneAndReport();
  }
}

/**
 * How many of its oldest rows each device gives up so that `excess` rows
 * go: always from the devices with the most rows, bringing them down to a
 * common level (water-filling). Devices below that level keep everything,
 * so under the size cap every device ends with an equal share at least.
 * Pure; `counts` maps device (null: the single device) to its row count.
 */
export function fairEviction<K>(
  counts: Map<K, number>,
  excess: number,
): Map<K, number> {
  const out = new Map<K, number>();
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  if (excess <= 0 || total === 0) return out;
  if (excess >= total) {
    for (const [k, n] of counts) if (n > 0) out.set(k, n);
    return out;
  }
  const above = (level: number) => {
    let s = 0;
    for (const n of counts.values()) s += Math.max(0, n - level);
    return s;
  };
  // The highest level that frees at least `excess` rows.
  let lo = 0, hi = Math.max(...counts.values());
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (above(mid) >= excess) lo = mid;
    else hi = mid - 1;
  }
  // Down to level+1 frees fewer than `excess`; the rest one row each from
  // the largest devices at the level (largest first, then by order given).
  let rest = excess - above(lo + 1);
  const sorted = [...counts].sort((a, b) => b[1] - a[1]);
  for (const [k, n] of sorted) {
    let take = Math.max(0, n - (lo + 1));
    if (n >= lo + 1 && rest > 0) {
      take++;
      rest--;
    }
    if (take > 0) out.set(k, take);
  }
  return out;
}

const sum = (counts: Map<unknown, number>) => {
  let n = 0;
  for (const v of counts.values()) n += v;
  return n;
};

/** The `k` entries with the largest counts (ties: in the order given). */
function largest<K>(counts: Map<K, number>, k: number): Map<K, number> {
  if (counts.size <= k) return counts;
  return new Map([...counts].sort((a, b) => b[1] - a[1]).slice(0, k));
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
