/**
 * Nothing lost when the broker goes away: the real poller keeps polling and
 * evaluating alarms while the broker (embedded aedes, and a real Mosquitto)
 * is stopped for a few seconds, then replays everything in order, marked
 * `"replayed": true`, before live data. Also the outbox bound, birth on
 * every (re)connect, and the last will of a poller that dies without
 * DISCONNECT.
 */
import assert from "node:assert/strict";
import { startBroker } from "../broker.ts";
import { type Poller, startPoller } from "../poll.ts";
import { Publisher } from "../publisher.ts";
import { parseConfig } from "../cli.ts";
import { POLL_OPTIONS } from "../settings.ts";
import { foldStatus } from "../hmi_model.ts";
import type { Status } from "../contract.ts";
import { Recorder } from "./_mqtt.ts";
import { startMosquitto } from "./_mosquitto.ts";
import { FaultyDevice } from "./_faulty_device.ts";
import {
  collectLines,
  freePort,
  LineLog,
  MOSQUITTO,
  needs,
} from "./_support.ts";

/** A broker that can be stopped and started again on the same port. */
interface RestartableBroker {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

async function embedded(): Promise<RestartableBroker> {
  const port = await freePort();
  let b: Awaited<ReturnType<typeof startBroker>> | null = null;
  const start = async () => {
    b = await startBroker({ host: "127.0.0.1", tcpPort: port, log: () => {} });
  };
  const stop = async () => {
    await b?.close();
    b = null;
  };
  await start();
  return { url: `mqtt://127.0.0.1:${port}`, start, stop, close: stop };
}

/** Mosquitto with persistence, so sessions and retained survive a restart. */
async function mosquitto(): Promise<RestartableBroker> {
  const data = await Deno.makeTempDir({ prefix: "mosq-data-" });
  // Mosquitto started as root drops to its own user, which must write here.
  await Deno.chmod(data, 0o777);
  const m = await startMosquitto({
    withWebSocket: false,
    extraConfig: ["persistence true", `persistence_location ${data}/`],
  });
  return {
    url: `mqtt://127.0.0.1:${m.tcpPort}`,
    stop: () => m.down(),
    start: () => m.up(),
    async close() {
      await m.stop();
      await Deno.remove(data, { recursive: true }).catch(() => {});
    },
  };
}

const BROKERS = [
  ["embedded aedes", embedded, false],
  ["Mosquitto", mosquitto, needs("mosquitto", MOSQUITTO)],
] as const;

interface Msg {
  topic: string;
  json: Record<string, unknown>;
}

for (const [name, makeBroker, ignore] of BROKERS) {
  Deno.test({
    name:
      `outage via ${name}: every seq arrives, buffered ones replayed in order before live data, alarms too, birth on reconnect`,
    ignore,
    async fn() {
      const port = await freePort();
      const device = await FaultyDevice.start(port);
      const broker = await makeBroker();
      // A consumer with a persistent session (clean: false, fixed id, QoS 1).
      const sub = await Recorder.connect(broker.url, "demo/#", {
        clean: false,
        clientId: `outage-sub-${crypto.randomUUID().slice(0, 8)}`,
        reconnectPeriod: 100,
      });
      const subConnects: boolean[] = [];
      sub.client.on("connect", (ack) => subConnects.push(ack.sessionPresent));
      const log = new LineLog();
      let poller: Poller | null = null;
      try {
        poller = await startPoller(
          parseConfig(POLL_OPTIONS, [], {
            MODBUS_PORT: String(port),
            MQTT_URL: broker.url,
            POLL_INTERVAL_MS: "100",
            BACKOFF_BASE_MS: "100",
            ALARM_RAISE_DELAY_MS: "300",
          }),
          { log: (l) => log.push(l), random: () => 0.5 },
        );
        const birth1 = await sub.waitFor(
          "birth",
          (m) => m.topic === "demo/status" && m.json.state === "online",
        );
        await sub.waitForCount("live telemetry", "demo/telemetry", 5);

        await broker.stop();
        const outageAt = Date.now();
        await log.waitFor(/mqtt: disconnected; buffering/);
        // The alarm condition arises while the broker is away.
        device.tempRaw = 700;
        await log.waitFor(/alarm: .*temp_high raised/);
        // Restart right after a failed reconnect: the poller's next try is
        // a full backoff step away, so our subscriber is back first.
        await log.waitFor(/mqtt: reconnect failed; next try in \d+ ms/);
        const buffered = poller.publisher.outbox.length;
        assert.ok(buffered >= 10, `buffered ${buffered} during the outage`);
        await broker.start();
        const mark = sub.messages.length;
        const birth2 = await sub.waitFor(
          "birth after reconnect",
          (m) => m.topic === "demo/status" && m.json.state === "online",
          15_000,
          mark,
        );
        const outageMs = birth2.atMs - outageAt;
        assert.ok(
          (birth2.json.session as number) > (birth1.json.session as number),
          "a new session on every reconnect",
        );
        // Live data after the replay.
        // Live data after the replay.
        const replayedSeqs = () =>
          sub.on("demo/telemetry").filter((r) => r.json.replayed === true)
            .map((r) => r.json.seq as number);
        await sub.waitFor(
          "live telemetry after the replay",
          (m) =>
            m.topic === "demo/telemetry" && m.json.replayed === undefined &&
            replayedSeqs().length > 0 &&
            (m.json.seq as number) > Math.max(...replayedSeqs()) + 3,
          15_000,
          mark,
        );
        const tel: Msg[] = sub.on("demo/telemetry");
        const seqs = tel.map((m) => m.json.seq as number);
        const maxSeq = Math.max(...seqs);
        // Every seq at least once, first occurrences in order.
        const first: number[] = [];
        const seen = new Set<number>();
        for (const s of seqs) if (!seen.has(s)) (seen.add(s), first.push(s));
        assert.deepEqual(
          first,
          Array.from({ length: maxSeq }, (_, i) => i + 1),
        );
        // Replayed ones form one block, in order, before any later live one.
        const replayed = tel.filter((m) => m.json.replayed === true);
        const rSeqs = replayed.map((m) => m.json.seq as number);
        assert.ok(rSeqs.length >= 10, `replayed ${rSeqs.length}`);
        const lastReplayed = Math.max(...rSeqs);
        const firstLaterLive = tel.findIndex((m) =>
          m.json.replayed === undefined && (m.json.seq as number) > lastReplayed
        );
        const lastReplayedIdx = tel.findLastIndex((m) =>
          m.json.replayed === true
        );
        assert.ok(lastReplayedIdx < firstLaterLive, "replay before live data");
        const firstRep = new Set<number>();
        const rFirst = rSeqs.filter((s) => !firstRep.has(s) && firstRep.add(s));
        assert.deepEqual(rFirst, [...rFirst].sort((a, b) => a - b));
        // The alarm raised during the outage is delivered, marked replayed.
        const alarms = sub.on("demo/alarms");
        assert.equal(alarms.length >= 1, true, "alarm delivered");
        assert.equal(alarms[0].json.state, "raised");
        assert.equal(alarms[0].json.replayed, true);
        assert.equal(poller.publisher.outbox.dropped, 0);
        console.log(
          `${name}: outage ${outageMs} ms, ${buffered} buffered after 1 s, ${rSeqs.length} replayed telemetry (${
            new Set(rSeqs).size
          } distinct), seq 1..${maxSeq} all received (${
            seqs.length - maxSeq
          } duplicates), subscriber session resumed: ${subConnects.at(-1)}`,
        );
        if (name === "Mosquitto") {
          assert.equal(subConnects.at(-1), true, "persistent session kept");
        }
      } finally {
        await poller?.stop();
        await sub.close();
        await broker.close();
        await device.close();
      }
    },
  });
}

Deno.test("outbox bound: oldest telemetry dropped first, alarm events never; drops counted and logged", async () => {
  const port = await freePort();
  const url = `mqtt://127.0.0.1:${port}`;
  const logs: string[] = [];
  const pub = new Publisher({
    url,
    clientId: "bound-test",
    statusTopic: "demo/status",
    maxBufferedTelemetry: 5,
    reconnect: { baseMs: 100, maxMs: 200, jitter: 0 },
    log: (l) => logs.push(l),
  });
  pub.start();
  let broker: Awaited<ReturnType<typeof startBroker>> | null = null;
  let sub: Recorder | null = null;
  try {
    // Broker not there yet: 12 telemetry and 3 alarms are buffered.
    for (let seq = 1; seq <= 12; seq++) {
      pub.send("telemetry", "demo/telemetry", { seq });
      if (seq % 4 === 0) pub.send("alarm", "demo/alarms", { seq, alarm: "x" });
    }
    assert.equal(pub.outbox.dropped, 7);
    assert.equal(pub.outbox.telemetryCount, 5);
    assert.ok(
      logs.some((l) =>
        /buffer full \(5 telemetry messages\); dropped 1 oldest/.test(l)
      ),
      logs.join("\n"),
    );
    broker = await startBroker({
      host: "127.0.0.1",
      tcpPort: port,
      log: () => {},
    });
    sub = await Recorder.connect(url, "demo/#");
    // Subscribed before the publisher's next try (it is >= 100 ms away).
    const got = await sub.waitForCount("8 buffered", "demo/telemetry", 5);
    const alarms = await sub.waitForCount("3 alarms", "demo/alarms", 3);
    assert.deepEqual(got.map((m) => m.json.seq), [8, 9, 10, 11, 12]);
    assert.deepEqual(alarms.map((m) => m.json.seq), [4, 8, 12]);
    assert.ok([...got, ...alarms].every((m) => m.json.replayed === true));
    // In production order across topics.
    const order = sub.messages.filter((m) => m.topic !== "demo/status")
      .map((m) => `${m.topic.split("/")[1][0]}${m.json.seq}`);
    assert.deepEqual(order, [
      "a4",
      "t8",
      "a8",
      "t9",
      "t10",
      "t11",
      "t12",
      "a12",
    ]);
  } finally {
    await pub.stop();
    await sub?.close();
    await broker?.close();
  }
});

Deno.test({
  name:
    "last will: a poller killed without DISCONNECT leaves retained offline carrying its session",
  ignore: needs("mosquitto", MOSQUITTO),
  async fn() {
    const port = await freePort();
    const device = await FaultyDevice.start(port);
    const m = await startMosquitto({ withWebSocket: false });
    const url = `mqtt://127.0.0.1:${m.tcpPort}`;
    const sub = await Recorder.connect(url, "demo/status");
    const childLog = new LineLog();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../poll.ts", import.meta.url).pathname],
      env: {
        MODBUS_PORT: String(port),
        MQTT_URL: url,
        POLL_INTERVAL_MS: "100",
        BACKOFF_BASE_MS: "100",
        NO_COLOR: "1",
      },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const collecting = collectLines(child.stderr, childLog);
    let killed = false;
    try {
      const online = await sub.waitFor(
        "online",
        (r) => r.json.state === "online",
        20_000,
      );
      child.kill("SIGKILL");
      killed = true;
      await child.status;
      const offline = await sub.waitFor(
        "will",
        (r) => r.json.state === "offline",
      );
      assert.equal(offline.json.session, online.json.session);
      assert.equal(offline.retain, false, "live delivery of the will");
      // Retained: a consumer arriving later sees the will too.
      const late = await Recorder.connect(url, "demo/status");
      try {
        const r = await late.waitFor("retained", () => true);
        assert.equal(r.retain, true);
        assert.equal(r.json.state, "offline");
        assert.equal(r.json.session, online.json.session);
      } finally {
        await late.close();
      }
      // A will from an older session cannot mark a newer live one offline.
      const live: Status = online.json as unknown as Status;
      const older: Status = {
        ...(offline.json as unknown as Status),
        session: (online.json.session as number) - 1,
      };
      assert.equal(foldStatus(live, older).state, "online");
      assert.equal(
        foldStatus(live, offline.json as unknown as Status).state,
        "offline",
      );
    } finally {
      if (!killed) {
        child.kill("SIGKILL");
        await child.status;
      }
      await collecting;
      await sub.close();
      await m.stop();
      await device.close();
    }
  },
});
