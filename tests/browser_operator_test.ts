/**
 * Operator controls and history in real Chromium (headless, via
 * npm:puppeteer-core) against the whole pipeline on loopback: simulator,
 * embedded broker, poller and HMI (recording history into a temp DATA_DIR).
 * Applies a setpoint from the page, sees temp_high raised, acknowledges it,
 * exports CSV, reloads and sees history drawn at once. Saves screenshots
 * (desktop and phone width, alarm active, controls visible) under the
 * git-ignored data/screenshots/; with UPDATE_SCREENSHOT=1 also as the
 * README's docs/screenshot.png and docs/screenshot-phone.png.
 */
import assert from "node:assert/strict";
import type { Page } from "puppeteer-core";
import {
  type Cleanup,
  embeddedBrokerWithWs,
  fastSimulator,
  newPage,
  printFailureContext,
  rigEnv,
  runCleanup,
  saveScreenshot,
  startTestHmi,
  textOf,
} from "./_browser.ts";
import { startPoller } from "../poll.ts";
import { parseConfig } from "../cli.ts";
import { POLL_OPTIONS } from "../settings.ts";
import { Recorder } from "./_mqtt.ts";
import { needs, waitFor } from "./_support.ts";

const text = textOf;
const attr = (page: Page, sel: string, name: string) =>
  page.$eval(sel, (el, n) => el.getAttribute(n) ?? "", name);

