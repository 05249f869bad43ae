/**
 * The HMI server against a real Mosquitto with authentication and the
 * shipped ACL (mosquitto/acl): the history recorder's wrong password is one
 * clear line and retries with backoff; the browser's own least-privilege
 * account (MQTT_WS_USERNAME) is served only by /api/mqtt-credentials, behind
 * HTTP Basic auth (HMI_AUTH_FILE), and logs the browser in over WebSocket.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { parseConfig } from "../cli.ts";
import { HMI_OPTIONS } from "../settings.ts";
import { startHmi } from "../hmi.ts";
import { History } from "../history.ts";
import { startRecorder } from "../hmi_recorder.ts";
import { mqttCredentials } from "../hmi_credentials.ts";
import { secureMosquitto as secureMosquittoFor } from "./_mosquitto.ts";
import {
  assertPortFree,
  freePort,
  LineLog,
  MOSQUITTO,
  needs,
  waitFor,
} from "./_support.ts";

const USERS = { poller: "poller-pw-5d2e", hmi: "hmi-pw-7c41" };

/** Mosquitto with the users above, the shipped ACL, TCP + WebSocket. */
const secureMosquitto = () => secureMosquittoFor(USERS);

const ignore = needs("mosquitto", MOSQUITTO);

Deno.test({
  name:
    "recorder with a wrong password: one clear line, keeps retrying with backoff, secret never logged",
  ignore,
  async fn() {
    const s = await secureMosquitto();
    const history = new History({ path: ":memory:" });
    const log = new LineLog();
    const wrong = "wrong-hmi-pw-0042";
    const rec = startRecorder({
      url: `mqtt://127.0.0.1:${s.m.tcpPort}`,
      username: "hmi",
      password: wrong,
      topicPrefix: "demo",
      history,
      log: (l) => log.push(l),
      reconnect: { baseMs: 50, maxMs: 200, jitter: 0 },
    });
    try {
      await log.waitFor(/rejected the credentials/);
      // Retrying: Mosquitto refuses attempt after attempt.
      await waitFor(
        "3 refused attempts",
        () =>
          rec.failures >= 3 &&
          s.m.log.lines.filter((l) => /not authori[sz]ed/i.test(l)).length >=
            3,
        10_000,
      );
      const rejected = log.lines.filter((l) =>
        /rejected the credentials/.test(l)
      );
      assert.equal(rejected.length, 1, log.lines.join("\n"));
      assert.match(
        rejected[0],
        /^hmi: history recorder: broker rejected the credentials of user "hmi" \(.+\); retrying with backoff$/,
      );
      assert.ok(log.lines.every((l) => !l.includes(wrong)), "secret logged");
      assert.equal(rec.recording, false);
    } finally {
      await rec.close();
      history.close();
      await s.m.stop();
      await Deno.remove(s.dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "browser credentials: /api/mqtt-credentials behind Basic auth, never in the page; they log in over WebSocket under the ACL",
  ignore,
  async fn() {
    const s = await secureMosquitto();
    const dataDir = await Deno.makeTempDir({ prefix: "hmi-sec-data-" });
    await Deno.writeTextFile(`${dataDir}/hmi-pw`, `${USERS.hmi}\n`);
    await Deno.writeTextFile(
      `${dataDir}/auth`,
      "# operators\noperator:op-secret-1:with-colon\n",
    );
    const port = await freePort();
    const logs: string[] = [];
    const hmi = await startHmi(
      parseConfig(HMI_OPTIONS, [], {
        HMI_HOST: "127.0.0.1",
        HMI_PORT: String(port),
        DATA_DIR: dataDir,
        MQTT_URL: `mqtt://127.0.0.1:${s.m.tcpPort}`,
        MQTT_USERNAME: "hmi",
        MQTT_PASSWORD_FILE: `${dataDir}/hmi-pw`,
        MQTT_WS_URL: `ws://127.0.0.1:${s.m.wsPort}`,
        MQTT_WS_USERNAME: "hmi",
        MQTT_WS_PASSWORD_FILE: `${dataDir}/hmi-pw`,
        HMI_AUTH_FILE: `${dataDir}/auth`,
      }),
      (l) => logs.push(l),
    );
    const base = `http://127.0.0.1:${port}`;
    const auth = {
      Authorization: `Basic ${btoa("operator:op-secret-1:with-colon")}`,
    };
    const clients: mqtt.MqttClient[] = [];
    try {
      // Without logging in: only the health probe answers.
      for (const path of ["/", "/api/mqtt-credentials", "/styles.css"]) {
        const r = await fetch(`${base}${path}`);
        await r.body?.cancel();
        assert.equal(r.status, 401, path);
      }
      const health = await fetch(`${base}/api/health`);
      assert.equal(health.status, 200);
      const h = await health.json();
      assert.equal(h.auth, "basic");
      assert.ok(!JSON.stringify(h).includes(USERS.hmi));

      // Logged in: the page carries no credential; the endpoint does.
      const page = await (await fetch(`${base}/`, { headers: auth })).text();
      assert.ok(!page.includes(USERS.hmi), "password in the page");
      const fetchAuthed: typeof fetch = (input, init) =>
        fetch(`${base}${input}`, {
          ...init,
          headers: { ...init?.headers, ...auth },
        });
      const creds = await mqttCredentials(fetchAuthed);
      assert.deepEqual(creds, { username: "hmi", password: USERS.hmi });
      assert.deepEqual(
        await mqttCredentials((i, init) => fetch(`${base}${i}`, init)),
        {},
        "401 without Basic auth: connect anonymously",
      );

      // What the islands do with them: log in over WebSocket and read.
      const wsUrl = `ws://127.0.0.1:${s.m.wsPort}`;
      const browser = await mqtt.connectAsync(wsUrl, {
        ...creds,
        reconnectPeriod: 0,
      });
      clients.push(browser);
      await browser.subscribeAsync("demo/#", { qos: 1 });
      // Anonymous (as before this change) is refused by the shipped config.
      const anon = mqtt.connect(wsUrl, { reconnectPeriod: 0 });
      clients.push(anon);
      const err = await new Promise<Error>((r) => anon.once("error", r));
      assert.match(err.message, /not authori[sz]ed/i);

      // The recorder logs in as the hmi user too.
      await waitFor("recording", async () => {
        const j = await (await fetch(`${base}/api/health`)).json();
        return j.history.recording === true;
      });
      assert.ok(logs.every((l) => !l.includes(USERS.hmi)), "secret logged");
      assert.ok(!logs.some((l) => /warning: no HMI_AUTH_FILE/.test(l)));
    } finally {
      for (const c of clients) await c.endAsync(true);
      await hmi.close();
      await s.m.stop();
      await Deno.remove(s.dir, { recursive: true });
      await Deno.remove(dataDir, { recursive: true });
    }
    await assertPortFree(port);
  },
});
