/**
 * Security against a real Mosquitto with authentication on, using the ACL
 * file shipped in mosquitto/acl: a wrong password is one clear log line and
 * retries with backoff (the poller keeps polling), the secret is never
 * logged, a client outside its ACL gets nothing, and TLS (mqtts:// and
 * wss://) round trips with a CA generated at test time.
 */
import assert from "node:assert/strict";
import { type Poller, startPoller } from "../poll.ts";
import { Publisher } from "../publisher.ts";
import { loadMqttSecrets } from "../mqtt_secrets.ts";
import { parseConfig } from "../cli.ts";
import { POLL_OPTIONS } from "../settings.ts";
import { Recorder } from "./_mqtt.ts";
import {
  type Mosquitto,
  secureMosquitto as secureMosquittoFor,
} from "./_mosquitto.ts";
import { FaultyDevice } from "./_faulty_device.ts";
import { makeCerts } from "./_certs.ts";
import { freePort, LineLog, MOSQUITTO, needs } from "./_support.ts";

const USERS = {
  poller: "poller-pw-6f1c",
  hmi: "hmi-pw-93ab",
  intruder: "intruder-pw-11d0",
};

/** Mosquitto with the users above and the shipped ACL (no WebSocket). */
function secureMosquitto(extra: string[] = []) {
  return secureMosquittoFor(USERS, {
    withWebSocket: false,
    extraConfig: extra,
  });
}

async function cleanup(s: { m: Mosquitto; dir: string }) {
  await s.m.stop();
  await Deno.remove(s.dir, { recursive: true }).catch(() => {});
}

const ignore = needs("mosquitto", MOSQUITTO);

Deno.test({
  name:
    "wrong password: one clear log line, retries with backoff, poller keeps polling, secret never logged",
  ignore,
  async fn() {
    const s = await secureMosquitto();
    const port = await freePort();
    const device = await FaultyDevice.start(port);
    const log = new LineLog();
    let poller: Poller | null = null;
    const wrong = "definitely-wrong-pw-42";
    try {
      poller = await startPoller(
        parseConfig(POLL_OPTIONS, [], {
          MODBUS_PORT: String(port),
          MQTT_URL: s.url,
          MQTT_USERNAME: "poller",
          MQTT_PASSWORD: wrong,
          POLL_INTERVAL_MS: "100",
        }),
        { log: (l) => log.push(l), random: () => 0.5 },
      );
      await log.waitFor(/rejected the credentials/);
      // Backoff: 1 s, then 2 s, then 4 s ... (random 0.5 = no jitter).
      await log.waitFor(/reconnect failed; next try in 2000 ms/, 8000);
      const rejected = log.lines.filter((l) =>
        /rejected the credentials/.test(l)
      );
      assert.equal(rejected.length, 1, log.lines.join("\n"));
      assert.match(
        rejected[0],
        /^mqtt: broker rejected the credentials of user "poller" \(.+\); retrying with backoff$/,
      );
      assert.ok(log.lines.every((l) => !l.includes(wrong)), "secret logged");
      // Polling goes on; everything is buffered for later.
      assert.ok(poller.outcomes.filter((o) => o.ok).length >= 5);
      assert.ok(poller.publisher.outbox.length >= 5);
      assert.equal(poller.publisher.connected, false);
    } finally {
      await poller?.stop();
      await device.close();
      await cleanup(s);
    }
  },
});

