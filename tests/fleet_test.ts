/**
 * Fleet poller on loopback: a hung device never delays healthy ones, each
 * device has its own topics and alarm state, and two pollers with disjoint
 * device sets run side by side against one broker.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { startSimulator } from "../sim.ts";
import { startBroker } from "../broker.ts";
import { type Fleet, Gate, startFleet } from "../fleet.ts";
import type { PollConfig, PollOutcome } from "../poll.ts";
import { parseConfig } from "../cli.ts";
import { POLL_OPTIONS } from "../settings.ts";
import type { DeviceSpec } from "../devices.ts";
import { listenModbusTcp, type ModbusTcpServer } from "../modbus_server.ts";
import { parseAlarmEvent, parseTelemetry } from "../contract.ts";
import { ADDR, REGISTER_SPACE } from "../registers.ts";
import { Recorder } from "./_mqtt.ts";
import { readScaled } from "./_modbus.ts";
import { startMosquitto } from "./_mosquitto.ts";
import { freePort, MOSQUITTO, needs, waitFor } from "./_support.ts";

async function embeddedBroker() {
  const port = await freePort();
  const b = await startBroker({
    host: "127.0.0.1",
    tcpPort: port,
    log: () => {},
  });
  return { url: `mqtt://127.0.0.1:${port}`, close: () => b.close() };
}

function cfgOf(env: Record<string, string>): PollConfig {
  return parseConfig(POLL_OPTIONS, [], { TOPIC_PREFIX: "fleet", ...env });
}

function spec(name: string, port: number, intervalMs = 200): DeviceSpec {
  return {
    name,
    host: "127.0.0.1",
    port,
    unitId: 1,
    intervalMs,
    map: "inverter",
  };
}

/** `n` simulated devices on OS-picked ports, deterministic, not logging. */
const quietFleetSim = (n: number) =>
  startSimulator({
    host: "127.0.0.1",
    port: 0,
    devices: n,
    noise: 0,
    log: () => {},
  });
/** A TCP server that accepts connections and never answers anything. */
async function hungServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

/** Collects outcomes per device; lets a test await a condition on them. */
class Outcomes {
  by = new Map<string, PollOutcome[]>();
  #waiters: { check: () => boolean; resolve: () => void }[] = [];
  add = (name: string, o: PollOutcome) => {
    const list = this.by.get(name) ?? [];
    list.push(o);
    this.by.set(name, list);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.check()) return true;
      w.resolve();
      return false;
    });
  };
  of(name: string): PollOutcome[] {
    return this.by.get(name) ?? [];
  }
  until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== done);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#waiters.push({ check, resolve: done });
    });
  }
}

Deno.test("gate: bounds concurrency and hands slots over in order", async () => {
  const gate = new Gate(2);
  const release: (() => void)[] = [];
  const order: number[] = [];
  const tasks = [0, 1, 2, 3].map((i) =>
    gate.run(async () => {
      order.push(i);
      await new Promise<void>((r) => release.push(r));
    })
  );
  await Promise.resolve();
  assert.equal(gate.inFlight, 2);
  assert.equal(gate.waiting, 2);
  assert.deepEqual(order, [0, 1]);
  release.shift()!();
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(order, [0, 1, 2]);
  while (release.length || order.length < 4) {
    release.shift()?.();
    await new Promise((r) => setTimeout(r, 0));
  }
  await Promise.all(tasks);
  assert.equal(gate.inFlight, 0);
  assert.equal(gate.maxInFlight, 2);
  assert.equal(gate.waited, 2);
  // A failing task frees its slot too.
  await assert.rejects(gate.run(() => Promise.reject(new Error("x"))), /x/);
  assert.equal(gate.inFlight, 0);
});

