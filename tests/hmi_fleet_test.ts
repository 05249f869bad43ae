/**
 * Server side of the fleet views: /fleet and /device/{name} rendered over
 * real HTTP (island markers, props, links, 404 for a name that is not a
 * device name), the recorder storing fleet devices' telemetry and alarms by
 * name, `device=` on /api/history and /api/alarms, and the in-place schema
 * migration of an existing history database.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { parseConfig } from "../cli.ts";
import { HMI_OPTIONS } from "../settings.ts";
import { startHmi } from "../hmi.ts";
import { startBroker } from "../broker.ts";
import { History } from "../history.ts";
import { buildTelemetry } from "../contract.ts";
import { Recorder } from "./_mqtt.ts";
import { alarmEvent, T0, VALUES } from "./_fixtures.ts";
import { assertPortFree, freePort, waitFor } from "./_support.ts";

async function withHmi(
  env: Record<string, string>,
  fn: (base: string) => Promise<void>,
): Promise<void> {
  const port = await freePort();
  const dataDir = await Deno.makeTempDir({ prefix: "hmi-fleet-" });
  const hmi = await startHmi(
    parseConfig(HMI_OPTIONS, [], {
      HMI_HOST: "127.0.0.1",
      HMI_PORT: String(port),
      DATA_DIR: dataDir,
      ...env,
    }),
  );
  try {
    await fn(`http://127.0.0.1:${port}`);
  } finally {
    await hmi.close();
    await Deno.remove(dataDir, { recursive: true });
  }
  await assertPortFree(port);
}

/** The islands of a page: name and props from the serialized state. */
function islandsOf(
  html: string,
): { name: string; props: Record<string, unknown> }[] {
  const m =
    /<script id="__FRSH_STATE" type="application\/json">(.*?)<\/script>/s
      .exec(html);
  assert.ok(m, "island state script");
  return JSON.parse(m[1]);
}

