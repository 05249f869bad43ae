/**
 * Operator commands end to end: MQTT command -> poller -> real simulator ->
 * one answer each; alarm acknowledgement with retained ISA-18.2 state.
 */
import assert from "node:assert/strict";
import { type Simulator, startSimulator } from "../sim.ts";
import { startBroker } from "../broker.ts";
import { type Poller, startPoller } from "../poll.ts";
import { parseConfig } from "../cli.ts";
import { POLL_OPTIONS } from "../settings.ts";
import { Recorder } from "./_mqtt.ts";
import { freePort } from "./_support.ts";

async function setup(env: Record<string, string> = {}) {
  const modbusPort = await freePort();
  const mqttPort = await freePort();
  const sim: Simulator = await startSimulator({
    host: "127.0.0.1",
    port: modbusPort,
    noise: 0,
    tauS: 0.5,
    stepMs: 20,
    log: () => {},
  });
  const broker = await startBroker({
    host: "127.0.0.1",
    tcpPort: mqttPort,
    log: () => {},
  });
  const url = `mqtt://127.0.0.1:${mqttPort}`;
  const sub = await Recorder.connect(url, "demo/#");
  const logs: string[] = [];
  const cfg = parseConfig(POLL_OPTIONS, [], {
    MODBUS_PORT: String(modbusPort),
    MQTT_URL: url,
    POLL_INTERVAL_MS: "100",
    BACKOFF_BASE_MS: "100",
    MODBUS_TIMEOUT_MS: "300",
    ALARM_RAISE_DELAY_MS: "300",
    ALARM_CLEAR_DELAY_MS: "300",
    ...env,
  });
  const start = async () => {
    const p = await startPoller(cfg, { log: (l) => logs.push(l) });
    // Commands only count once the poller has subscribed: wait for its
    // first telemetry after this start.
    const from = sub.messages.length;
    await sub.waitFor(
      "telemetry",
      (m) => m.topic === "demo/telemetry",
      15_000,
      from,
    );
    await sub.waitFor("mqtt connected", () => p.publisher.connected);
    return p;
  };
  let poller: Poller = await start();
  return {
    url,
    sim,
    sub,
    logs,
    get poller() {
      return poller;
    },
    /** Stop the poller and start a new one with the same configuration. */
    async restartPoller() {
      await poller.stop();
      poller = await start();
    },
    async send(topic: string, payload: unknown) {
      await sub.client.publishAsync(
        topic,
        typeof payload === "string" ? payload : JSON.stringify(payload),
        { qos: 1 },
      );
    },
    async close() {
      await poller.stop();
      await sub.close();
      await broker.close();
      await sim.close();
    },
  };
}

const result = (
  r: Recorder,
  id: string | null,
  topic = "demo/cmd/setpoint/result",
) =>
  r.waitFor(`result ${id}`, (m) => m.topic === topic && m.json.id === id, 5000);