Deno.test("fleet: a hung device never delays the healthy ones", async () => {
  const sim = await quietFleetSim(4);
  const hung = await hungServer();
  const broker = await embeddedBroker();
  const seen = new Outcomes();
  let fleet: Fleet | null = null;
  const intervalMs = 200;
  try {
    const specs = [
      ...sim.ports.slice(0, 2).map((p, i) => spec(`ok-${i}`, p, intervalMs)),
      spec("hung", hung.port, intervalMs),
      ...sim.ports.slice(2).map((p, i) => spec(`ok-${i + 2}`, p, intervalMs)),
    ];
    fleet = startFleet(
      cfgOf({
        MQTT_URL: broker.url,
        MODBUS_TIMEOUT_MS: "400",
        MODBUS_RETRIES: "1",
        BACKOFF_MAX_MS: "1000",
      }),
      specs,
      // Only two slots for five devices: the hung one may hold one at a time.
      { log: () => {}, onOutcome: seen.add, maxInFlight: 2, pollerName: "t" },
    );
    // Three failed polls of the hung device: each is 2 tries x 400 ms timeout.
    await seen.until(
      "three failed polls of the hung device",
      () => seen.of("hung").length >= 3,
    );
    const hungOut = seen.of("hung");
    assert.ok(
      hungOut.every((o) => !o.ok && o.error === "timeout"),
      JSON.stringify(hungOut),
    );
    const firstFail = hungOut[0].tsMs;
    const lastFail = hungOut[2].tsMs;
    for (const name of ["ok-0", "ok-1", "ok-2", "ok-3"]) {
      const out = seen.of(name);
      assert.ok(out.every((o) => o.ok), `${name}: ${JSON.stringify(out)}`);
      // Polls kept coming at the interval all through the hung device's timeouts.
      const during = out.filter((o) =>
        o.tsMs > firstFail - 800 && o.tsMs <= lastFail
      );
      const expected = Math.floor((lastFail - (firstFail - 800)) / intervalMs);
      assert.ok(
        during.length >= expected - 2,
        `${name}: ${during.length} polls while the hung device timed out, expected ~${expected}`,
      );
      // Completion lateness against the device's own fixed schedule: the
      // schedule is anchored at its first poll, so tsMs - anchor - k*interval
      // is start lateness plus one loopback round trip.
      const anchor = out[0].tsMs;
      const late = out.map((o) => (o.tsMs - anchor) % intervalMs).map((l) =>
        l > intervalMs / 2 ? l - intervalMs : l
      );
      const worst = Math.max(...late);
      assert.ok(worst < 120, `${name}: a poll finished ${worst} ms late`);
      const gaps = out.slice(1).map((o, i) => o.tsMs - out[i].tsMs);
      assert.ok(
        Math.max(...gaps) < intervalMs + 120,
        `${name}: gaps ${gaps.join(",")}`,
      );
    }
    assert.ok(fleet.gate.maxInFlight >= 1 && fleet.gate.maxInFlight <= 2);
  } finally {
    await fleet?.stop();
    await broker.close();
    await hung.close();
    await sim.close();
  }
});

/** A device whose registers the test sets directly. */
async function fakeDevice(deviceId: number, tempC: number) {
  const words = new Array(REGISTER_SPACE).fill(0);
  words[ADDR.deviceId] = deviceId;
  words[ADDR.voltage] = 2300;
  const setTemp = (c: number) => words[ADDR.temp] = Math.round(c * 10) & 0xffff;
  setTemp(tempC);
  const srv: ModbusTcpServer = await listenModbusTcp({
    host: "127.0.0.1",
    port: 0,
    unitId: 1,
    log: () => {},
    bank: {
      size: REGISTER_SPACE,
      read: (s, c) => words.slice(s, s + c),
      checkWrite: () => 0,
      write: () => {},
    },
  });
  return { port: srv.port, setTemp, close: () => srv.close() };
}

