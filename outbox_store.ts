/**
 * Durable rows behind the outbox (`MQTT_BUFFER_DIR`): every durable message
 * the poller accepts is a row of `<dir>/outbox.db` (Deno's `node:sqlite`)
 * until the broker has acknowledged it, so a restart, a crash or kill -9
 * loses nothing; the next run loads the rows, in order, and replays them.
 * The last `seq` per telemetry topic is kept beside them so a restarted
 * poller continues its numbering instead of starting again at 1, and so is
 * the last retained payload per topic (`noteRetained`), so a restarted
 * poller picks up the state it last announced (its alarms/state) instead of
 * forgetting an alarm nobody has acknowledged yet.
 *
 * Cost: writes are batched. `add`, `delete` and `noteSeq` only queue; one
 * `flush()` writes everything queued in one transaction (WAL,
 * synchronous=NORMAL: a commit survives a process crash without an fsync of
 * its own; only a power loss may take the last commits). The publisher
 * flushes before it hands a message to MQTT, so nothing (and no seq) leaves
 * the process before its row is committed: a message lost in a crash before
 * its commit was never published and its seq is reused, so consumers never
 * see a gap or a duplicate seq. A message removed before its row was written
 * (dropped at a bound) is never written at all.
 *
 * Size: the rows mirror the outbox, so the outbox bounds hold for them too;
 * freed pages are returned to the file system by incremental vacuum when
 * the queue drains, and the WAL is truncated.
 *
 * @example
 * ```ts
 * const store = OutboxStore.open("/var/lib/poller");
 * const { messages, seqs } = store.load(); // previous run's unsent, replayed
 * store.add(msg); store.noteSeq(topic, 42); store.flush();
 * store.noteRetained(stateTopic, payload); store.lastRetained(stateTopic);
 * store.delete(msg); store.close();
 * ```
 */
import { mkdirSync } from "node:fs";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import {
  markReplayed,
  type MessageKind,
  type OutMessage,
  textMessage,
  wirePayload,
} from "./outbox.ts";

/**
 * Table layout version (PRAGMA user_version). 2 added `retained`; a version
 * 1 file gains the table when opened (CREATE TABLE IF NOT EXISTS).
 */
const SCHEMA = 2;
/** Deleted rows between checks for free pages to give back. */
const VACUUM_EVERY = 4096;
/** Free pages (4 KiB) worth giving back. */
const VACUUM_MIN_PAGES = 256;

const KINDS = new Set<MessageKind>(["telemetry", "alarm", "event"]);

export interface Loaded {
  /** Unsent messages of earlier runs, oldest first, marked replayed. */
  messages: OutMessage[];
  /** Last seq per telemetry topic. */
  seqs: Map<string, number>;
}

/** Counters for tests and the benchmark. */
export interface StoreStats {
  inserts: number;
  deletes: number;
  transactions: number;
}

export class OutboxStore {
  readonly path: string;
  readonly stats: StoreStats = { inserts: 0, deletes: 0, transactions: 0 };
  #db: DatabaseSync;
  #insert: StatementSync;
  #deleteRange: StatementSync;
  #upsertSeq: StatementSync;
  #upsertRetained: StatementSync;
  #nextId = 1;
  /** Ids above this are queued, not yet written. */
  #committedId = 0;
  #pending: { msg: OutMessage; payload: string }[] = [];
  /** Queued ids removed before their row was written. */
  #cancelled = new Set<number>();
  #deletes: number[] = [];
  #seqs = new Map<string, number>();
  #dirtySeqs = new Map<string, number>();
  #retained = new Map<string, string>();
  #dirtyRetained = new Map<string, string>();
  #deletedSinceVacuum = 0;

