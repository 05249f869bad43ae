/**
 * Nothing lost when the broker goes away: the real poller keeps polling and
 * evaluating alarms while it cannot reach the broker, then replays
 * everything in order, marked `"replayed": true`, before live data. The
 * consumer is a persistent session (clean: false, fixed client id, QoS 1)
 * that stays offline through the outage and the replay, so everything it
 * gets comes from its session queue at the broker: Mosquitto restarted
 * with persistence on, and the embedded aedes (whose sessions live in
 * memory and die with it) kept up while the poller's own path to it is
 * cut. Also the outbox bound, and the last will of a poller that dies
 * without DISCONNECT.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { startBroker } from "../broker.ts";
import { type Poller, startPoller } from "../poll.ts";
import { Publisher } from "../publisher.ts";
import { parseConfig } from "../cli.ts";
import { POLL_OPTIONS } from "../settings.ts";
import { foldStatus } from "../hmi_model.ts";
import type { Status } from "../contract.ts";
import { type Received, Recorder } from "./_mqtt.ts";
import { startMosquitto } from "./_mosquitto.ts";
import { FaultyDevice } from "./_faulty_device.ts";
import { TcpProxy } from "./_tcp_proxy.ts";
import {
  collectLines,
  freePort,
  LineLog,
  MOSQUITTO,
  needs,
  waitFor,
} from "./_support.ts";

/** Where the poller and the subscriber connect, and the outage to make. */
interface Outage {
  /** The poller's broker URL. */
  pollerUrl: string;
  /** The subscriber's broker URL. */
  subUrl: string;
  /** Take the broker away from the poller... */
  begin(): Promise<void>;
  /** ...and give it back. */
  end(): Promise<void>;
  close(): Promise<void>;
}

/** Mosquitto stopped and started again; its persistence keeps sessions. */
async function mosquittoRestart(): Promise<Outage> {
  const m = await startMosquitto({ withWebSocket: false, persistence: true });
  const url = `mqtt://127.0.0.1:${m.tcpPort}`;
  return {
    pollerUrl: url,
    subUrl: url,
    begin: () => m.down(),
    end: () => m.up(),
    close: () => m.stop(),
  };
}

/** aedes stays up (its sessions are in memory); the poller's path is cut. */
async function aedesPathCut(): Promise<Outage> {
  const port = await freePort();
  const b = await startBroker({
    host: "127.0.0.1",
    tcpPort: port,
    log: () => {},
  });
  const proxy = await TcpProxy.start(port);
  return {
    pollerUrl: `mqtt://127.0.0.1:${proxy.port}`,
    subUrl: `mqtt://127.0.0.1:${port}`,
    begin: () => proxy.cut(),
    end: () => proxy.resume(),
    async close() {
      await proxy.close();
      await b.close();
    },
  };
}

/**
 * A consumer with a persistent session. It subscribes only when the broker
 * has no session for it, so whatever it gets after a reconnect came through
 * the session the broker kept.
 */
class SessionSubscriber {
  readonly messages: Received[] = [];
  readonly sessionPresent: boolean[] = [];
  readonly clientId = `outage-sub-${crypto.randomUUID().slice(0, 8)}`;
  #client: mqtt.MqttClient | null = null;

  constructor(readonly url: string) {}

  async connect(): Promise<void> {
    const c = mqtt.connect(this.url, {
      clientId: this.clientId,
      clean: false,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    // Before CONNACK: queued messages may follow it in the same packet.
    c.on("message", (topic, payload, packet) => {
      this.messages.push({
        topic,
        json: JSON.parse(payload.toString()),
        retain: packet.retain,
        atMs: Date.now(),
      });
    });
    const ack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
      c.once("connect", resolve);
      c.once("error", reject);
    });
    this.#client = c;
    this.sessionPresent.push(ack.sessionPresent);
    if (!ack.sessionPresent) await c.subscribeAsync("demo/#", { qos: 1 });
  }

  async disconnect(): Promise<void> {
    await this.#client?.endAsync();
    this.#client = null;
  }

  on(topic: string): Received[] {
    return this.messages.filter((m) => m.topic === topic);
  }
}

const OUTAGES = [
  [
    "Mosquitto restarted with persistence",
    mosquittoRestart,
    needs("mosquitto", MOSQUITTO),
  ],
  ["embedded aedes kept up, the poller's path cut", aedesPathCut, false],
] as const;