Deno.test("fleet: each device has its own topics, status and alarm state", async () => {
  const hot = await fakeDevice(2001, 70);
  const cool = await fakeDevice(2002, 20);
  const broker = await embeddedBroker();
  const sub = await Recorder.connect(broker.url, "fleet/#");
  let fleet: Fleet | null = null;
  try {
    fleet = startFleet(
      cfgOf({
        MQTT_URL: broker.url,
        ALARM_RAISE_DELAY_MS: "0",
        ALARM_CLEAR_DELAY_MS: "0",
      }),
      [spec("hot", hot.port, 100), spec("cool", cool.port, 100)],
      { log: () => {}, pollerName: "p1" },
    );
    const raised = await sub.waitFor(
      "hot raised",
      (m) => m.topic === "fleet/hot/alarms" && m.json.state === "raised",
    );
    const ev = parseAlarmEvent(JSON.stringify(raised.json));
    assert.ok(ev.ok);
    assert.equal(ev.value.device_id, 2001);
    assert.equal(ev.value.value, 70);
    hot.setTemp(20);
    await sub.waitFor(
      "hot cleared",
      (m) => m.topic === "fleet/hot/alarms" && m.json.state === "cleared",
    );
    // Telemetry on each device's own topic with its own device id.
    const [th] = await sub.waitForCount(
      "hot telemetry",
      "fleet/hot/telemetry",
      1,
    );
    const [tc] = await sub.waitForCount(
      "cool telemetry",
      "fleet/cool/telemetry",
      1,
    );
    const ph = parseTelemetry(JSON.stringify(th.json));
    const pc = parseTelemetry(JSON.stringify(tc.json));
    assert.ok(ph.ok && pc.ok);
    assert.equal(ph.value.device_id, 2001);
    assert.equal(pc.value.device_id, 2002);
    // Retained status per device plus the poller's own birth.
    for (
      const t of [
        "fleet/hot/status",
        "fleet/cool/status",
        "fleet/_pollers/p1/status",
      ]
    ) {
      const s = await sub.waitFor(
        `${t} online`,
        (m) => m.topic === t && m.json.state === "online",
      );
      assert.equal(typeof s.json.session, "number");
    }
    const devStatus = sub.on("fleet/cool/status")[0];
    assert.equal(devStatus.json.poller, "p1");
    assert.equal(devStatus.json.session, fleet.publisher.session);
    // The cool device never alarmed: its alarm state is its own.
    assert.equal(sub.on("fleet/cool/alarms").length, 0);
    assert.equal(
      sub.messages.filter((m) => m.topic === "fleet/alarms").length,
      0,
    );
    const mark = sub.messages.length;
    await fleet.stop();
    fleet = null;
    for (
      const t of [
        "fleet/hot/status",
        "fleet/cool/status",
        "fleet/_pollers/p1/status",
      ]
    ) {
      await sub.waitFor(
        `${t} offline`,
        (m) => m.topic === t && m.json.state === "offline",
        5000,
        mark,
      );
    }
  } finally {
    await fleet?.stop();
    await sub.close();
    await broker.close();
    await hot.close();
    await cool.close();
  }
});

/** A simulator with `devices` devices, the embedded broker and a subscriber to fleet/#. */
async function withSimAndBroker(
  devices: number,
  fn: (r: {
    sim: Awaited<ReturnType<typeof startSimulator>>;
    broker: Awaited<ReturnType<typeof embeddedBroker>>;
    sub: Recorder;
  }) => Promise<void>,
): Promise<void> {
  const sim = await quietFleetSim(devices);
  const broker = await embeddedBroker();
  const sub = await Recorder.connect(broker.url, "fleet/#");
  try {
    await fn({ sim, broker, sub });
  } finally {
    await sub.close();
    await broker.close();
    await sim.close();
  }
}