Deno.test("GET /fleet renders the overview island with its props and the nav", async () => {
  await withHmi({
    MQTT_WS_URL: "ws://127.0.0.1:9001",
    TOPIC_PREFIX: "site1",
    POLL_INTERVAL_MS: "500",
  }, async (base) => {
    const res = await fetch(`${base}/fleet`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/html/);
    assert.match(res.headers.get("content-security-policy") ?? "", /ws:/);
    const html = await res.text();
    assert.deepEqual(islandsOf(html), [{
      id: 0,
      name: "FleetOverview",
      props: {
        mqttWsUrl: "ws://127.0.0.1:9001",
        topicPrefix: "site1",
        intervalMs: 500,
      },
    }]);
    assert.match(html, /data-frsh-island="0"/);
    assert.match(html, /id="fleet-table"/);
    assert.match(html, /Waiting for devices on site1\/\+\/telemetry/);
    assert.match(html, /<a href="\/">Device<\/a>/);
    assert.match(html, /<a href="\/fleet">Fleet<\/a>/);
    // Only the fleet island's chunk is preloaded, not LiveHmi's.
    assert.match(html, /rel="modulepreload" href="\/build\/FleetOverview-/);
    assert.doesNotMatch(html, /LiveHmi-/);
    // No inline style attribute: the CSP allows only the stylesheet.
    assert.doesNotMatch(html, /style="/);

    // The single-device page links to the fleet as well.
    const home = await (await fetch(`${base}/`)).text();
    assert.match(home, /<a href="\/fleet">Fleet<\/a>/);
  });
});

Deno.test("GET /device/inv-1 renders LiveHmi under the device's topics; bad names 404", async () => {
  await withHmi({
    MQTT_WS_URL: "ws://127.0.0.1:9001",
    TOPIC_PREFIX: "site1",
  }, async (base) => {
    const res = await fetch(`${base}/device/inv-1`);
    assert.equal(res.status, 200);
    const html = await res.text();
    const [island] = islandsOf(html);
    assert.equal(island.name, "LiveHmi");
    assert.equal(island.props.topicPrefix, "site1/inv-1");
    assert.equal(island.props.device, "inv-1");
    assert.equal(island.props.mqttWsUrl, "ws://127.0.0.1:9001");
    assert.match(html, /<span id="device-name">inv-1<\/span>/);
    assert.match(html, /site1\/inv-1\/telemetry/);

    for (
      const bad of [
        "_pollers",
        "telemetry",
        "a%2Fb",
        "a+b",
        "%23",
        "a%20b",
        "x".repeat(65),
        "%3Cscript%3E",
      ]
    ) {
      const r = await fetch(`${base}/device/${bad}`);
      assert.equal(r.status, 404, bad);
      const body = await r.text();
      assert.match(body, /Not found/, bad);
      assert.doesNotMatch(body, /__FRSH_STATE/, `${bad}: no island`);
      assert.doesNotMatch(body, /<script>/);
    }
    // Deeper paths are not device pages either.
    const deep = await fetch(`${base}/device/a/b`);
    assert.equal(deep.status, 404);
    await deep.body?.cancel();
  });
});

Deno.test("history: fleet devices recorded by name; device= on the API; 400 on a bad name", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "hmi-fleet-api-" });
  const tcpPort = await freePort();
  const broker = await startBroker({
    host: "127.0.0.1",
    tcpPort,
    log: () => {},
  });
  const mqttUrl = `mqtt://127.0.0.1:${tcpPort}`;
  const pub = await Recorder.connect(mqttUrl, "none/#");
  const port = await freePort();
  const hmi = await startHmi(
    parseConfig(HMI_OPTIONS, [], {
      HMI_HOST: "127.0.0.1",
      HMI_PORT: String(port),
      MQTT_URL: mqttUrl,
      TOPIC_PREFIX: "ft",
      DATA_DIR: dataDir,
    }),
  );
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor("recorder subscribed", async () => {
      const h = await (await fetch(`${base}/api/health`)).json();
      return h.history.recording === true;
    });
    const now = Date.now();
    const tel = (seq: number, temp: number) =>
      JSON.stringify(
        buildTelemetry({
          tsMs: now - 1000 + seq,
          deviceId: 1001,
          seq,
          values: { ...VALUES, temp_c: temp },
        }),
      );
    const alarm = (value: number) => JSON.stringify(alarmEvent(now, { value }));
    const send = (topic: string, body: string) =>
      pub.client.publishAsync(topic, body, { qos: 1 });
    await send("ft/telemetry", tel(1, 10));
    await send("ft/inv-1/telemetry", tel(1, 11));
    await send("ft/inv-1/telemetry", tel(2, 12));
    await send("ft/inv-2/telemetry", tel(1, 20));
    await send("ft/_pollers/telemetry", tel(1, 99)); // not a device: dropped
    await send("ft/alarms", alarm(61));
    await send("ft/inv-1/alarms", alarm(62));
    await waitFor("all recorded", async () => {
      const h = await (await fetch(`${base}/api/health`)).json();
      return h.history.telemetry === 4 && h.history.alarms === 2;
    });
    const temps = async (q: string) =>
      (await (await fetch(`${base}/api/history${q}`)).json()).map((
        t: { values: { temp_c: number } },
      ) => t.values.temp_c);
    assert.deepEqual(await temps(""), [10], "single device: its own rows only");
    assert.deepEqual(await temps("?device=inv-1"), [11, 12]);
    assert.deepEqual(await temps("?minutes=5&device=inv-2"), [20]);
    assert.deepEqual(await temps("?device=inv-3"), []);
    const values = async (q: string) =>
      (await (await fetch(`${base}/api/alarms${q}`)).json()).map((
        a: { value: number },
      ) => a.value);
    assert.deepEqual(await values(""), [61]);
    assert.deepEqual(await values("?device=inv-1&limit=5"), [62]);

    for (const bad of ["", "a%2Fb", "_pollers", "%2B", "x".repeat(65)]) {
      for (const api of ["history", "alarms"]) {
        const r = await fetch(`${base}/api/${api}?device=${bad}`);
        assert.equal(r.status, 400, `${api} device=${bad}`);
        assert.match((await r.json()).error, /^device must be/);
      }
    }
  } finally {
    await hmi.close();
    await pub.close();
    await broker.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("History migrates a schema-1 database in place: old rows keep device NULL", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hmi-fleet-mig-" });
  const path = `${dir}/history.db`;
  try {
    // The schema before fleet devices, with one row in each table.
    const old = new DatabaseSync(path);
    old.exec(`
      CREATE TABLE telemetry (ts_ms INTEGER NOT NULL, device_id INTEGER,
        seq INTEGER NOT NULL, json TEXT NOT NULL);
      CREATE INDEX telemetry_ts ON telemetry (ts_ms);
      CREATE TABLE alarms (id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms INTEGER NOT NULL, json TEXT NOT NULL);
      CREATE INDEX alarms_ts ON alarms (ts_ms);
    `);
    const t = buildTelemetry({
      tsMs: T0,
      deviceId: 1001,
      seq: 1,
      values: VALUES,
    });
    old.prepare("INSERT INTO telemetry VALUES (?, ?, ?, ?)").run(
      T0,
      1001,
      1,
      JSON.stringify(t),
    );
    old.prepare("INSERT INTO alarms (ts_ms, json) VALUES (?, ?)").run(
      T0,
      JSON.stringify(alarmEvent(T0)),
    );
    old.close();

    for (let open = 0; open < 2; open++) { // the second open is a no-op
      const h = new History({ path });
      try {
        if (open === 0) {
          h.recordTelemetry({ ...t, seq: 2 }, "inv-1");
        }
        assert.deepEqual(h.telemetrySince(T0 - 1).map((x) => x.seq), [1]);
        assert.deepEqual(
          h.telemetrySince(T0 - 1, 100, "inv-1").map((x) => x.seq),
          [2],
        );
        assert.equal(h.recentAlarms(10).length, 1);
        assert.equal(h.recentAlarms(10, "inv-1").length, 0);
      } finally {
        h.close();
      }
    }
    // The per-device query uses the (device, ts_ms) index.
    const db = new DatabaseSync(path);
    const plan = db.prepare(
      "EXPLAIN QUERY PLAN SELECT json FROM telemetry WHERE device IS ? AND ts_ms >= ?",
    ).all("inv-1", 0).map((r) => String(r.detail)).join("\n");
    db.close();
    assert.match(plan, /telemetry_device_ts/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