Deno.test({
  name:
    "ACL (mosquitto/acl): poller publishes, HMI reads and commands only, a user outside the ACL gets nothing",
  ignore,
  async fn() {
    const s = await secureMosquitto();
    const port = await freePort();
    const device = await FaultyDevice.start(port);
    const as = (user: keyof typeof USERS, filter: string) =>
      Recorder.connect(s.url, filter, {
        username: user,
        password: USERS[user],
        reconnectPeriod: 0,
      });
    const hmi = await as("hmi", "demo/#");
    const intruder = await as("intruder", "#");
    const pollerCmds = await as("poller", "demo/cmd/#");
    let poller: Poller | null = null;
    try {
      poller = await startPoller(
        parseConfig(POLL_OPTIONS, [], {
          MODBUS_PORT: String(port),
          MQTT_URL: s.url,
          MQTT_USERNAME: "poller",
          MQTT_PASSWORD_FILE: "",
          MQTT_PASSWORD: USERS.poller,
          POLL_INTERVAL_MS: "100",
        }),
        { log: () => {} },
      );
      await hmi.waitForCount("telemetry", "demo/telemetry", 3);
      await hmi.waitFor("status", (m) => m.topic === "demo/status");

      // The HMI may not publish telemetry; it may publish commands.
      await hmi.client.publishAsync(
        "demo/telemetry",
        JSON.stringify({ forged: true }),
        { qos: 1 },
      );
      await hmi.client.publishAsync(
        "demo/cmd/setpoint",
        JSON.stringify({ marker: "hmi" }),
        { qos: 1 },
      );
      await pollerCmds.waitFor("hmi command", (m) => m.json.marker === "hmi");
      // The intruder may publish nothing (commands included).
      await intruder.client.publishAsync(
        "demo/cmd/setpoint",
        JSON.stringify({ marker: "intruder" }),
        { qos: 1 },
      );
      // The poller account may not issue commands either.
      await pollerCmds.client.publishAsync(
        "demo/cmd/setpoint",
        JSON.stringify({ marker: "poller-forged" }),
        { qos: 1 },
      );
      await hmi.client.publishAsync(
        "demo/cmd/setpoint",
        JSON.stringify({ marker: "hmi-2" }),
        { qos: 1 },
      );
      await pollerCmds.waitFor("2nd command", (m) => m.json.marker === "hmi-2");
      await hmi.waitForCount("more telemetry", "demo/telemetry", 6);

      assert.equal(
        pollerCmds.messages.filter((m) => m.json.marker === "intruder").length,
        0,
        "intruder command delivered",
      );
      assert.ok(
        hmi.messages.every((m) => m.json.forged !== true),
        "forged telemetry delivered",
      );
      assert.deepEqual(intruder.messages, [], "intruder received something");
      assert.equal(
        hmi.messages.filter((m) => m.json.marker === "poller-forged").length,
        0,
        "the poller account published a command",
      );
      // The poller's answers to the malformed commands reached the HMI.
      assert.ok(
        hmi.messages.some((m) => m.topic === "demo/cmd/setpoint/result"),
        "command results are allowed",
      );
    } finally {
      await poller?.stop();
      await hmi.close();
      await intruder.close();
      await pollerCmds.close();
      await device.close();
      await cleanup(s);
    }
  },
});

Deno.test({
  name:
    "TLS: mqtts:// and wss:// with a CA file generated at test time; untrusted CA refused",
  ignore: ignore || needs("openssl"),
  async fn() {
    const certs = await Deno.makeTempDir({ prefix: "scada-tls-" });
    await Deno.chmod(certs, 0o755);
    await makeCerts(certs);
    const tlsPort = await freePort();
    const wssPort = await freePort();
    const tls = [
      `cafile ${certs}/ca.crt`,
      `certfile ${certs}/server.crt`,
      `keyfile ${certs}/server.key`,
    ];
    const s = await secureMosquitto([
      `listener ${tlsPort} 127.0.0.1`,
      ...tls,
      `listener ${wssPort} 127.0.0.1`,
      "protocol websockets",
      ...tls,
    ]);
    const hmi = await Recorder.connect(s.url, "demo/#", {
      username: "hmi",
      password: USERS.hmi,
    });
    const pubs: Publisher[] = [];
    try {
      // The secret and the CA both come from files.
      await Deno.writeTextFile(`${certs}/pw`, `${USERS.poller}\n`);
      const secrets = loadMqttSecrets({
        passwordFile: `${certs}/pw`,
        caFile: `${certs}/ca.crt`,
      });
      for (
        const url of [
          `mqtts://127.0.0.1:${tlsPort}`,
          `wss://127.0.0.1:${wssPort}`,
        ]
      ) {
        const logs: string[] = [];
        const pub = new Publisher({
          url,
          username: "poller",
          ...secrets,
          clientId: `tls-${url.split(":")[0]}`,
          statusTopic: "demo/status",
          maxBufferedTelemetry: 10,
          reconnect: { baseMs: 200, maxMs: 1000, jitter: 0 },
          log: (l) => logs.push(l),
        });
        pubs.push(pub);
        pub.start();
        pub.send("telemetry", "demo/telemetry", { via: url });
        await hmi.waitFor(url, (m) => m.json.via === url);
        assert.ok(logs.some((l) => l.startsWith(`mqtt: connected to ${url}`)));
        assert.ok(
          logs.every((l) => !l.includes(USERS.poller)),
          "secret logged",
        );
      }
      // Without the CA the server certificate is not trusted.
      const logs = new LineLog();
      const untrusted = new Publisher({
        url: `mqtts://127.0.0.1:${tlsPort}`,
        username: "poller",
        password: USERS.poller,
        clientId: "tls-untrusted",
        statusTopic: "demo/status",
        maxBufferedTelemetry: 10,
        reconnect: { baseMs: 200, maxMs: 1000, jitter: 0 },
        log: (l) => logs.push(l),
      });
      pubs.push(untrusted);
      untrusted.start();
      const err = await logs.waitFor(/mqtt: error: /);
      assert.match(err, /certificate|self.signed|issuer/i);
      assert.equal(untrusted.connected, false);
    } finally {
      for (const p of pubs) await p.stop();
      await hmi.close();
      await cleanup(s);
      await Deno.remove(certs, { recursive: true });
    }
  },
});
