/**
 * Nothing lost when the poller dies while the broker is away: the real
 * poller (a child process with MQTT_BUFFER_DIR) buffers telemetry to disk
 * during a broker outage, is killed with SIGKILL, and the next poller
 * replays what the first left, in order, marked replayed, before live data,
 * with `seq` continuing where the first stopped (no gap, no reuse).
 */
import assert from "node:assert/strict";
import { startSimulator } from "../sim.ts";
import { type Broker, startBroker } from "../broker.ts";
import { OutboxStore } from "../outbox_store.ts";
import { Recorder } from "./_mqtt.ts";
import { collectLines, freePort, LineLog, waitFor } from "./_support.ts";

/** `deno run -P poll.ts` with `env`, its stderr lines in a LineLog. */
function spawnPoller(env: Record<string, string>) {
  const log = new LineLog();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-P", "poll.ts"],
    cwd: new URL("..", import.meta.url).pathname,
    env: { ...env, NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const collecting = collectLines(child.stderr, log);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  return {
    log,
    async kill(signal: Deno.Signal) {
      if (!exited) child.kill(signal);
      const s = await status;
      await collecting;
      return s;
    },
  };
}

Deno.test("poller killed (SIGKILL) during a broker outage: the next run replays its disk buffer in order before live data, seq continues with no gap or reuse", async () => {
  const modbusPort = await freePort();
  const mqttPort = await freePort();
  const url = `mqtt://127.0.0.1:${mqttPort}`;
  const dir = await Deno.makeTempDir({ prefix: "outbox-restart-" });
  const sim = await startSimulator({
    host: "127.0.0.1",
    port: modbusPort,
    noise: 0,
    log: () => {},
  });
  const brokerUp = () =>
    startBroker({ host: "127.0.0.1", tcpPort: mqttPort, log: () => {} });
  let broker: Broker | null = await brokerUp();
  const sub = await Recorder.connect(url, "demo/#", { reconnectPeriod: 100 });
  const env = {
    MODBUS_PORT: String(modbusPort),
    MQTT_URL: url,
    POLL_INTERVAL_MS: "100",
    MQTT_BUFFER_DIR: dir,
  };
  let first: ReturnType<typeof spawnPoller> | null = spawnPoller(env);
  let second: ReturnType<typeof spawnPoller> | null = null;
  try {
    await sub.waitForCount("live telemetry", "demo/telemetry", 5);

    // Broker away: the poller buffers (to disk) for two reconnect failures,
    // about 3 s, i.e. ~30 messages at 10 Hz.
    await broker.close();
    broker = null;
    const liveBefore = Math.max(
      ...sub.on("demo/telemetry").map((m) => m.json.seq as number),
    );
    await first.log.waitFor(/mqtt: disconnected; buffering/);
    await waitFor(
      "two failed reconnects",
      () =>
        first!.log.lines.filter((l) => /mqtt: reconnect failed/.test(l))
          .length >= 2,
      15_000,
    );
    const status = await first.kill("SIGKILL");
    first = null;
    assert.equal(status.signal, "SIGKILL");

    // What the killed poller left on disk (nobody holds the file now).
    const store = OutboxStore.open(dir);
    const left = store.load().messages;
    const lastSeq = store.lastSeq("demo/telemetry");
    store.close();
    const leftSeqs = left.filter((m) => m.kind === "telemetry").map((m) =>
      JSON.parse(m.payload!).seq as number
    );
    assert.ok(leftSeqs.length >= 20, `${leftSeqs.length} rows left`);
    assert.deepEqual(
      leftSeqs,
      Array.from(
        { length: leftSeqs.length },
        (_, i) => lastSeq - leftSeqs.length + 1 + i,
      ),
      "rows in order, contiguous, up to the last seq",
    );
    assert.ok(leftSeqs[0] <= liveBefore + 1, "nothing missing before them");

    // The second poller starts while the broker is still away; it loads the
    // rows and goes on buffering with seq after the first poller's last.
    const killedAt = Date.now();
    second = spawnPoller(env);
    const loadedLine = await second.log.waitFor(
      /unsent messages from an earlier run/,
    );
    assert.match(loadedLine, new RegExp(`^mqtt: ${left.length} unsent`));
    // Restart the broker right after a failed reconnect: the poller's next
    // try is a full backoff step (~2 s) away, so our subscriber is back
    // and subscribed before the replay starts.
    await second.log.waitFor(/mqtt: reconnect failed; next try/, 15_000);
    broker = await brokerUp();
    const mark = sub.messages.length;
    for (let i = 0; !sub.messages.slice(mark).length; i++) {
      if (sub.client.connected) {
        await sub.client.publishAsync("demo/probe", `{"probe":${i}}`, {
          qos: 1,
        });
      }
      await sub.waitFor("probe", () => true, 200, mark).catch(() => {});
    }
    assert.equal(
      sub.messages.slice(mark).filter((m) => m.topic === "demo/telemetry")
        .length,
      0,
      "subscriber back before the replay",
    );
    const replayed = () =>
      sub.on("demo/telemetry").filter((m) => m.json.replayed === true);
    await sub.waitFor(
      "live telemetry after the replay",
      (m) =>
        m.topic === "demo/telemetry" && m.json.replayed === undefined &&
        replayed().length > 0 &&
        (m.json.seq as number) > Math.max(
              ...replayed().map((r) => r.json.seq as number),
            ) + 3,
      20_000,
      mark,
    );

    const tel = sub.on("demo/telemetry");
    const seqs = tel.map((m) => m.json.seq as number);
    const maxSeq = Math.max(...seqs);
    const firstSeen: number[] = [];
    const byFirst = new Map<number, string>();
    for (const m of tel) {
      const s = m.json.seq as number;
      if (!byFirst.has(s)) {
        firstSeen.push(s);
        byFirst.set(s, m.json.ts as string);
      } else {
        // A duplicate (at-least-once) is the same message, never a reuse.
        assert.equal(m.json.ts, byFirst.get(s), `seq ${s} reused`);
      }
    }
    assert.deepEqual(
      firstSeen,
      Array.from({ length: maxSeq }, (_, i) => i + 1),
      "every seq from 1, in order, no gap",
    );
    // seq continued: the first of the second run comes after the kill.
    assert.ok(Date.parse(byFirst.get(lastSeq + 1)!) >= killedAt - 50);
    assert.ok(Date.parse(byFirst.get(lastSeq)!) < killedAt);
    // After the broker restart: first every buffered message of both runs,
    // marked replayed and in order, then live data.
    const after = sub.messages.slice(mark).filter((m) =>
      m.topic === "demo/telemetry"
    );
    const firstLive = after.findIndex((m) => m.json.replayed === undefined);
    const replayBlock = after.slice(0, firstLive);
    assert.ok(replayBlock.every((m) => m.json.replayed === true));
    assert.ok(
      after.slice(firstLive).every((m) => m.json.replayed === undefined),
      "nothing replayed after live data",
    );
    const blockSeqs = replayBlock.map((m) => m.json.seq as number);
    assert.deepEqual(
      blockSeqs,
      Array.from({ length: blockSeqs.length }, (_, i) => blockSeqs[0] + i),
    );
    assert.ok(blockSeqs[0] <= leftSeqs[0], "the killed run's rows replayed");
    assert.ok(blockSeqs.at(-1)! > lastSeq, "then the second run's buffer");
    console.log(
      `restart: first run live 1..${liveBefore}, left ${left.length} rows (seq ${
        leftSeqs[0]
      }..${lastSeq}); second run replayed seq ${blockSeqs[0]}..${
        blockSeqs.at(-1)
      } then live up to ${maxSeq}; ${seqs.length - maxSeq} duplicates`,
    );
  } finally {
    await first?.kill("SIGKILL");
    await second?.kill("SIGTERM");
    await sub.close();
    await broker?.close();
    await sim.close();
    await Deno.remove(dir, { recursive: true });
  }
});
