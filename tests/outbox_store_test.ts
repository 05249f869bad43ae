/**
 * The durable outbox (MQTT_BUFFER_DIR): rows survive a reopen in order,
 * acknowledged ones are deleted, the outbox bounds hold for the rows, the
 * file gives space back, and a bad file is one clear line at start.
 */
import assert from "node:assert/strict";
import { OutboxStore } from "../outbox_store.ts";
import { makeMessage, type OutMessage } from "../outbox.ts";
import { Publisher } from "../publisher.ts";
import { ConfigError } from "../cli.ts";

const tel = (seq: number, replayed: boolean): OutMessage =>
  makeMessage("telemetry", "demo/telemetry", { seq }, { replayed }).msg;

async function withDir(fn: (dir: string) => Promise<void> | void) {
  const dir = await Deno.makeTempDir({ prefix: "outbox-store-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A publisher that never connects (nothing listens on port 9 of loopback). */
function offlinePublisher(
  dir: string,
  o: { maxBufferedTelemetry?: number; maxBufferedBytes?: number } = {},
  logs: string[] = [],
): Publisher {
  return new Publisher({
    url: "mqtt://127.0.0.1:9",
    clientId: "store-test",
    statusTopic: "demo/status",
    maxBufferedTelemetry: o.maxBufferedTelemetry ?? 100,
    maxBufferedBytes: o.maxBufferedBytes,
    bufferDir: dir,
    reconnect: { baseMs: 100, maxMs: 200, jitter: 0 },
    log: (l) => logs.push(l),
  });
}

Deno.test("store: reopen loads unsent rows in order, marked replayed; acknowledged rows are gone", async () => {
  await withDir((dir) => {
    const s1 = OutboxStore.open(`${dir}/nested/deeper`);
    assert.deepEqual(s1.load().messages, []);
    const ms = [tel(1, false), tel(2, false), tel(3, true), tel(4, true)];
    const alarm = makeMessage("alarm", "demo/alarms", { state: "raised" }, {
      replayed: true,
    }).msg;
    const state = makeMessage("event", "demo/alarms/state", { alarms: [] }, {
      retain: true,
      replayed: false,
    }).msg;
    for (const m of [...ms, alarm, state]) s1.add(m);
    s1.noteSeq("demo/telemetry", 4);
    s1.flush();
    s1.delete(ms[0]); // acknowledged at the head
    s1.delete(ms[2]); // and one out of order
    s1.close();

    const s2 = OutboxStore.open(`${dir}/nested/deeper`);
    const { messages, seqs } = s2.load();
    assert.deepEqual(messages.map((m) => [m.kind, m.topic, m.payload]), [
      ["telemetry", "demo/telemetry", '{"seq":2,"replayed":true}'],
      ["telemetry", "demo/telemetry", '{"seq":4,"replayed":true}'],
      ["alarm", "demo/alarms", '{"state":"raised","replayed":true}'],
      ["event", "demo/alarms/state", '{"alarms":[],"replayed":true}'],
    ]);
    assert.ok(messages.every((m) => m.replayed));
    assert.deepEqual(messages.map((m) => m.retain), [
      false,
      false,
      false,
      true,
    ]);
    assert.equal(seqs.get("demo/telemetry"), 4);
    assert.equal(s2.lastSeq("demo/telemetry"), 4);
    assert.equal(s2.lastSeq("demo/other/telemetry"), 0);
    // New rows go after the old ones.
    const next = tel(5, false);
    s2.add(next);
    assert.ok(next.storeId! > Math.max(...messages.map((m) => m.storeId!)));
    for (const m of messages) s2.delete(m);
    s2.close();
    const s3 = OutboxStore.open(`${dir}/nested/deeper`);
    assert.deepEqual(s3.load().messages.map((m) => m.payload), [
      '{"seq":5,"replayed":true}',
    ]);
    s3.close();
  });
});

Deno.test("store: writes are batched; a row removed before its commit is never written", async () => {
  await withDir((dir) => {
    const s = OutboxStore.open(dir);
    s.load();
    const ms = Array.from({ length: 100 }, (_, i) => tel(i + 1, true));
    for (const m of ms) s.add(m);
    for (const m of ms.slice(0, 40)) s.delete(m);
    s.flush();
    assert.deepEqual(s.stats, { inserts: 60, deletes: 0, transactions: 1 });
    for (const m of ms.slice(40)) s.delete(m);
    s.flush();
    assert.equal(s.stats.deletes, 60);
    assert.equal(s.stats.transactions, 2);
    assert.equal(s.countRows(), 0);
    s.flush(); // nothing queued: no transaction
    assert.equal(s.stats.transactions, 2);
    s.close();
  });
});

Deno.test("store: the outbox bounds hold for the rows, across a restart too; seq continues", async () => {
  await withDir(async (dir) => {
    const logs: string[] = [];
    const p1 = offlinePublisher(dir, { maxBufferedTelemetry: 5 }, logs);
    for (let seq = 1; seq <= 12; seq++) {
      p1.send("telemetry", "demo/telemetry", { seq });
      if (seq % 4 === 0) p1.send("alarm", "demo/alarms", { seq });
    }
    // Session-bound status (a fleet device's birth) is never made durable.
    p1.send("event", "demo/d1/status", { state: "online", session: 7 }, true);
    assert.equal(p1.outbox.length, 9);
    await p1.stop();
    assert.ok(
      logs.some((l) => /kept in .*outbox\.db for the next run/.test(l)),
    );

    const s = OutboxStore.open(dir);
    assert.deepEqual(
      s.load().messages.map((m) => `${m.kind[0]}${JSON.parse(m.payload!).seq}`),
      ["a4", "t8", "a8", "t9", "t10", "t11", "t12", "a12"],
    );
    s.close();

    // A smaller bound on restart drops the oldest telemetry rows as well.
    const logs2: string[] = [];
    const p2 = offlinePublisher(dir, { maxBufferedTelemetry: 2 }, logs2);
    assert.equal(p2.lastSeq("demo/telemetry"), 12);
    assert.equal(p2.outbox.dropped, 3);
    assert.ok(
      logs2.some((l) =>
        /^mqtt: 8 unsent messages from an earlier run in .*outbox\.db \(3 oldest telemetry dropped to fit the bounds\); they go first, marked replayed$/
          .test(l)
      ),
      logs2.join("\n"),
    );
    await p2.stop();
    const s2 = OutboxStore.open(dir);
    assert.equal(s2.load().messages.length, 5);
    s2.close();

    // The byte bound too: room for the three alarms (109 bytes) and one
    // telemetry message (about 40).
    const p3 = offlinePublisher(dir, { maxBufferedBytes: 160 });
    p3.send("telemetry", "demo/telemetry", { seq: 13 });
    await p3.stop();
    const s3 = OutboxStore.open(dir);
    const left = s3.load().messages;
    s3.close();
    assert.deepEqual(
      left.map((m) => `${m.kind[0]}${JSON.parse(m.payload!).seq}`),
      ["a4", "a8", "a12", "t13"],
      "alarms kept beyond the byte bound, telemetry dropped oldest first",
    );
  });
});

Deno.test("store: the file gives its space back once a long outage has drained", async () => {
  await withDir((dir) => {
    const s = OutboxStore.open(dir);
    s.load();
    const pad = "x".repeat(200);
    const ms = Array.from(
      { length: 20_000 },
      (_, i) =>
        makeMessage("telemetry", "demo/telemetry", { seq: i, pad }, {
          replayed: true,
        }).msg,
    );
    for (const m of ms) s.add(m);
    s.flush();
    const size = () => {
      let total = 0;
      for (const f of Deno.readDirSync(dir)) {
        total += Deno.statSync(`${dir}/${f.name}`).size;
      }
      return total;
    };
    const full = size();
    assert.ok(full > 4_000_000, `${full} bytes with 20k rows`);
    for (const m of ms) s.delete(m);
    assert.equal(s.compactIfIdle(), true);
    const drained = size();
    assert.ok(drained < 200_000, `${drained} bytes after draining`);
    console.log(`store: ${full} bytes with 20k rows, ${drained} after drain`);
    s.close();
  });
});

Deno.test("store: a corrupted, unusable or busy file is one clear line at start (ConfigError)", async () => {
  await withDir(async (dir) => {
    // Not a database.
    await Deno.mkdir(`${dir}/bad`);
    await Deno.writeTextFile(`${dir}/bad/outbox.db`, "garbage ".repeat(512));
    assert.throws(
      () => offlinePublisher(`${dir}/bad`),
      (e: Error) =>
        e instanceof ConfigError &&
        /^MQTT_BUFFER_DIR: cannot use .*\/bad\/outbox\.db \(file is not a database\)$/
          .test(e.message),
    );
    // The directory is a file.
    await Deno.writeTextFile(`${dir}/file`, "x");
    assert.throws(
      () => offlinePublisher(`${dir}/file`),
      (e: Error) =>
        e instanceof ConfigError &&
        /^MQTT_BUFFER_DIR: cannot use .*\/file\/outbox\.db \([^\n]+\)$/.test(
          e.message,
        ),
    );
    // A second poller on the same directory.
    const first = OutboxStore.open(`${dir}/busy`);
    try {
      assert.throws(
        () => offlinePublisher(`${dir}/busy`),
        (e: Error) =>
          e instanceof ConfigError &&
          /^MQTT_BUFFER_DIR: cannot use .*outbox\.db \(database is locked: in use by another poller process\?\)$/
            .test(e.message),
      );
    } finally {
      first.close();
    }
    // The real entry point: one line on stderr and exit code 2.
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-P", "poll.ts"],
      cwd: new URL("..", import.meta.url).pathname,
      env: { MQTT_BUFFER_DIR: `${dir}/bad`, NO_COLOR: "1" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      // Killed if it starts polling instead of refusing the file.
      signal: AbortSignal.timeout(30_000),
    }).output();
    const stderr = new TextDecoder().decode(out.stderr).split("\n")
      .filter((l) => l && !l.startsWith("Warning")).join("\n");
    assert.equal(out.code, 2, stderr);
    assert.match(
      stderr,
      /^poll: MQTT_BUFFER_DIR: cannot use .*outbox\.db \(file is not a database\)$/,
    );
  });
});

Deno.test("store: the last retained payload per topic survives a restart; a version 1 file gains the table", async () => {
  await withDir(async (dir) => {
    // A file as schema 1 wrote it: outbox and seq only.
    const { DatabaseSync } = await import("node:sqlite");
    const old = new DatabaseSync(`${dir}/outbox.db`);
    old.exec(`
      CREATE TABLE outbox (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,
        topic TEXT NOT NULL, payload TEXT NOT NULL, retain INTEGER NOT NULL,
        replayed INTEGER NOT NULL);
      CREATE TABLE seq (topic TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;
      INSERT INTO seq VALUES ('demo/telemetry', 41);
      PRAGMA user_version = 1;
    `);
    old.close();

    const p1 = offlinePublisher(dir);
    assert.equal(p1.lastSeq("demo/telemetry"), 41);
    assert.equal(p1.lastRetained("demo/alarms/state"), null);
    p1.send("event", "demo/alarms/state", { alarms: [{ state: "a" }] }, true);
    p1.send("event", "demo/alarms/state", { alarms: [{ state: "b" }] }, true);
    // Not retained, or bound to a session: not state to continue from.
    p1.send("event", "demo/cmd/ack/result", { id: "x", ok: true });
    p1.send("event", "demo/d1/status", { state: "online", session: 3 }, true);
    await p1.stop();

    const p2 = offlinePublisher(dir);
    assert.deepEqual(p2.lastRetained("demo/alarms/state"), {
      alarms: [{ state: "b" }],
    });
    assert.equal(p2.lastRetained("demo/cmd/ack/result"), null);
    assert.equal(p2.lastRetained("demo/d1/status"), null);
    await p2.stop();
  });
});
