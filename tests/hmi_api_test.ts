/**
 * The HMI server's history: it records telemetry and alarm events from a
 * real broker into SQLite under DATA_DIR and serves them on /api/history and
 * /api/alarms, with parameter validation.
 */
import assert from "node:assert/strict";
import { startBroker } from "../broker.ts";
import { parseConfig } from "../cli.ts";
import { HMI_OPTIONS } from "../settings.ts";
import { startHmi } from "../hmi.ts";
import { buildAlarmEvent, buildTelemetry } from "../contract.ts";
import { History } from "../history.ts";
import { Recorder } from "./_mqtt.ts";
import { alarmEvent, VALUES } from "./_fixtures.ts";
import { assertPortFree, freePort, waitFor } from "./_support.ts";

async function setup() {
  const dataDir = await Deno.makeTempDir({ prefix: "hmi-api-" });
  const tcpPort = await freePort();
  const broker = await startBroker({
    host: "127.0.0.1",
    tcpPort,
    log: () => {},
  });
  const mqttUrl = `mqtt://127.0.0.1:${tcpPort}`;
  const pub = await Recorder.connect(mqttUrl, "none/#");
  const logs: string[] = [];
  const env = {
    HMI_HOST: "127.0.0.1",
    MQTT_URL: mqttUrl,
    TOPIC_PREFIX: "apitest",
    DATA_DIR: `${dataDir}/nested/dir`,
  };
  const start = async () => {
    const port = await freePort();
    const hmi = await startHmi(
      parseConfig(HMI_OPTIONS, [], { ...env, HMI_PORT: String(port) }),
      (l) => logs.push(l),
    );
    const base = `http://127.0.0.1:${port}`;
    // Recording starts once the server's MQTT subscription is in place.
    await waitFor(
      "history recorder subscribed",
      async () => {
        const h = await (await fetch(`${base}/api/health`)).json();
        return h.history.recording === true;
      },
      10_000,
      20,
    );
    return { hmi, port, base };
  };
  return {
    dataDir,
    pub,
    logs,
    start,
    publish: (topic: string, body: unknown) =>
      pub.client.publishAsync(
        `apitest/${topic}`,
        typeof body === "string" ? body : JSON.stringify(body),
        { qos: 1 },
      ),
    async close() {
      await pub.close();
      await broker.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

// deno-lint-ignore no-explicit-any
async function getJson(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

Deno.test("HMI records MQTT telemetry and alarms; /api/history and /api/alarms serve them", async () => {
  const t = await setup();
  try {
    let s = await t.start();
    try {
      const now = Date.now();
      // 5 telemetry messages 1 s apart (ending now), one old one (20 min ago),
      // one duplicate (QoS 1 redelivery) and hostile/invalid payloads.
      const tel = [0, 1, 2, 3, 4].map((i) =>
        buildTelemetry({
          tsMs: now - (4 - i) * 1000,
          deviceId: 1001,
          seq: 100 + i,
          values: { ...VALUES, temp_c: 50 + i },
        })
      );
      const old = buildTelemetry({
        tsMs: now - 20 * 60_000,
        deviceId: 1001,
        seq: 1,
        values: VALUES,
      });
      await t.publish("telemetry", old);
      await t.publish("telemetry", "{not json");
      await t.publish("telemetry", { ts: "yesterday", seq: 1 });
      for (const m of tel) await t.publish("telemetry", m);
      await t.publish("telemetry", tel[2]);
      const raised = buildAlarmEvent({
        tsMs: now - 3000,
        deviceId: 1001,
        alarm: "temp_high",
        state: "raised",
        value: 61.2,
        message: "temperature 61.2 C above 60 C",
      });
      const acked = {
        ...raised,
        ts: new Date(now - 2000).toISOString(),
        state: "acked",
        message: "acknowledged",
      };
      const cleared = {
        ...raised,
        ts: new Date(now - 1000).toISOString(),
        state: "cleared",
        value: 57.9,
      };
      await t.publish("alarms", raised);
      await t.publish("alarms", { alarm: "temp_high" });
      await t.publish("alarms", acked);
      await t.publish("alarms", cleared);

      // Recorded: the last valid message on each topic shows up.
      await waitFor(
        "all recorded",
        async () => {
          const h = await getJson(`${s.base}/api/health`);
          return h.body.history.telemetry === 7 && h.body.history.alarms === 3;
        },
        5_000,
        20,
      );
      const health = await getJson(`${s.base}/api/health`);
      assert.equal(health.body.history.rejected, 3);
      assert.ok(
        t.logs.some((l) =>
          /dropped invalid message on apitest\/telemetry: malformed JSON/.test(
            l,
          )
        ),
      );

      // Default window 10 min: the 5 recent ones, oldest first, deduplicated.
      const h10 = await getJson(`${s.base}/api/history`);
      assert.equal(h10.status, 200);
      assert.deepEqual(h10.body, tel);
      // minutes=30 includes the old one first.
      const h30 = await getJson(`${s.base}/api/history?minutes=30`);
      assert.deepEqual(h30.body, [old, ...tel]);

      // Alarms: newest first, limit respected, acked events included.
      const a = await getJson(`${s.base}/api/alarms`);
      assert.equal(a.status, 200);
      assert.deepEqual(a.body, [cleared, acked, raised]);
      const a1 = await getJson(`${s.base}/api/alarms?limit=1`);
      assert.deepEqual(a1.body, [cleared]);
      const res = await fetch(`${s.base}/api/alarms?limit=2`);
      await res.body?.cancel();
      assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
      assert.equal(res.headers.get("cache-control"), "no-store");
      assert.ok(res.headers.get("content-security-policy"));

      // Restart: the history survives in DATA_DIR/history.db.
      await s.hmi.close();
      await assertPortFree(s.port);
      s = await t.start();
      assert.deepEqual(
        (await getJson(`${s.base}/api/history?minutes=30`)).body,
        [old, ...tel],
      );
      assert.equal(
        (await getJson(`${s.base}/api/alarms?limit=1000`)).body.length,
        3,
      );
      await Deno.stat(`${t.dataDir}/nested/dir/history.db`);
    } finally {
      await s.hmi.close();
    }
    await assertPortFree(s.port);
  } finally {
    await t.close();
  }
});

Deno.test("/api/history and /api/alarms reject bad parameters with 400 and a clear message", async () => {
  const t = await setup();
  try {
    const s = await t.start();
    try {
      const minutes = "minutes must be an integer in 1..10080";
      const limit = "limit must be an integer in 1..1000";
      const cases: [string, string][] = [
        ["/api/history?minutes=0", minutes],
        ["/api/history?minutes=10081", minutes],
        ["/api/history?minutes=-5", minutes],
        ["/api/history?minutes=1.5", minutes],
        ["/api/history?minutes=abc", minutes],
        ["/api/history?minutes=", minutes],
        ["/api/history?minutes=1e3", minutes],
        ["/api/history?minutes=%2010", minutes],
        ["/api/alarms?limit=0", limit],
        ["/api/alarms?limit=1001", limit],
        ["/api/alarms?limit=ten", limit],
        ["/api/alarms?limit=", limit],
        ["/api/alarms?limit=99999999999999", limit],
      ];
      for (const [path, error] of cases) {
        const r = await getJson(`${s.base}${path}`);
        assert.equal(r.status, 400, path);
        assert.deepEqual(r.body, { error }, path);
      }
      // Edges are accepted; an empty store is an empty array.
      for (
        const path of [
          "/api/history?minutes=1",
          "/api/history?minutes=10080",
          "/api/alarms?limit=1",
          "/api/alarms?limit=1000",
        ]
      ) {
        const r = await getJson(`${s.base}${path}`);
        assert.equal(r.status, 200, path);
        assert.deepEqual(r.body, [], path);
      }
      const post = await fetch(`${s.base}/api/history`, { method: "POST" });
      await post.body?.cancel();
      assert.equal(post.status, 405);
    } finally {
      await s.hmi.close();
    }
  } finally {
    await t.close();
  }
});

Deno.test("hostile input on every subscribed topic: huge, malformed, wrong types, deep, future-dated; rejected, rate-limited, recording goes on", async () => {
  const t = await setup();
  try {
    const s = await t.start();
    try {
      const now = Date.now();
      const good = (seq: number, tsMs = now) =>
        buildTelemetry({ tsMs, deviceId: 1001, seq, values: VALUES });
      const alarm = (tsMs: number) => alarmEvent(tsMs);
      const huge = JSON.stringify({
        ...good(1),
        pad: "x".repeat(300 * 1024),
      });
      const deep = `{"ts":"${new Date(now).toISOString()}","seq":1,"x":${
        "[".repeat(30_000)
      }${"]".repeat(30_000)}}`;
      // Every subscribed topic form: single device and fleet device.
      const topics = ["telemetry", "alarms", "inv-1/telemetry", "inv-1/alarms"];
      let sent = 0;
      for (const topic of topics) {
        for (
          const body of [
            huge,
            "{not json",
            "[]",
            "null",
            JSON.stringify({ ...good(2), seq: "2" }),
            JSON.stringify({ ...alarm(now), value: "hot" }),
            deep,
          ]
        ) {
          await t.publish(topic, body);
          sent++;
        }
      }
      // Dated in 2100 (a wrong clock): refused, and erases nothing.
      const future = Date.UTC(2100, 0, 1);
      await t.publish("telemetry", good(3, future));
      await t.publish("inv-1/alarms", alarm(future));
      sent += 2;
      // Still recording afterwards.
      await t.publish("telemetry", good(4));
      await t.publish("inv-1/alarms", alarm(now));
      await waitFor(
        "valid ones recorded after the hostile ones",
        async () => {
          const h = (await getJson(`${s.base}/api/health`)).body.history;
          return h.telemetry === 1 && h.alarms === 1 && h.rejected === sent;
        },
        10_000,
        20,
      );
      assert.deepEqual(
        (await getJson(`${s.base}/api/history`)).body.map((
          x: { seq: number },
        ) => x.seq),
        [4],
      );
      const dropped = t.logs.filter((l) => /dropped invalid message/.test(l));
      // Rate-limited: the first 10, then every 100th.
      assert.equal(dropped.length, 10, dropped.join("\n"));
      assert.ok(dropped.every((l) => l.length < 400), "short log lines");
      assert.ok(
        dropped.some((l) =>
          /apitest\/telemetry: payload too large \(\d+ bytes\)/.test(l)
        ),
      );
      // Beyond those lines the rest were counted (rejected === sent above):
      // none recorded, none crashed the recorder.
    } finally {
      await s.hmi.close();
    }
  } finally {
    await t.close();
  }
});

Deno.test("future-dated messages are refused with the reason logged", async () => {
  const t = await setup();
  try {
    const s = await t.start();
    try {
      const ts = Date.now() + 3600_000;
      await t.publish(
        "telemetry",
        buildTelemetry({ tsMs: ts, deviceId: 1001, seq: 9, values: VALUES }),
      );
      const line = await waitFor(
        "rejection logged",
        () => t.logs.find((l) => /dropped invalid message/.test(l)),
        5000,
        20,
      );
      assert.match(
        line,
        /apitest\/telemetry: ts is 3600 s ahead of the server clock \(at most 300 s\)/,
      );
      assert.deepEqual(
        (await getJson(`${s.base}/api/history?minutes=10080`)).body,
        [],
      );
    } finally {
      await s.hmi.close();
    }
  } finally {
    await t.close();
  }
});

Deno.test("/api/history says when a long window was truncated to the newest 20,000 rows", async () => {
  const t = await setup();
  try {
    // 20,005 rows of the last ~6 hours, written straight into DATA_DIR's db.
    await Deno.mkdir(`${t.dataDir}/nested/dir`, { recursive: true });
    const now = Date.now();
    const h = new History({ path: `${t.dataDir}/nested/dir/history.db` });
    const n = 20_005;
    for (let i = 0; i < n; i++) {
      h.recordTelemetry(
        buildTelemetry({
          tsMs: now - (n - i) * 1000,
          deviceId: 1001,
          seq: i,
          values: VALUES,
        }),
      );
    }
    h.close();
    const s = await t.start();
    try {
      const week = await fetch(`${s.base}/api/history?minutes=10080`);
      const rows = await week.json();
      assert.equal(rows.length, 20_000);
      assert.equal(rows[0].seq, 5);
      assert.equal(week.headers.get("x-history-truncated"), "true");
      assert.equal(week.headers.get("x-history-from"), rows[0].ts);
      // A window that fits: complete, and says so.
      const short = await fetch(`${s.base}/api/history?minutes=10`);
      const last10 = (await short.json()).length;
      assert.ok(last10 > 590 && last10 < 600, `${last10} rows`);
      assert.equal(short.headers.get("x-history-truncated"), "false");
      assert.equal(short.headers.get("x-history-from"), null);
    } finally {
      await s.hmi.close();
    }
  } finally {
    await t.close();
  }
});
