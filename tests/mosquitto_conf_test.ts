/**
 * The shipped Mosquitto configuration (mosquitto/mosquitto.conf + acl), run
 * as shipped except for its ports and file locations: anonymous clients are
 * refused, the poller's account publishes telemetry, the HMI's account reads
 * it over WebSocket (as the browser does) and cannot publish telemetry.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { Recorder } from "./_mqtt.ts";
import { copyShippedAcl, writePasswordFile } from "./_mosquitto.ts";
import {
  assertPortFree,
  collectLines,
  freePort,
  LineLog,
  MOSQUITTO,
  needs,
  waitFor,
} from "./_support.ts";

const CONF = new URL("../mosquitto/mosquitto.conf", import.meta.url).pathname;

Deno.test({
  name:
    "shipped mosquitto.conf: no anonymous access; poller account publishes, HMI account reads over WebSocket and cannot publish telemetry",
  ignore: needs("mosquitto", MOSQUITTO),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "mosq-shipped-" });
    const [tcp, ws] = [await freePort(), await freePort()];
    const shipped = await Deno.readTextFile(CONF);
    // Only ports and paths change; every other line is as shipped.
    const replacements: [string, string][] = [
      ["listener 1883 127.0.0.1", `listener ${tcp} 127.0.0.1`],
      ["listener 9001 127.0.0.1", `listener ${ws} 127.0.0.1`],
      ["password_file mosquitto/passwd", `password_file ${dir}/passwd`],
      ["acl_file mosquitto/acl", `acl_file ${dir}/acl`],
      ["persistence_location data/mosquitto/", `persistence_location ${dir}/`],
    ];
    let conf = shipped;
    for (const [from, to] of replacements) {
      assert.ok(conf.includes(`\n${from}\n`), `shipped conf has "${from}"`);
      conf = conf.replace(`\n${from}\n`, `\n${to}\n`);
    }
    await Deno.writeTextFile(`${dir}/mosquitto.conf`, conf);
    await writePasswordFile(dir, { poller: "poller-pw", hmi: "hmi-pw" });
    await copyShippedAcl(dir);
    // Mosquitto (dropped to its own user) writes its persistence file here.
    await Deno.chmod(dir, 0o777);
    const child = new Deno.Command(MOSQUITTO!, {
      args: ["-c", `${dir}/mosquitto.conf`],
      stdout: "null",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    const log = new LineLog();
    const collecting = collectLines(child.stderr, log);
    const clients: mqtt.MqttClient[] = [];
    let hmi: Recorder | null = null;
    try {
      await waitFor(
        "both listeners",
        () =>
          log.lines.some((l) => l.includes(`listen socket on port ${tcp}`)) &&
          log.lines.some((l) => l.includes(`listen socket on port ${ws}`)),
      );
      // Anonymous: refused.
      await assert.rejects(
        mqtt.connectAsync(`mqtt://127.0.0.1:${tcp}`, {
          reconnectPeriod: 0,
          connectTimeout: 3000,
        }),
        /Not authorized/i,
      );
      hmi = await Recorder.connect(`ws://127.0.0.1:${ws}`, "demo/#", {
        username: "hmi",
        password: "hmi-pw",
      });
      const poller = await mqtt.connectAsync(`mqtt://127.0.0.1:${tcp}`, {
        username: "poller",
        password: "poller-pw",
        reconnectPeriod: 0,
      });
      clients.push(poller);
      // The HMI account's telemetry is dropped by the ACL; the poller's is
      // delivered (QoS 1 in order on one broker: the marker proves the first
      // had its chance).
      await hmi.client.publishAsync(
        "demo/telemetry",
        JSON.stringify({ forged: true }),
        { qos: 1 },
      );
      await poller.publishAsync(
        "demo/telemetry",
        JSON.stringify({ seq: 1 }),
        { qos: 1 },
      );
      await hmi.waitFor("poller telemetry", (m) => m.json.seq === 1);
      assert.ok(!hmi.messages.some((m) => m.json.forged), "forged dropped");
      // The HMI may command; the poller receives it.
      const cmds = await Recorder.connect(
        `mqtt://127.0.0.1:${tcp}`,
        "demo/cmd/setpoint",
        { username: "poller", password: "poller-pw" },
      );
      try {
        await hmi.client.publishAsync(
          "demo/cmd/setpoint",
          JSON.stringify({ id: "x" }),
          { qos: 1 },
        );
        await cmds.waitFor("command", (m) => m.json.id === "x");
      } finally {
        await cmds.close();
      }
    } finally {
      for (const c of clients) await c.endAsync(true);
      await hmi?.close();
      try {
        child.kill("SIGTERM");
      } catch { /* exited already: its log is in the failure */ }
      await child.status;
      await collecting;
      await Deno.remove(dir, { recursive: true });
    }
    await assertPortFree(tcp);
    await assertPortFree(ws);
  },
});