Deno.test({
  name:
    "HMI operator: setpoint from the page, acknowledge, CSV export, reload draws history",
  ignore: needs("chromium"),
  async fn() {
    const logs: string[] = [];
    const log = (l: string) => logs.push(l);
    const cleanup: Cleanup = [];
    let page: Page | null = null;
    const tmp = await Deno.makeTempDir({ prefix: "hmi-operator-" });
    cleanup.push(() => Deno.remove(tmp, { recursive: true }));
    try {
      const sim = await fastSimulator(cleanup, log);
      const broker = await embeddedBrokerWithWs(cleanup, log);
      const prefix = "optest";
      const env = await rigEnv(cleanup, broker, prefix, {
        MODBUS_HOST: "127.0.0.1",
        MODBUS_PORT: String(sim.ports[0]),
      });
      const r = await Recorder.connect(broker.url, `${prefix}/#`);
      cleanup.push(() => r.close());
      const { base } = await startTestHmi(cleanup, env, log);
      await waitFor(
        "HMI recording history",
        async () => {
          const h = await (await fetch(`${base}/api/health`)).json();
          return h.history.recording;
        },
        10_000,
        20,
      );

      // The poller starts after the HMI records, so history has every message.
      const poller = await startPoller(parseConfig(POLL_OPTIONS, [], env), {
        log,
      });
      cleanup.push(() => poller.stop());
      const { page: p, errors } = await newPage(cleanup);
      page = p;
      const res = await p.goto(`${base}/`, { waitUntil: "domcontentloaded" });
      assert.equal(res?.status(), 200);
      await p.waitForFunction(
        () =>
          document.getElementById("broker-state")?.textContent ===
            "Broker: connected" &&
          document.getElementById("trend")?.dataset.history === "loaded",
        { timeout: 10_000, polling: 20 },
      );
      // The retained alarm state is shown (normal before any alarm).
      await p.waitForSelector(
        '#alarm-state tr[data-alarm="temp_high"][data-state="normal"]',
        { timeout: 5_000 },
      );
      assert.match(await text(p, "#setpoint-form label"), /0\.\.5000 W/);

      // Client-side validation: out of range and fractions never leave the page.
      const cmdTopic = `${prefix}/cmd/setpoint`;
      for (const bad of ["6000", "12.5"]) {
        await p.$eval("#setpoint-input", (el) => {
          (el as HTMLInputElement).value = "";
        });
        await p.type("#setpoint-input", bad);
        await p.click("#setpoint-apply");
        await p.waitForFunction(
          () =>
            document.getElementById("setpoint-result")?.dataset.state ===
              "invalid",
          { timeout: 2_000 },
        );
      }
      assert.match(await text(p, "#setpoint-result"), /0\.\.5000/);
      assert.equal(r.on(cmdTopic).length, 0);

      // Apply 4000 W: pending, then accepted from cmd/setpoint/result.
      await p.$eval("#setpoint-input", (el) => {
        (el as HTMLInputElement).value = "";
      });
      await p.type("#setpoint-input", "4000");
      const sentAt = Date.now();
      await p.click("#setpoint-apply");
      const cmd = await r.waitFor(
        "setpoint command",
        (m) => m.topic === cmdTopic,
        5_000,
      );
      assert.equal(cmd.retain, false);
      assert.equal(cmd.json.value, 4000);
      assert.match(String(cmd.json.id), /^[0-9a-f-]{36}$/);
      assert.ok(Math.abs(Date.parse(String(cmd.json.ts)) - sentAt) < 2000);
      await p.waitForFunction(
        () =>
          document.getElementById("setpoint-result")?.dataset.state ===
            "accepted",
        { timeout: 5_000, polling: 20 },
      );
      assert.equal(
        await text(p, "#setpoint-result"),
        "Setpoint: accepted (4000 W)",
      );
      const answer = r.on(`${prefix}/cmd/setpoint/result`).at(-1)!;
      assert.deepEqual([answer.json.id, answer.json.ok], [cmd.json.id, true]);
      // The device holds it: the value panel shows the new setpoint.
      await p.waitForFunction(
        () => document.getElementById("v-setpoint_w")?.textContent === "4000",
        { timeout: 5_000, polling: 20 },
      );

      // temp_high raised: active-unacknowledged with an Acknowledge button.
      await p.waitForSelector(
        '#alarm-state tr[data-alarm="temp_high"][data-state="active-unacknowledged"] button.ack',
        { timeout: 20_000 },
      );
      await p.waitForSelector(
        '#alarm-list tr[data-alarm="temp_high"][data-state="raised"]',
        { timeout: 5_000 },
      );
      assert.match(await text(p, "#alarm-count"), /1 active alarm/);
      // The pictures for the README: setpoint accepted, Acknowledge offered,
      // the temperature tile red; at desktop and at phone width.
      await p.waitForSelector("#tile-temp_c.alarm", { timeout: 2_000 });
      await saveScreenshot(p, "screenshot", { docs: true });
      await p.setViewport({ width: 390, height: 844 });
      await p.waitForFunction(
        () => document.documentElement.scrollWidth <= globalThis.innerWidth,
        { timeout: 2_000 },
      );
      await saveScreenshot(p, "screenshot-phone", { docs: true });
      await p.setViewport({ width: 1280, height: 900 });
      await p.click('#alarm-state button.ack[data-alarm="temp_high"]');
      const ack = await r.waitFor(
        "ack command",
        (m) => m.topic === `${prefix}/cmd/ack`,
        5_000,
      );
      assert.equal(ack.retain, false);
      assert.equal(ack.json.alarm, "temp_high");
      assert.match(String(ack.json.id), /^[0-9a-f-]{36}$/);
      await p.waitForSelector(
        '#alarm-state tr[data-alarm="temp_high"][data-state="active-acknowledged"]',
        { timeout: 5_000 },
      );
      await p.waitForFunction(
        () =>
          document.getElementById("ack-result")?.dataset.state === "accepted",
        { timeout: 5_000 },
      );
      assert.equal(
        await p.$$eval("#alarm-state button.ack", (b) => b.length),
        0,
      );
      assert.match(await text(p, "#alarm-count"), /1 active alarm/);

      // CSV export of the trend window and of the alarm journal (real downloads).
      const downloads = `${tmp}/downloads`;
      await Deno.mkdir(downloads);
      const cdp = await p.browser().target().createCDPSession();
      cleanup.push(() => cdp.detach());
      await cdp.send("Browser.setDownloadBehavior", {
        behavior: "allow",
        downloadPath: downloads,
        eventsEnabled: true,
      });
      const downloaded = async (button: string) => {
        const done = new Promise<void>((resolve) => {
          const on = (e: { state: string }) => {
            if (e.state !== "completed") return;
            cdp.off("Browser.downloadProgress", on);
            resolve();
          };
          cdp.on("Browser.downloadProgress", on);
        });
        await p.click(button);
        await done;
        const names = [...Deno.readDirSync(downloads)].map((e) => e.name);
        const name = names.find((n) =>
          n.startsWith(button === "#export-trend" ? "trend-" : "alarms-")
        );
        assert.ok(name, `downloaded file of ${button}: ${names}`);
        return await Deno.readTextFile(`${downloads}/${name}`);
      };
      const trendCsv = (await downloaded("#export-trend")).split("\r\n");
      assert.equal(
        trendCsv[0],
        "ts,device_id,seq,quality,temp_c,power_w,soc_pct,voltage_v,current_a,setpoint_w,status_bits,error",
      );
      assert.ok(trendCsv.length > 10, `${trendCsv.length} trend CSV lines`);
      assert.ok(
        trendCsv.some((l) => /,4000,1,$/.test(l)),
        "setpoint 4000 rows",
      );
      const alarmCsv = (await downloaded("#export-alarms")).split("\r\n");
      assert.equal(alarmCsv[0], "ts,device_id,alarm,state,value,message");
      assert.match(alarmCsv[1], /,1001,temp_high,acked,/);
      assert.match(alarmCsv[2], /,1001,temp_high,raised,6\d/);

      // Reload: history is drawn from /api/history at once, the alarm from the
      // retained state, then live continues with neither gaps nor duplicates.
      const telemetryTopic = `${prefix}/telemetry`;
      const before = r.on(telemetryTopic).length;
      const t0 = performance.now();
      await p.reload({ waitUntil: "domcontentloaded" });
      await p.waitForFunction(
        () => {
          const t = document.getElementById("trend");
          return t?.dataset.history === "loaded" &&
            Number(t.dataset.points) > 0;
        },
        { timeout: 5_000, polling: 10 },
      );
      const historyMs = performance.now() - t0;
      const drawn = Number(await attr(p, "#trend", "data-points"));
      console.log(
        `reload -> history drawn ${
          Math.round(historyMs)
        } ms (${drawn} points; ${before} telemetry messages before reload)`,
      );
      assert.ok(drawn >= before - 1, `${drawn} points drawn, ${before} sent`);
      await p.waitForSelector(
        '#alarm-state tr[data-alarm="temp_high"][data-state="active-acknowledged"]',
        { timeout: 2_000 },
      );
      await p.waitForSelector(
        '#alarm-list tr[data-alarm="temp_high"][data-state="raised"]',
        { timeout: 2_000 },
      );
      // Every telemetry message the broker delivered, exactly once.
      let last = "";
      await waitFor(
        "page points == telemetry messages sent",
        async () => {
          const n = r.on(telemetryTopic).length;
          const shown = Number(await attr(p, "#trend", "data-points"));
          last = `${shown} shown, ${n} sent`;
          return shown === n && r.on(telemetryTopic).length === n;
        },
        10_000,
        20,
      ).catch((e) => {
        throw new Error(`${e.message}: ${last}`);
      });

      assert.deepEqual(errors, []);
    } catch (e) {
      await printFailureContext(logs, page, ".hmi");
      throw e;
    } finally {
      await runCleanup(cleanup);
    }
  },
});