Deno.test("fleet: two pollers with disjoint devices side by side on one broker", async () => {
  await withSimAndBroker(4, async ({ sim, broker, sub }) => {
    const fleets: Fleet[] = [];
    const sent = { A: new Set<string>(), B: new Set<string>() };
    try {
      const cfg = cfgOf({ MQTT_URL: broker.url });
      for (const [who, idx] of [["A", [0, 1]], ["B", [2, 3]]] as const) {
        const f = startFleet(
          cfg,
          idx.map((i) => spec(`dev-${i}`, sim.ports[i], 200)),
          { log: () => {}, pollerName: who },
        );
        // Spy on what each poller hands to MQTT (nothing is sent synchronously).
        const send = f.publisher.send.bind(f.publisher);
        f.publisher.send = (kind, topic, body, retain) => {
          sent[who].add(topic);
          send(kind, topic, body, retain);
        };
        fleets.push(f);
      }
      for (const i of [0, 1, 2, 3]) {
        await sub.waitForCount(
          `dev-${i} telemetry`,
          `fleet/dev-${i}/telemetry`,
          3,
        );
      }
      for (const f of fleets) await f.stop();
      // Every topic a poller sent is under one of its own devices (other
      // per-device topics such as alarm state may appear; never a foreign one),
      // and each of its devices published telemetry and status.
      for (const [who, ids] of [["A", [0, 1]], ["B", [2, 3]]] as const) {
        const mine = ids.map((i) => `fleet/dev-${i}/`);
        for (const t of sent[who]) {
          assert.ok(mine.some((p) => t.startsWith(p)), `${who} sent ${t}`);
        }
        for (const p of mine) {
          assert.ok(
            sent[who].has(`${p}telemetry`) && sent[who].has(`${p}status`),
          );
        }
      }
      // Each device has exactly one publisher: its seq runs 1, 2, 3... once,
      // with the device id of its simulator port.
      for (const i of [0, 1, 2, 3]) {
        const t = sub.on(`fleet/dev-${i}/telemetry`).map((m) => m.json);
        assert.deepEqual(t.map((m) => m.seq), t.map((_, k) => k + 1));
        assert.ok(t.every((m) => m.device_id === 1001 + i));
      }
      // Both pollers' own statuses, separate topics.
      for (const who of ["A", "B"]) {
        assert.ok(
          sub.on(`fleet/_pollers/${who}/status`).some((m) =>
            m.json.state === "online"
          ),
        );
      }
      // The broker saw what the pollers sent, and nothing outside the two
      // pollers' statuses and their own devices' subtrees.
      const topics = new Set(sub.messages.map((m) => m.topic));
      for (const t of [...sent.A, ...sent.B]) assert.ok(topics.has(t), t);
      for (const t of topics) {
        assert.match(t, /^fleet\/(_pollers\/[AB]\/status|dev-[0-3]\/.+)$/);
      }
    } finally {
      for (const f of fleets) await f.stop();
    }
  });
});

Deno.test("fleet: a command to one device reaches only that device and is answered on its own result topic", async () => {
  await withSimAndBroker(3, async ({ sim, broker, sub }) => {
    let fleet: Fleet | null = null;
    try {
      fleet = startFleet(
        cfgOf({ MQTT_URL: broker.url }),
        sim.ports.map((p, i) => spec(`dev-${i}`, p, 200)),
        { log: () => {}, pollerName: "cmd" },
      );
      for (const i of [0, 1, 2]) {
        await sub.waitForCount(`dev-${i}`, `fleet/dev-${i}/telemetry`, 1);
      }
      await sub.client.publishAsync(
        "fleet/dev-1/cmd/setpoint",
        JSON.stringify({
          id: "one",
          value: 1234,
          ts: new Date().toISOString(),
        }),
        { qos: 1 },
      );
      const res = await sub.waitFor(
        "result",
        (m) => m.topic.endsWith("/cmd/setpoint/result") && m.json.id === "one",
      );
      assert.equal(res.topic, "fleet/dev-1/cmd/setpoint/result");
      assert.equal(res.json.ok, true, JSON.stringify(res.json));
      // Read back by an independent client: only dev-1 holds the new value.
      const setpoints = await Promise.all(
        sim.ports.map(async (p) => (await readScaled(p)).values.setpoint_w),
      );
      assert.deepEqual(setpoints, [3000, 1234, 3000]);
      assert.equal(
        sub.messages.filter((m) => m.topic.endsWith("/cmd/setpoint/result"))
          .length,
        1,
        "exactly one answer",
      );
    } finally {
      await fleet?.stop();
    }
  });
});

const noMosquitto = needs("mosquitto", MOSQUITTO);