Deno.test("setpoint commands: good, out of range, stale, malformed — one answer each, within 2 s", async () => {
  const t = await setup();
  try {
    const sent = Date.now();
    await t.send("demo/cmd/setpoint", {
      id: "good",
      value: 3500,
      ts: new Date().toISOString(),
    });
    const good = await result(t.sub, "good");
    assert.deepEqual({ ...good.json, ts: undefined }, {
      id: "good",
      ok: true,
      value: 3500,
      ts: undefined,
    });
    assert.ok(good.atMs - sent < 2000, `answered in ${good.atMs - sent} ms`);
    // The device holds it: telemetry shows the new setpoint.
    await t.sub.waitFor(
      "setpoint 3500 in telemetry",
      (m) =>
        m.topic === "demo/telemetry" &&
        (m.json.values as Record<string, number> | null)?.setpoint_w === 3500,
    );

    const cases: [string, unknown, RegExp][] = [
      [
        "range",
        { id: "range", value: 6000, ts: new Date().toISOString() },
        /value out of range 0\.\.5000/,
      ],
      [
        "string",
        { id: "string", value: "3500", ts: new Date().toISOString() },
        /JSON number/,
      ],
      [
        "frac",
        { id: "frac", value: 3500.5, ts: new Date().toISOString() },
        /integer/,
      ],
      ["stale", {
        id: "stale",
        value: 3000,
        ts: new Date(Date.now() - 60_000).toISOString(),
      }, /too old/],
      ["nots", { id: "nots", value: 3000 }, /ISO 8601/],
    ];
    for (const [id, payload, re] of cases) {
      await t.send("demo/cmd/setpoint", payload);
      const r = await result(t.sub, id);
      assert.equal(r.json.ok, false, id);
      assert.match(r.json.error as string, re);
    }
    await t.send("demo/cmd/setpoint", "{not json");
    const malformed = await result(t.sub, null);
    assert.equal(malformed.json.error, "malformed JSON");
    // Refused commands never reached the device.
    const last = t.sub.on("demo/telemetry").at(-1)!;
    assert.equal((last.json.values as Record<string, number>).setpoint_w, 3500);
    // Exactly one answer per command, and a redelivered id is not run again.
    await t.send("demo/cmd/setpoint", {
      id: "good",
      value: 100,
      ts: new Date().toISOString(),
    });
    await t.send("demo/cmd/setpoint", {
      id: "after",
      value: 3000,
      ts: new Date().toISOString(),
    });
    await result(t.sub, "after");
    const answers = t.sub.on("demo/cmd/setpoint/result").map((m) => m.json.id);
    assert.deepEqual(answers, [
      "good",
      "range",
      "string",
      "frac",
      "stale",
      "nots",
      null,
      "after",
    ]);
    assert.equal(
      t.logs.filter((l) => l.includes("setpoint") && l.includes("(good)"))
        .length,
      1,
    );
  } finally {
    await t.close();
  }
});

Deno.test("setpoint command while the device is down: ok false with the reason, within 2 s", async () => {
  const t = await setup();
  try {
    await t.sim.close();
    const sent = Date.now();
    await t.send("demo/cmd/setpoint", {
      id: "down",
      value: 3500,
      ts: new Date().toISOString(),
    });
    const r = await result(t.sub, "down");
    assert.equal(r.json.ok, false);
    assert.match(
      r.json.error as string,
      /connection refused|connection reset|connection closed|timeout/,
    );
    assert.ok(r.atMs - sent < 2000, `answered in ${r.atMs - sent} ms`);
  } finally {
    await t.close();
  }
});

Deno.test("alarm acknowledgement: ISA-18.2 states on the retained alarms/state topic", async () => {
  const t = await setup();
  const state = () => ((t.sub.on("demo/alarms/state").at(-1)?.json.alarms as {
    state: string;
  }[])?.[0]?.state);
  try {
    await t.sub.waitFor("initial state", () => state() === "normal");
    // Ack with nothing to acknowledge is refused.
    await t.send("demo/cmd/ack", { id: "early", alarm: "temp_high" });
    const early = await result(t.sub, "early", "demo/cmd/ack/result");
    assert.equal(early.json.ok, false);
    assert.match(early.json.error as string, /normal, nothing to acknowledge/);

    await t.send("demo/cmd/setpoint", {
      id: "hot",
      value: 4000,
      ts: new Date().toISOString(),
    });
    await t.sub.waitFor(
      "raised",
      (m) => m.topic === "demo/alarms" && m.json.state === "raised",
    );
    await t.sub.waitFor(
      "active-unacknowledged",
      () => state() === "active-unacknowledged",
    );
    await t.send("demo/cmd/ack", { id: "ack1", alarm: "temp_high" });
    assert.equal(
      (await result(t.sub, "ack1", "demo/cmd/ack/result")).json.ok,
      true,
    );
    await t.sub.waitFor(
      "acked event",
      (m) => m.topic === "demo/alarms" && m.json.state === "acked",
    );
    await t.sub.waitFor(
      "active-acknowledged",
      () => state() === "active-acknowledged",
    );
    // Clear after ack: back to normal.
    await t.send("demo/cmd/setpoint", {
      id: "cool",
      value: 3000,
      ts: new Date().toISOString(),
    });
    await t.sub.waitFor(
      "cleared",
      (m) => m.topic === "demo/alarms" && m.json.state === "cleared",
    );
    await t.sub.waitFor("normal again", () => state() === "normal");
    // A fresh subscriber gets the current state at once (retained).
    const late = await Recorder.connect(t.url, "demo/alarms/state");
    try {
      const m = await late.waitFor("retained state", (x) => x.retain);
      assert.equal((m.json.alarms as { state: string }[])[0].state, "normal");
    } finally {
      await late.close();
    }
  } finally {
    await t.close();
  }
});

