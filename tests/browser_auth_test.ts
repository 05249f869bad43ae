/**
 * The HMI with security on, in real Chromium: Mosquitto refuses anonymous
 * clients and applies the shipped ACL (mosquitto/acl); the poller logs in as
 * `poller`; the HMI page sits behind HTTP Basic auth (HMI_AUTH_FILE) and
 * hands the browser its own least-privilege account (`hmi`) from
 * /api/mqtt-credentials; the island logs in with it, shows live data and
 * sends a setpoint the ACL allows. Without the operator's login the page and
 * the credentials are refused.
 */
import assert from "node:assert/strict";
import { collectPageErrors, launchChromium } from "./_browser.ts";
import { startSimulator } from "../sim.ts";
import { startPoller } from "../poll.ts";
import { startHmi } from "../hmi.ts";
import { parseConfig } from "../cli.ts";
import { HMI_OPTIONS, POLL_OPTIONS } from "../settings.ts";
import { secureMosquitto } from "./_mosquitto.ts";
import { freePort, MOSQUITTO, needs } from "./_support.ts";

Deno.test({
  name:
    "HMI in Chromium with authentication: operator login, browser MQTT account from the server, live data and a setpoint within the ACL",
  ignore: needs("chromium") || needs("mosquitto", MOSQUITTO),
  async fn() {
    const cleanup: (() => Promise<unknown>)[] = [];
    const dir = await Deno.makeTempDir({ prefix: "hmi-auth-" });
    cleanup.push(() => Deno.remove(dir, { recursive: true }));
    try {
      const { m: mosq, dir: mosqDir } = await secureMosquitto({
        poller: "p-secret",
        hmi: "h-secret",
      });
      cleanup.push(() => Deno.remove(mosqDir, { recursive: true }));
      await Deno.writeTextFile(`${dir}/hmi.pw`, "h-secret\n");
      await Deno.writeTextFile(`${dir}/poller.pw`, "p-secret\n");
      await Deno.writeTextFile(`${dir}/operators`, "operator:op-secret\n");
      cleanup.push(() => mosq.stop());
      const sim = await startSimulator({
        host: "127.0.0.1",
        port: await freePort(),
        noise: 0,
        log: () => {},
      });
      cleanup.push(() => sim.close());
      const common = {
        MODBUS_PORT: String(sim.ports[0]),
        MQTT_URL: `mqtt://127.0.0.1:${mosq.tcpPort}`,
        MQTT_WS_URL: `ws://127.0.0.1:${mosq.wsPort}`,
        POLL_INTERVAL_MS: "250",
      };
      const poller = await startPoller(
        parseConfig(POLL_OPTIONS, [], {
          ...common,
          MQTT_USERNAME: "poller",
          MQTT_PASSWORD_FILE: `${dir}/poller.pw`,
        }),
        { log: () => {} },
      );
      cleanup.push(() => poller.stop());
      const hmiLogs: string[] = [];
      const hmi = await startHmi(
        parseConfig(HMI_OPTIONS, [], {
          ...common,
          HMI_HOST: "127.0.0.1",
          HMI_PORT: String(await freePort()),
          DATA_DIR: `${dir}/data`,
          // The server's history recorder reads as hmi too (read-only ACL).
          MQTT_USERNAME: "hmi",
          MQTT_PASSWORD_FILE: `${dir}/hmi.pw`,
          MQTT_WS_USERNAME: "hmi",
          MQTT_WS_PASSWORD_FILE: `${dir}/hmi.pw`,
          HMI_AUTH_FILE: `${dir}/operators`,
        }),
        (l) => hmiLogs.push(l),
      );
      cleanup.push(() => hmi.close());
      const base = `http://127.0.0.1:${hmi.port}`;

      // Without the operator's login: neither the page nor the account.
      for (const path of ["/", "/api/mqtt-credentials"]) {
        const r = await fetch(base + path);
        await r.body?.cancel();
        assert.equal(r.status, 401, path);
      }

      const browser = await launchChromium(`${dir}/chromium`);
      cleanup.push(() => browser.close());
      const page = await browser.newPage();
      const errors = collectPageErrors(page);
      await page.authenticate({ username: "operator", password: "op-secret" });
      const res = await page.goto(`${base}/`, {
        waitUntil: "domcontentloaded",
      });
      assert.equal(res?.status(), 200);
      // The HTML never carries the MQTT password.
      assert.ok(!(await page.content()).includes("h-secret"));
      await page.waitForFunction(
        () =>
          document.getElementById("broker-state")?.textContent ===
            "Broker: connected",
        { timeout: 10_000, polling: 50 },
      );
      await page.waitForFunction(
        () =>
          /^-?\d/.test(document.getElementById("v-temp_c")?.textContent ?? ""),
        { timeout: 10_000, polling: 50 },
      );
      // A setpoint from the page: the hmi account may publish commands.
      await page.$eval("#setpoint-input", (el) => {
        (el as HTMLInputElement).value = "";
      });
      await page.type("#setpoint-input", "3300");
      await page.click("#setpoint-apply");
      await page.waitForFunction(
        () =>
          document.getElementById("setpoint-result")?.dataset.state ===
            "accepted",
        { timeout: 10_000, polling: 50 },
      );
      // Mosquitto saw the browser log in as hmi (its connection log names
      // the user).
      assert.ok(
        mosq.log.lines.some((l) => /u'hmi'/.test(l)),
        mosq.log.lines.slice(-10).join("\n"),
      );
      assert.deepEqual(errors, []);
      // The password appears in no log line of the HMI server.
      assert.ok(!hmiLogs.some((l) => l.includes("h-secret")));
    } finally {
      for (const c of cleanup.reverse()) await c().catch(() => {});
    }
  },
});