Deno.test({
  name:
    "scale-out: two poller processes, each with its own devices file, side by side on one Mosquitto",
  ignore: noMosquitto,
  fn: async () => {
    const sim = await quietFleetSim(4);
    const mosq = await startMosquitto({ withWebSocket: false });
    const url = `mqtt://127.0.0.1:${mosq.tcpPort}`;
    const dir = await Deno.makeTempDir();
    const sub = await Recorder.connect(url, "site/#");
    const children: Deno.ChildProcess[] = [];
    try {
      for (
        const [who, idx] of [["north", [0, 1]], ["south", [2, 3]]] as const
      ) {
        const file = `${dir}/${who}.json`;
        await Deno.writeTextFile(
          file,
          JSON.stringify({
            poller: who,
            devices: idx.map((i) => ({
              name: `inv-${i}`,
              host: "127.0.0.1",
              port: sim.ports[i],
              interval_ms: 200,
            })),
          }),
        );
        children.push(
          new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              "-P",
              new URL("../poll.ts", import.meta.url).pathname,
            ],
            env: {
              DEVICES_FILE: file,
              MQTT_URL: url,
              TOPIC_PREFIX: "site",
              NO_COLOR: "1",
            },
            stdout: "null",
            stderr: "null",
            stdin: "null",
          }).spawn(),
        );
      }
      for (const i of [0, 1, 2, 3]) {
        await sub.waitForCount(
          `inv-${i} telemetry`,
          `site/inv-${i}/telemetry`,
          3,
          (m) => m.json.quality === "good",
        );
      }
      // Each device's status names the one poller that serves it.
      for (
        const [who, idx] of [["north", [0, 1]], ["south", [2, 3]]] as const
      ) {
        await sub.waitFor(
          `${who} online`,
          (m) =>
            m.topic === `site/_pollers/${who}/status` &&
            m.json.state === "online",
        );
        for (const i of idx) {
          const st = await sub.waitFor(
            `inv-${i} status`,
            (m) =>
              m.topic === `site/inv-${i}/status` && m.json.state === "online",
          );
          assert.equal(st.json.poller, who);
        }
      }
      for (const c of children) c.kill("SIGTERM");
      for (const c of children) assert.equal((await c.status).code, 0);
      // One publisher per device: seq 1, 2, 3, ... once each, right device id.
      for (const i of [0, 1, 2, 3]) {
        const t = sub.on(`site/inv-${i}/telemetry`).map((m) => m.json);
        assert.deepEqual(t.map((m) => m.seq), t.map((_, k) => k + 1));
        assert.ok(t.every((m) => m.device_id === 1001 + i));
      }
      // A clean stop leaves every device and both pollers offline (retained).
      for (const t of ["site/_pollers/north/status", "site/inv-3/status"]) {
        await sub.waitFor(
          `${t} offline`,
          (m) => m.topic === t && m.json.state === "offline",
        );
      }
    } finally {
      for (const c of children) {
        try {
          c.kill("SIGKILL");
        } catch { /* already gone */ }
        await c.status;
      }
      await sub.close();
      await mosq.stop();
      await sim.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("fleet: after a broker restart every device's command topics are subscribed again", async () => {
  const sim = await quietFleetSim(3);
  const port = await freePort();
  const start = () =>
    startBroker({ host: "127.0.0.1", tcpPort: port, log: () => {} });
  let broker = await start();
  const url = `mqtt://127.0.0.1:${port}`;
  let fleet: Fleet | null = null;
  let sub: Recorder | null = null;
  try {
    fleet = startFleet(
      cfgOf({ MQTT_URL: url, BACKOFF_MAX_MS: "500" }),
      sim.ports.map((p, i) => spec(`dev-${i}`, p, 200)),
      { log: () => {}, pollerName: "re" },
    );
    const f = fleet;
    await waitFor("connected", () => f.publisher.connects === 1);
    await broker.close();
    broker = await start();
    await waitFor(
      "reconnected",
      () => f.publisher.connects === 2 && f.publisher.connected,
    );
    sub = await Recorder.connect(url, "fleet/#");
    // The poller subscribes right after CONNACK; a command sent before the
    // SUBSCRIBE lands is lost (clean session), so retry until answered.
    const answered = (id: string) =>
      sub!.messages.some((m) =>
        m.topic === "fleet/dev-2/cmd/setpoint/result" && m.json.id === id
      );
    let n = 0;
    await waitFor(
      "answer after resubscribe",
      async () => {
        const id = `again-${++n}`;
        await sub!.client.publishAsync(
          "fleet/dev-2/cmd/setpoint",
          JSON.stringify({ id, value: 2222, ts: new Date().toISOString() }),
          { qos: 1 },
        );
        await new Promise((r) => setTimeout(r, 100));
        return answered(id);
      },
      5000,
      0,
    );
    assert.equal((await readScaled(sim.ports[2])).values.setpoint_w, 2222);
  } finally {
    await sub?.close();
    await fleet?.stop();
    await broker.close();
    await sim.close();
  }
});
