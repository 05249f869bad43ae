/**
 * End to end on loopback: real simulator, real poller, real broker (the
 * embedded aedes and a Mosquitto child process), and a subscriber.
 */
import assert from "node:assert/strict";
import { type Simulator, startSimulator } from "../sim.ts";
import { startBroker } from "../broker.ts";
import { type PollConfig, type Poller, startPoller } from "../poll.ts";
import { parseConfig } from "../cli.ts";
import { POLL_OPTIONS } from "../settings.ts";
import {
  parseAlarmEvent,
  parseTelemetry,
  type Telemetry,
} from "../contract.ts";
import { readScaled, writeSetpoint } from "./_modbus.ts";
import { Recorder } from "./_mqtt.ts";
import { startMosquitto } from "./_mosquitto.ts";
import { assertPortFree, freePort, MOSQUITTO, needs } from "./_support.ts";

interface BrokerUnderTest {
  url: string;
  stop(): Promise<void>;
}

async function embeddedBroker(): Promise<BrokerUnderTest> {
  const port = await freePort();
  const b = await startBroker({
    host: "127.0.0.1",
    tcpPort: port,
    log: () => {},
  });
  return { url: `mqtt://127.0.0.1:${port}`, stop: () => b.close() };
}

async function mosquittoBroker(): Promise<BrokerUnderTest> {
  const m = await startMosquitto({ withWebSocket: false });
  return { url: `mqtt://127.0.0.1:${m.tcpPort}`, stop: () => m.stop() };
}

function pollConfig(env: Record<string, string>): PollConfig {
  return parseConfig(POLL_OPTIONS, [], env);
}

/** Every pipeline test runs against both brokers. */
const BROKERS = [
  ["embedded aedes", embeddedBroker, false],
  ["Mosquitto", mosquittoBroker, needs("mosquitto", MOSQUITTO)],
] as const;

const telemetryOf = (json: unknown): Telemetry => {
  const r = parseTelemetry(JSON.stringify(json));
  if (!r.ok) throw new Error(`invalid telemetry: ${r.error}`);
  return r.value;
};

for (const [name, makeBroker, ignore] of BROKERS) {
  Deno.test({
    name:
      `pipeline via ${name}: 1 Hz telemetry with the device's values, quality and retained status`,
    ignore,
    async fn() {
      const modbusPort = await freePort();
      const sim = await startSimulator({
        host: "127.0.0.1",
        port: modbusPort,
        noise: 0,
        log: () => {},
      });
      const broker = await makeBroker();
      const sub = await Recorder.connect(broker.url, "demo/#");
      let poller: Poller | null = null;
      try {
        poller = await startPoller(
          pollConfig({ MODBUS_PORT: String(modbusPort), MQTT_URL: broker.url }),
          { log: () => {} },
        );
        const msgs = await sub.waitForCount("telemetry", "demo/telemetry", 3);
        const t = msgs.map((m) => telemetryOf(m.json));
        assert.ok(t.every((m) => m.quality === "good"));
        assert.deepEqual(t.map((m) => m.seq), [1, 2, 3]);
        // 1 Hz on a fixed schedule: gaps near 1000 ms (loose: shared machine).
        const times = t.map((m) => Date.parse(m.ts));
        for (let i = 1; i < times.length; i++) {
          const gap = times[i] - times[i - 1];
          assert.ok(gap > 800 && gap < 1200, `gap ${gap} ms`);
        }
        // Values equal what the device holds (noise 0, steady state).
        const device = await readScaled(modbusPort);
        const last = t.at(-1)!;
        assert.equal(last.device_id, 1001);
        if (last.quality !== "good") throw new Error("unreachable");
        for (
          const k of [
            "power_w",
            "voltage_v",
            "current_a",
            "temp_c",
            "setpoint_w",
            "status_bits",
          ] as const
        ) {
          assert.equal(last.values[k], device.values[k], k);
        }
        assert.ok(Math.abs(last.values.soc_pct - device.values.soc_pct) < 1);
        assert.equal(last.values.temp_c, 55);
        const status = await sub.waitFor(
          "online status",
          (m) => m.topic === "demo/status",
        );
        assert.equal(status.json.state, "online");
        assert.equal(typeof status.json.session, "number");
        // Retained: a subscriber arriving later gets it at once.
        const late = await Recorder.connect(broker.url, "demo/status");
        const kept = await late.waitFor("retained online", () => true, 5000);
        await late.close();
        assert.deepEqual([kept.retain, kept.json.state], [true, "online"]);
        await poller.stop();
        const later = await Recorder.connect(broker.url, "demo/status");
        const gone = await later.waitFor("retained offline", () => true, 5000);
        await later.close();
        assert.deepEqual([gone.retain, gone.json.state], [true, "offline"]);
      } finally {
        await poller?.stop();
        const offline = await sub.waitFor(
          "offline status",
          (m) => m.topic === "demo/status" && m.json.state === "offline",
          5000,
        ).catch((e) => e as Error);
        await sub.close();
        await broker.stop();
        await sim.close();
        assert.ok(
          !(offline instanceof Error),
          "clean shutdown publishes offline",
        );
      }
      await assertPortFree(modbusPort);
    },
  });

  Deno.test({
    name:
      `pipeline via ${name}: setpoint 4000 raises temp_high, 3000 clears it`,
    ignore,
    async fn() {
      const modbusPort = await freePort();
      const sim = await startSimulator({
        host: "127.0.0.1",
        port: modbusPort,
        noise: 0,
        tauS: 0.5,
        stepMs: 20,
        log: () => {},
      });
      const broker = await makeBroker();
      const sub = await Recorder.connect(broker.url, "demo/#");
      let poller: Poller | null = null;
      try {
        poller = await startPoller(
          pollConfig({
            MODBUS_PORT: String(modbusPort),
            MQTT_URL: broker.url,
            POLL_INTERVAL_MS: "100",
            BACKOFF_BASE_MS: "100",
            ALARM_RAISE_DELAY_MS: "500",
            ALARM_CLEAR_DELAY_MS: "300",
          }),
          { log: () => {} },
        );
        await sub.waitFor(
          "first telemetry",
          (m) => m.topic === "demo/telemetry",
        );
        assert.equal(sub.on("demo/alarms").length, 0, "no alarm at start");
        await writeSetpoint(modbusPort, 4000);
        const raised = await sub.waitFor(
          "raised",
          (m) => m.topic === "demo/alarms",
        );
        const ev = parseAlarmEvent(JSON.stringify(raised.json));
        assert.ok(ev.ok);
        assert.equal(ev.value.state, "raised");
        assert.equal(ev.value.alarm, "temp_high");
        assert.equal(ev.value.device_id, 1001);
        assert.ok(ev.value.value > 60);
        // Every telemetry sample in the 500 ms before the raise was above 60.
        const raisedAt = Date.parse(ev.value.ts);
        const before = sub.on("demo/telemetry").map((m) => telemetryOf(m.json))
          .filter((t) =>
            Date.parse(t.ts) <= raisedAt && Date.parse(t.ts) >= raisedAt - 500
          );
        assert.ok(before.length >= 4);
        assert.ok(
          before.every((t) => t.quality === "good" && t.values.temp_c > 60),
        );
        await writeSetpoint(modbusPort, 3000);
        const cleared = await sub.waitFor(
          "cleared",
          (m) => m.topic === "demo/alarms" && m.json.state === "cleared",
        );
        assert.ok((cleared.json.value as number) < 58);
        assert.equal(
          sub.on("demo/alarms").length,
          2,
          "exactly one raise and one clear",
        );
      } finally {
        await poller?.stop();
        await sub.close();
        await broker.stop();
        await sim.close();
      }
    },
  });
}

