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
import type { AlarmRecord } from "../alarm_states.ts";
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
    /** A setpoint command stamped now. */
    setpoint(id: string, value: number) {
      return this.send("demo/cmd/setpoint", {
        id,
        value,
        ts: new Date().toISOString(),
      });
    },
    /** Acknowledge temp_high; resolves with the answer's body. */
    async ack(id: string) {
      await this.send("demo/cmd/ack", { id, alarm: "temp_high" });
      return (await result(sub, id, "demo/cmd/ack/result")).json;
    },
    /** temp_high's record in the last retained alarms/state seen. */
    alarm(): AlarmRecord | undefined {
      return (sub.on("demo/alarms/state").at(-1)?.json.alarms as
        | AlarmRecord[]
        | undefined)?.[0];
    },
    untilAlarm(state: string) {
      return sub.waitFor(state, () => this.alarm()?.state === state);
    },
    untilEvent(state: string) {
      return sub.waitFor(
        `${state} event`,
        (m) => m.topic === "demo/alarms" && m.json.state === state,
      );
    },
    /** Alarm events (raised, acked, cleared) so far, in order. */
    events() {
      return sub.on("demo/alarms").map((m) => m.json.state);
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
  try {
    await t.untilAlarm("normal");
    // Ack with nothing to acknowledge is refused.
    const early = await t.ack("early");
    assert.equal(early.ok, false);
    assert.match(early.error as string, /normal, nothing to acknowledge/);

    await t.setpoint("hot", 4000);
    await t.untilEvent("raised");
    await t.untilAlarm("active-unacknowledged");
    assert.equal((await t.ack("ack1")).ok, true);
    await t.untilEvent("acked");
    await t.untilAlarm("active-acknowledged");
    // Clear after ack: back to normal.
    await t.setpoint("cool", 3000);
    await t.untilEvent("cleared");
    await t.untilAlarm("normal");
    assert.deepEqual(t.events(), ["raised", "acked", "cleared"]);
    // A fresh subscriber gets the current state at once (retained).
    const late = await Recorder.connect(t.url, "demo/alarms/state");
    try {
      const m = await late.waitFor("retained state", (x) => x.retain);
      assert.equal((m.json.alarms as AlarmRecord[])[0].state, "normal");
    } finally {
      await late.close();
    }
  } finally {
    await t.close();
  }
});

Deno.test("alarm cleared before it is acknowledged: cleared-unacknowledged until acked, then normal", async () => {
  const t = await setup();
  try {
    await t.setpoint("hot", 4000);
    await t.untilAlarm("active-unacknowledged");
    await t.setpoint("cool", 3000);
    await t.untilEvent("cleared");
    await t.untilAlarm("cleared-unacknowledged");
    // Retained: a page opened now still sees the unacknowledged alarm.
    const late = await Recorder.connect(t.url, "demo/alarms/state");
    try {
      const m = await late.waitFor("retained state", (x) => x.retain);
      const a = (m.json.alarms as AlarmRecord[])[0];
      assert.equal(a.state, "cleared-unacknowledged");
      assert.equal(typeof a.raised_ts, "string");
      assert.equal(typeof a.cleared_ts, "string");
    } finally {
      await late.close();
    }
    assert.equal((await t.ack("late-ack")).ok, true);
    await t.untilAlarm("normal");
    assert.deepEqual(t.events(), ["raised", "cleared", "acked"]);
  } finally {
    await t.close();
  }
});

Deno.test("poller restart with MQTT_BUFFER_DIR: an unacknowledged alarm is not forgotten; it is acknowledged and clears by the rule, never raised twice", async () => {
  const dir = await Deno.makeTempDir({ prefix: "alarm-restart-" });
  const t = await setup({ MQTT_BUFFER_DIR: dir });
  try {
    await t.setpoint("hot", 4000);
    await t.untilAlarm("active-unacknowledged");
    const raisedTs = t.alarm()!.raised_ts;
    const before = t.sub.messages.length;
    await t.restartPoller();
    // The new run announces the state it continues from, not normal.
    const first = await t.sub.waitFor(
      "restarted state",
      (m) => m.topic === "demo/alarms/state",
      15_000,
      before,
    );
    const rec = (first.json.alarms as AlarmRecord[])[0];
    assert.equal(rec.state, "active-unacknowledged");
    assert.equal(rec.raised_ts, raisedTs);
    assert.ok(
      t.logs.some((l) =>
        /temp_high continues as active-unacknowledged \(raised .*\) from the durable outbox/
          .test(l)
      ),
    );
    assert.equal((await t.ack("ack-after-restart")).ok, true);
    await t.setpoint("cool", 3000);
    await t.untilAlarm("normal");
    assert.deepEqual(t.events(), ["raised", "acked", "cleared"]);
  } finally {
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});