Deno.test("alarm cleared before it is acknowledged: cleared-unacknowledged until acked, then normal", async () => {
  const t = await setup();
  const state = () => ((t.sub.on("demo/alarms/state").at(-1)?.json.alarms as {
    state: string;
  }[])?.[0]?.state);
  const setpoint = (id: string, value: number) =>
    t.send("demo/cmd/setpoint", { id, value, ts: new Date().toISOString() });
  try {
    await setpoint("hot", 4000);
    await t.sub.waitFor(
      "active-unacknowledged",
      () => state() === "active-unacknowledged",
    );
    await setpoint("cool", 3000);
    await t.sub.waitFor(
      "cleared",
      (m) => m.topic === "demo/alarms" && m.json.state === "cleared",
    );
    await t.sub.waitFor(
      "cleared-unacknowledged",
      () => state() === "cleared-unacknowledged",
    );
    // Retained: a page opened now still sees the unacknowledged alarm.
    const late = await Recorder.connect(t.url, "demo/alarms/state");
    try {
      const m = await late.waitFor("retained state", (x) => x.retain);
      const a = (m.json.alarms as Record<string, unknown>[])[0];
      assert.equal(a.state, "cleared-unacknowledged");
      assert.equal(typeof a.raised_ts, "string");
      assert.equal(typeof a.cleared_ts, "string");
    } finally {
      await late.close();
    }
    await t.send("demo/cmd/ack", { id: "late-ack", alarm: "temp_high" });
    assert.equal(
      (await result(t.sub, "late-ack", "demo/cmd/ack/result")).json.ok,
      true,
    );
    await t.sub.waitFor("normal", () => state() === "normal");
    const acked = t.sub.on("demo/alarms").filter((m) =>
      m.json.state === "acked"
    );
    assert.equal(acked.length, 1);
  } finally {
    await t.close();
  }
});

Deno.test("poller restart with MQTT_BUFFER_DIR: an unacknowledged alarm is not forgotten; it is acknowledged and clears by the rule, never raised twice", async () => {
  const dir = await Deno.makeTempDir({ prefix: "alarm-restart-" });
  const t = await setup({ MQTT_BUFFER_DIR: dir });
  const states = () =>
    t.sub.on("demo/alarms/state").map((m) =>
      (m.json.alarms as { state: string; raised_ts: string | null }[])[0]
    );
  const setpoint = (id: string, value: number) =>
    t.send("demo/cmd/setpoint", { id, value, ts: new Date().toISOString() });
  try {
    await setpoint("hot", 4000);
    await t.sub.waitFor(
      "active-unacknowledged",
      () => states().at(-1)?.state === "active-unacknowledged",
    );
    const raisedTs = states().at(-1)!.raised_ts;
    const before = t.sub.messages.length;
    await t.restartPoller();
    // The new run announces the state it continues from, not normal.
    const first = await t.sub.waitFor(
      "restarted state",
      (m) => m.topic === "demo/alarms/state",
      15_000,
      before,
    );
    const rec = (first.json.alarms as Record<string, unknown>[])[0];
    assert.equal(rec.state, "active-unacknowledged");
    assert.equal(rec.raised_ts, raisedTs);
    assert.ok(
      t.logs.some((l) =>
        /temp_high continues as active-unacknowledged \(raised .*\) from the durable outbox/
          .test(l)
      ),
    );
    await t.send("demo/cmd/ack", {
      id: "ack-after-restart",
      alarm: "temp_high",
    });
    assert.equal(
      (await result(t.sub, "ack-after-restart", "demo/cmd/ack/result")).json
        .ok,
      true,
    );
    await setpoint("cool", 3000);
    await t.sub.waitFor("normal", () => states().at(-1)?.state === "normal");
    const events = t.sub.on("demo/alarms").map((m) => m.json.state);
    assert.deepEqual(events, ["raised", "acked", "cleared"]);
  } finally {
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});