for (const [name, makeOutage, ignore] of OUTAGES) {
  Deno.test({
    name:
      `outage (${name}): a persistent-session subscriber offline through the outage and the replay gets every seq from its session queue, buffered ones replayed in order before live data, alarms too`,
    ignore,
    async fn() {
      const port = await freePort();
      const device = await FaultyDevice.start(port);
      const outage = await makeOutage();
      const sub = new SessionSubscriber(outage.subUrl);
      const log = new LineLog();
      let polls = 0;
      let poller: Poller | null = null;
      try {
        await sub.connect();
        poller = await startPoller(
          parseConfig(POLL_OPTIONS, [], {
            MODBUS_PORT: String(port),
            MQTT_URL: outage.pollerUrl,
            POLL_INTERVAL_MS: "100",
            BACKOFF_BASE_MS: "100",
            ALARM_RAISE_DELAY_MS: "300",
          }),
          {
            log: (l) => log.push(l),
            random: () => 0.5,
            onOutcome: () => polls++,
          },
        );
        await waitFor(
          "live telemetry",
          () => sub.on("demo/telemetry").length >= 5,
        );
        const birth1 = sub.on("demo/status").find((m) =>
          m.json.state === "online"
        );
        assert.ok(birth1, "birth seen");
        // The consumer goes away first and stays away until the end.
        await sub.disconnect();
        const offlineAfter = sub.messages.length;

        await outage.begin();
        await log.waitFor(/mqtt: disconnected; buffering/);
        // The alarm condition arises while the broker is away.
        device.tempRaw = 700;
        await log.waitFor(/alarm: .*temp_high raised/);
        await log.waitFor(/mqtt: reconnect failed; next try in \d+ ms/);
        const buffered = poller.publisher.outbox.length;
        assert.ok(buffered >= 10, `buffered ${buffered} during the outage`);
        await outage.end();
        // The replay goes to the broker, then a few live polls.
        const pub = poller.publisher;
        await waitFor("reconnected", () => pub.connects >= 2, 15_000);
        const polledAtReconnect = polls;
        await waitFor(
          "replay delivered and live data after it",
          () => pub.outbox.length === 0 && polls >= polledAtReconnect + 5,
          15_000,
        );
        assert.equal(sub.messages.length, offlineAfter, "offline throughout");
        // One telemetry message per poll: the latest seq produced so far.
        const produced = polls;
        const seqBeforeOffline = Math.max(
          ...sub.on("demo/telemetry").map((m) => m.json.seq as number),
        );

        // Back: the broker kept the session and queued everything for it.
        await sub.connect();
        assert.deepEqual(sub.sessionPresent, [false, true]);
        await waitFor(
          "every seq up to the latest, then live data",
          () => {
            const got = new Set(
              sub.on("demo/telemetry").map((m) => m.json.seq),
            );
            for (let s = 1; s <= produced + 3; s++) {
              if (!got.has(s)) return false;
            }
            return true;
          },
          15_000,
        );
        // What was produced while it was away came from its session queue.
        const fromQueue = new Set(
          sub.messages.slice(offlineAfter).filter((m) =>
            m.topic === "demo/telemetry"
          ).map((m) => m.json.seq as number),
        );
        for (let s = seqBeforeOffline + 1; s <= produced; s++) {
          assert.ok(fromQueue.has(s), `seq ${s} from the session queue`);
        }
        const tel = sub.on("demo/telemetry");
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
        assert.ok(firstLaterLive > 0, "live data after the replay");
        assert.ok(lastReplayedIdx < firstLaterLive, "replay before live data");
        const firstRep = new Set<number>();
        const rFirst = rSeqs.filter((s) => !firstRep.has(s) && firstRep.add(s));
        assert.deepEqual(rFirst, [...rFirst].sort((a, b) => a - b));
        // The alarm raised during the outage is delivered, marked replayed.
        const alarms = sub.on("demo/alarms");
        assert.equal(alarms.length >= 1, true, "alarm delivered");
        assert.equal(alarms[0].json.state, "raised");
        assert.equal(alarms[0].json.replayed, true);
        // The poller's birth after reconnecting was queued too, newer session.
        const birth2 = sub.messages.slice(offlineAfter).find((m) =>
          m.topic === "demo/status" && m.json.state === "online"
        );
        assert.ok(birth2, "birth after reconnect");
        assert.ok(
          (birth2.json.session as number) > (birth1.json.session as number),
          "a new session on every reconnect",
        );
        assert.equal(pub.outbox.dropped, 0);
        console.log(
          `${name}: ${buffered} buffered, ${rSeqs.length} replayed telemetry (${
            new Set(rSeqs).size
          } distinct), seq 1..${maxSeq} all received, ${
            seqBeforeOffline + 1
          }..${produced} from the session queue (${
            seqs.length - maxSeq
          } duplicates); sessionPresent ${sub.sessionPresent.join("/")}`,
        );
      } finally {
        await poller?.stop();
        await sub.disconnect();
        await outage.close();
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
