/**
 * The HMI in real Chromium (Debian's /usr/bin/chromium, headless, driven by
 * npm:puppeteer-core) against the whole pipeline on loopback: simulator,
 * embedded broker (TCP + WebSocket), poller and HMI, all in-process on free
 * ports.
 */
import assert from "node:assert/strict";
import type { Page } from "puppeteer-core";
import { collectPageErrors, launchChromium, textOf } from "./_browser.ts";
import { startSimulator } from "../sim.ts";
import { startBroker } from "../broker.ts";
import { startPoller } from "../poll.ts";
import { startHmi } from "../hmi.ts";
import { parseConfig } from "../cli.ts";
import { HMI_OPTIONS, POLL_OPTIONS } from "../settings.ts";
import { parseTelemetry } from "../contract.ts";
import { writeSetpoint } from "./_modbus.ts";
import { Recorder } from "./_mqtt.ts";
import { freePort, needs, waitFor } from "./_support.ts";

const text = textOf;

Deno.test({
  name:
    "HMI in Chromium: live data, temp_high raised, poller offline, no errors",
  ignore: needs("chromium"),
  async fn() {
    const logs: string[] = [];
    const log = (l: string) => logs.push(l);
    const cleanup: (() => Promise<unknown>)[] = [];
    let rec: Recorder | null = null;
    let page: Page | null = null;
    const userDataDir = await Deno.makeTempDir({ prefix: "hmi-chromium-" });
    cleanup.push(() => Deno.remove(userDataDir, { recursive: true }));
    try {
      const sim = await startSimulator({
        host: "127.0.0.1",
        port: await freePort(),
        tauS: 0.5,
        noise: 0,
        stepMs: 50,
        log,
      });
      cleanup.push(() => sim.close());
      const modbusPort = sim.ports[0];
      const tcpPort = await freePort();
      const wsPort = await freePort();
      const broker = await startBroker({
        host: "127.0.0.1",
        tcpPort,
        wsPort,
        log,
      });
      cleanup.push(() => broker.close());
      const mqttUrl = `mqtt://127.0.0.1:${tcpPort}`;
      const mqttWsUrl = `ws://127.0.0.1:${wsPort}`;
      const prefix = "hmitest";
      const env = {
        MODBUS_HOST: "127.0.0.1",
        MODBUS_PORT: String(modbusPort),
        MQTT_URL: mqttUrl,
        MQTT_WS_URL: mqttWsUrl,
        TOPIC_PREFIX: prefix,
        POLL_INTERVAL_MS: "250",
        ALARM_RAISE_DELAY_MS: "500",
        ALARM_CLEAR_DELAY_MS: "500",
        HMI_HOST: "127.0.0.1",
        HMI_PORT: String(await freePort()),
      };
      const r = rec = await Recorder.connect(mqttUrl, `${prefix}/#`);
      cleanup.push(() => r.close());
      const poller = await startPoller(parseConfig(POLL_OPTIONS, [], env), {
        log,
      });
      let pollerStopped = false;
      cleanup.push(() => pollerStopped ? Promise.resolve() : poller.stop());
      const hmi = await startHmi(parseConfig(HMI_OPTIONS, [], env), log);
      cleanup.push(() => hmi.close());

      const browser = await launchChromium(userDataDir);
      cleanup.push(() => browser.close());
      const p = page = await browser.newPage();
      const errors = collectPageErrors(p);
      await p.setViewport({ width: 1280, height: 760 });

      // Load the page; measure load -> first live value.
      const t0 = performance.now();
      const res = await p.goto(`http://127.0.0.1:${hmi.port}/`, {
        waitUntil: "domcontentloaded",
      });
      assert.equal(res?.status(), 200);
      await p.waitForFunction(
        () =>
          document.getElementById("broker-state")?.textContent ===
            "Broker: connected",
        { timeout: 10_000, polling: 20 },
      );
      const connectedMs = performance.now() - t0;
      await p.waitForFunction(
        () =>
          /^-?\d/.test(document.getElementById("v-temp_c")?.textContent ?? ""),
        { timeout: 10_000, polling: 20 },
      );
      const liveMs = performance.now() - t0;
      console.log(
        `page load -> broker connected ${
          Math.round(connectedMs)
        } ms, -> live data ${Math.round(liveMs)} ms (poll interval 250 ms)`,
      );
      assert.ok(liveMs < 2000, `live data after ${Math.round(liveMs)} ms`);
      assert.equal(await text(p, "#broker-state"), "Broker: connected");
      assert.equal(await text(p, "#poller-state"), "Poller: online");

      // At least 3 chart points, and the shown temperature is the last telemetry.
      await p.waitForFunction(
        () => Number(document.getElementById("trend")?.dataset.points) >= 3,
        { timeout: 10_000 },
      );
      await waitFor(
        "shown temperature == last MQTT telemetry",
        async () => {
          const last = r.on(`${prefix}/telemetry`).at(-1);
          if (!last) return false;
          const t = parseTelemetry(JSON.stringify(last.json));
          if (!t.ok || t.value.quality !== "good") return false;
          const shown = await text(p, "#v-temp_c");
          const after = r.on(`${prefix}/telemetry`).at(-1);
          return after === last && shown === t.value.values.temp_c.toFixed(1);
        },
        10_000,
        10,
      );
      assert.match(await text(p, "#quality"), /^Quality: good/);

      // Drive the setpoint to 4000 W over Modbus: temp_high is raised.
      await writeSetpoint(modbusPort, 4000);
      await r.waitFor(
        "temp_high raised",
        (m) => m.topic === `${prefix}/alarms` && m.json.state === "raised",
        20_000,
      );
      await p.waitForSelector(
        '#alarm-list tr[data-alarm="temp_high"][data-state="raised"]',
        { timeout: 5_000 },
      );
      const row = await p.$eval(
        '#alarm-list tr[data-alarm="temp_high"]',
        (tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent),
      );
      assert.equal(row[0], "temp_high");
      assert.equal(row[1], "RAISED");
      assert.match(row[2] ?? "", /^6\d\.\d C$/);
      assert.match(row[3] ?? "", /^\d\d:\d\d:\d\d$/);
      assert.equal(row[4], "\u2014");
      assert.match(await text(p, "#alarm-count"), /1 active alarm/);
      // (docs/screenshot.png is saved by browser_operator_test.ts, with the
      // operator controls in use.)

      // Phone width: nothing overflows horizontally except the alarm table's
      // own scroller.
      await p.setViewport({ width: 390, height: 844 });
      // (The charts resize through a ResizeObserver: give them a moment.)
      const overflow = await p.waitForFunction(
        () => document.documentElement.scrollWidth <= globalThis.innerWidth,
        { timeout: 2_000 },
      ).then(
        () => 0,
        () =>
          p.evaluate(() =>
            document.documentElement.scrollWidth - globalThis.innerWidth
          ),
      );
      assert.ok(
        overflow <= 0,
        `page overflows a phone screen by ${overflow} px`,
      );
      await p.setViewport({ width: 1280, height: 760 });

      // Stop the poller: its retained status turns offline, values go stale.
      pollerStopped = true;
      await poller.stop();
      await p.waitForFunction(
        () =>
          document.getElementById("poller-state")?.textContent ===
            "Poller: offline",
        { timeout: 5_000 },
      );
      await p.waitForFunction(
        () => document.getElementById("v-temp_c")?.textContent === "stale",
        { timeout: 5_000 },
      );
      assert.match(await text(p, "#quality"), /^STALE/);
      assert.equal(await text(p, "#broker-state"), "Broker: connected");

      // Hostile input: malformed payloads are counted and ignored; text in a
      // valid bad-quality message is shown as text, never as markup.
      await r.client.publishAsync(`${prefix}/telemetry`, "{not json", {
        qos: 1,
      });
      await r.client.publishAsync(
        `${prefix}/alarms`,
        JSON.stringify({ ts: "yesterday", alarm: "x", state: "raised" }),
        { qos: 1 },
      );
      await p.waitForFunction(
        () =>
          document.getElementById("rejected")?.textContent ===
            "2 invalid messages ignored",
        { timeout: 5_000 },
      );
      const hostile = "<img src=x onerror=alert(1)>";
      await r.client.publishAsync(
        `${prefix}/telemetry`,
        JSON.stringify({
          ts: new Date().toISOString(),
          device_id: 1001,
          seq: 999,
          quality: "bad",
          values: null,
          error: hostile,
        }),
        { qos: 1 },
      );
      await p.waitForFunction(
        () => document.getElementById("v-temp_c")?.textContent === "bad",
        { timeout: 5_000 },
      );
      assert.ok((await text(p, "#quality")).endsWith(hostile));
      assert.equal(await p.$$eval(".hmi img", (els) => els.length), 0);

      assert.deepEqual(errors, []);
    } catch (e) {
      console.error(logs.slice(-30).join("\n"));
      const st = rec?.messages.slice(-5).map((m) =>
        `${m.topic} ${JSON.stringify(m.json)}`
      );
      console.error(st?.join("\n"));
      console.error(
        await page?.$eval(".hmi", (e) => e.textContent).catch(() => ""),
      );
      throw e;
    } finally {
      for (const c of cleanup.reverse()) {
        await c().catch((e) => console.error(`cleanup: ${e}`));
      }
    }
  },
});