  private constructor(path: string, db: DatabaseSync) {
    this.path = path;
    this.#db = db;
    this.#insert = db.prepare(
      "INSERT INTO outbox (id, kind, topic, payload, retain, replayed) VALUES (?, ?, ?, ?, ?, ?)",
    );
    this.#deleteRange = db.prepare(
      "DELETE FROM outbox WHERE id BETWEEN ? AND ?",
    );
    this.#upsertSeq = db.prepare(
      "INSERT INTO seq (topic, last) VALUES (?, ?) ON CONFLICT (topic) DO UPDATE SET last = excluded.last",
    );
    this.#upsertRetained = db.prepare(
      "INSERT INTO retained (topic, payload) VALUES (?, ?) ON CONFLICT (topic) DO UPDATE SET payload = excluded.payload",
    );
    const max = db.prepare("SELECT max(id) AS id FROM outbox").get()!.id;
    this.#committedId = typeof max === "number" ? max : 0;
    this.#nextId = this.#committedId + 1;
    for (const r of db.prepare("SELECT topic, last FROM seq").all()) {
      this.#seqs.set(r.topic as string, r.last as number);
    }
    for (const r of db.prepare("SELECT topic, payload FROM retained").all()) {
      this.#retained.set(r.topic as string, r.payload as string);
    }
  }

  /**
   * Open (creating `dir` and the file if needed) and take the file for this
   * process alone. Throws an Error with a one-line message naming the file
   * when it cannot be created, is not an outbox database, or is in use.
   */
  static open(dir: string): OutboxStore {
    const path = `${dir.replace(/\/+$/, "") || "/"}/outbox.db`;
    const fail = (why: string): never => {
      throw new Error(`MQTT_BUFFER_DIR: cannot use ${path} (${why})`);
    };
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      fail(oneLine(e));
    }
    let db: DatabaseSync | null = null;
    try {
      db = new DatabaseSync(path);
      // Order matters: auto_vacuum before the first table; exclusive locking
      // before WAL (keeps the WAL index in memory, no -shm file); and a
      // write at once so the lock is taken now: a second poller pointed at
      // the same directory fails at start instead of replaying our rows.
      db.exec(`
        PRAGMA busy_timeout = 0;
        PRAGMA auto_vacuum = INCREMENTAL;
        PRAGMA locking_mode = EXCLUSIVE;
        PRAGMA journal_mode = WAL;
        PRAGMA synchronous = NORMAL;
        PRAGMA journal_size_limit = 4194304;
      `);
      const version = db.prepare("PRAGMA user_version").get()!
        .user_version as number;
      if (version > SCHEMA) {
        fail(`written by a newer version, schema ${version}`);
      }
      db.exec(`
        BEGIN IMMEDIATE;
        CREATE TABLE IF NOT EXISTS outbox (
          id INTEGER PRIMARY KEY,
          kind TEXT NOT NULL,
          topic TEXT NOT NULL,
          payload TEXT NOT NULL,
          retain INTEGER NOT NULL,
          replayed INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS seq (
          topic TEXT PRIMARY KEY,
          last INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS retained (
          topic TEXT PRIMARY KEY,
          payload TEXT NOT NULL
        ) WITHOUT ROWID;
        PRAGMA user_version = ${SCHEMA};
        COMMIT;
      `);
      return new OutboxStore(path, db);
    } catch (e) {
      try {
        db?.close();
      } catch { /* already failing */ }
      if ((e as Error).message.startsWith("MQTT_BUFFER_DIR:")) throw e;
      return fail(describeSqliteError(e));
    }
  }

  /**
   * Rows left by earlier runs, oldest first, and the last seq per topic.
   * Call once, before the first `add`.
   */
  load(): Loaded {
    const messages: OutMessage[] = [];
    for (
      const r of this.#db.prepare(
        "SELECT id, kind, topic, payload, retain, replayed FROM outbox ORDER BY id",
      ).iterate()
    ) {
      const id = r.id as number;
      const kind = r.kind as MessageKind;
      const payload = r.payload as string;
      if (!KINDS.has(kind) || typeof payload !== "string") {
        throw new Error(`MQTT_BUFFER_DIR: ${this.path} row ${id} is invalid`);
      }
      messages.push(textMessage(
        kind,
        r.topic as string,
        // Sent live but not acknowledged: a consumer may have it already,
        // and this copy comes late, so it is a replay either way.
        r.replayed ? payload : markReplayed(payload),
        { retain: r.retain === 1, replayed: true, storeId: id },
      ));
    }
    return { messages, seqs: new Map(this.#seqs) };
  }

  /** Last seq noted for `topic` (0 if none). */
  lastSeq(topic: string): number {
    return this.#seqs.get(topic) ?? 0;
  }

  /** Last retained payload noted for `topic` by this or an earlier run. */
  lastRetained(topic: string): string | undefined {
    return this.#retained.get(topic);
  }

  /** Rows queued for writing. */
  get pendingInserts(): number {
    return this.#pending.length;
  }

  /** Anything queued (rows, deletes, seqs). */
  get dirty(): boolean {
    return this.#pending.length > 0 || this.#deletes.length > 0 ||
      this.#dirtySeqs.size > 0 || this.#dirtyRetained.size > 0;
  }

  /**
   * Queue a row for `msg` (sets `msg.storeId`); `payload` is its wire text
   * if the caller has it already.
   */
  add(msg: OutMessage, payload: string = wirePayload(msg)): void {
    msg.storeId = this.#nextId++;
    this.#pending.push({ msg, payload });
  }

  /** True when `msg` has no row waiting to be written. */
  isCommitted(msg: OutMessage): boolean {
    return msg.storeId === undefined || msg.storeId <= this.#committedId;
  }

  /** Queue the deletion of `msg`'s row (acknowledged, or dropped). */
  delete(msg: OutMessage): void {
    const id = msg.storeId;
    if (id === undefined) return;
    if (id > this.#committedId) this.#cancelled.add(id);
    else this.#deletes.push(id);
  }

  /** Queue the last seq of a telemetry topic. */
  noteSeq(topic: string, seq: number): void {
    this.#seqs.set(topic, seq);
    this.#dirtySeqs.set(topic, seq);
  }

  /** Queue the last retained payload of `topic` (replaces the one before). */
  noteRetained(topic: string, payload: string): void {
    this.#retained.set(topic, payload);
    this.#dirtyRetained.set(topic, payload);
  }

  /** Write everything queued in one transaction. */
  flush(): void {
    if (!this.dirty) return;
    const db = this.#db;
    db.exec("BEGIN");
    try {
      for (const { msg: m, payload } of this.#pending) {
        if (this.#cancelled.has(m.storeId!)) continue;
        this.#insert.run(
          m.storeId!,
          m.kind,
          m.topic,
          payload,
          m.retain ? 1 : 0,
          m.replayed ? 1 : 0,
        );
        this.stats.inserts++;
      }
      // Acknowledgements come nearly in order: delete runs of ids as ranges.
      const ids = this.#deletes.sort((a, b) => a - b);
      for (let i = 0; i < ids.length;) {
        let j = i;
        while (j + 1 < ids.length && ids[j + 1] <= ids[j] + 1) j++;
        this.#deleteRange.run(ids[i], ids[j]);
        i = j + 1;
      }
      this.stats.deletes += ids.length;
      this.#deletedSinceVacuum += ids.length;
      for (const [topic, seq] of this.#dirtySeqs) {
        this.#upsertSeq.run(topic, seq);
      }
      for (const [topic, payload] of this.#dirtyRetained) {
        this.#upsertRetained.run(topic, payload);
      }
      db.exec("COMMIT");
    } catch (e) {
      try {
        db.exec("ROLLBACK");
      } catch { /* not in a transaction any more */ }
      throw e;
    }
    this.stats.transactions++;
    if (this.#pending.length) {
      this.#committedId = this.#pending.at(-1)!.msg.storeId!;
    }
    this.#pending = [];
    this.#cancelled.clear();
    this.#deletes = [];
    this.#dirtySeqs.clear();
    this.#dirtyRetained.clear();
  }

  /**
   * The queue has drained: after many deletions, give free pages back to
   * the file system and truncate the WAL, so the file does not stay at its
   * high-water mark after a long outage.
   */
  compactIfIdle(): boolean {
    if (this.#deletedSinceVacuum + this.#deletes.length < VACUUM_EVERY) {
      return false;
    }
    this.flush();
    this.#deletedSinceVacuum = 0;
    const free = this.#db.prepare("PRAGMA freelist_count").get()!
      .freelist_count as number;
    if (free < VACUUM_MIN_PAGES) return false;
    // Stepped to the end: exec() would free one page only.
    this.#db.prepare("PRAGMA incremental_vacuum").all();
    this.#db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get();
    return true;
  }

  /** Rows in the file (tests). */
  countRows(): number {
    return this.#db.prepare("SELECT count(*) AS n FROM outbox").get()!
      .n as number;
  }

  /** Flush and close; rows not yet acknowledged stay for the next run. */
  close(): void {
    try {
      this.flush();
      this.compactIfIdle();
    } finally {
      this.#db.close();
    }
  }
}

function oneLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0];
}

function describeSqliteError(e: unknown): string {
  const msg = oneLine(e);
  if (/database is locked|busy/i.test(msg)) {
    return `${msg}: in use by another poller process?`;
  }
  return msg;
}