for (const [name, makeBroker, ignore] of BROKERS) {
  Deno.test({
    name:
      `simulator killed (via ${name}): bad quality with the reason and growing backoff; restarted: recovery and reset`,
    ignore,
    async fn() {
      const modbusPort = await freePort();
      let sim: Simulator | null = await startSimulator({
        host: "127.0.0.1",
        port: modbusPort,
        noise: 0,
        log: () => {},
      });
      const broker = await makeBroker();
      const sub = await Recorder.connect(broker.url, "demo/telemetry");
      const logs: string[] = [];
      let poller: Poller | null = null;
      try {
        poller = await startPoller(
          pollConfig({
            MODBUS_PORT: String(modbusPort),
            MQTT_URL: broker.url,
            POLL_INTERVAL_MS: "100",
            BACKOFF_BASE_MS: "100",
            MODBUS_TIMEOUT_MS: "300",
            MODBUS_RETRIES: "1",
          }),
          { log: (l) => logs.push(l), random: () => 0.5 },
        );
        await sub.waitForCount("good telemetry", "demo/telemetry", 2);
        await sim.close();
        sim = null;
        const bad = await sub.waitForCount(
          "bad telemetry",
          "demo/telemetry",
          4,
          (m) => m.json.quality === "bad",
        );
        const badT = bad.map((m) => telemetryOf(m.json));
        for (const t of badT) {
          assert.equal(t.values, null);
          assert.ok(
            t.quality === "bad" &&
              /connection (refused|reset|closed)|timeout/.test(t.error),
            JSON.stringify(t),
          );
        }
        assert.equal(
          badT[0].device_id,
          1001,
          "device id of the last good read",
        );
        // Backoff doubles: 100, 200, 400 ms between bad messages (random 0.5 = no jitter).
        const failed = poller.outcomes.filter((o) => !o.ok);
        const delays = failed.slice(0, 3).map((
          o,
        ) => (o.ok ? 0 : o.nextDelayMs));
        assert.deepEqual(delays, [100, 200, 400]);
        const gaps = bad.slice(1, 4).map((m, i) =>
          Date.parse(m.json.ts as string) - Date.parse(bad[i].json.ts as string)
        );
        assert.ok(gaps[1] > gaps[0] && gaps[2] > gaps[1], `gaps grow: ${gaps}`);
        // (One log line per state change is proven in faults_test.ts.)

        const mark = sub.messages.length;
        sim = await startSimulator({
          host: "127.0.0.1",
          port: modbusPort,
          noise: 0,
          log: () => {},
        });
        const good = await sub.waitForCount(
          "good after restart",
          "demo/telemetry",
          3,
          (m) => m.json.quality === "good",
          15_000,
          mark,
        );
        assert.ok(logs.some((l) => /recovered/.test(l)), logs.join("\n"));
        // Schedule reset to the normal interval.
        const g = good.map((m) => Date.parse(m.json.ts as string));
        assert.ok(
          g[2] - g[1] < 200,
          `normal interval after recovery: ${g[2] - g[1]} ms`,
        );
        // seq has no gaps across the outage.
        const seqs = sub.on("demo/telemetry").map((m) => m.json.seq as number);
        assert.deepEqual(seqs, seqs.map((_, i) => i + 1));
      } finally {
        await poller?.stop();
        await sub.close();
        await broker.stop();
        await sim?.close();
      }
    },
  });
}
