/**
 * The HMI in real Chromium (Debian's /usr/bin/chromium, headless, driven by
 * npm:puppeteer-core) against the whole pipeline on loopback: simulator,
 * embedded broker (TCP + WebSocket), poller and HMI, all in-process on free
 * ports. Live data, an alarm (temperature tile red, dates, units), phone
 * width (alarm rows stacked, nothing cut off), hostile MQTT input on every
 * topic the island subscribes to, the broker lost and back (poller and
 * alarms "unknown", values stale), the poller stopped (values stale at once).
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
import { parseTelemetry } from "../contract.ts";
import { writeSetpoint } from "./_modbus.ts";
import { Recorder } from "./_mqtt.ts";
import { needs, waitFor } from "./_support.ts";

const text = textOf;
const tone = (page: Page, sel: string) =>
  page.$eval(sel, (el) => (el as HTMLElement).dataset.tone ?? "");

Deno.test({
  name:
    "HMI in Chromium: live data, temp_high raised, poller offline, no errors",
  ignore: needs("chromium"),
  async fn() {
    const logs: string[] = [];
    const log = (l: string) => logs.push(l);
    const cleanup: Cleanup = [];
    let rec: Recorder | null = null;
    let page: Page | null = null;
    try {
      const sim = await fastSimulator(cleanup, log);
      const modbusPort = sim.ports[0];
      const broker = await embeddedBrokerWithWs(cleanup, log);
      const prefix = "hmitest";
      const env = await rigEnv(cleanup, broker, prefix, {
        MODBUS_HOST: "127.0.0.1",
        MODBUS_PORT: String(modbusPort),
      });
      const r = rec = await Recorder.connect(broker.url, `${prefix}/#`);
      cleanup.push(() => r.close());
      const poller = await startPoller(parseConfig(POLL_OPTIONS, [], env), {
        log,
      });
      let pollerStopped = false;
      cleanup.push(() => pollerStopped ? Promise.resolve() : poller.stop());
      const { base } = await startTestHmi(cleanup, env, log);
      const { page: p, errors, ownWarnings } = await newPage(cleanup, {
        width: 1280,
        height: 760,
      });
      page = p;

      // Load the page; measure load -> first live value.
      const t0 = performance.now();
      const res = await p.goto(`${base}/`, {
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
      assert.equal(await text(p, "#broker-state"), "Broker: connected");
      assert.equal(await text(p, "#poller-state"), "Poller: online");
      assert.equal(await tone(p, "#poller-state"), "good");
      // Green only once the retained alarm state confirms it.
      await p.waitForFunction(
        () =>
          document.getElementById("alarm-count")?.textContent ===
            "No active alarms",
        { timeout: 5_000 },
      );
      assert.equal(await tone(p, "#alarm-count"), "good");

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
      assert.match(row[2] ?? "", /^6\d\.\d °C$/);
      assert.match(row[3] ?? "", /^\d\d:\d\d:\d\d$/, "today: time only");
      assert.equal(row[4], "\u2014");
      assert.match(await text(p, "#alarm-count"), /1 active alarm/);
      assert.equal(await tone(p, "#alarm-count"), "alarm");
      // The temperature tile is red while temp_high is active.
      await p.waitForSelector("#tile-temp_c.alarm", { timeout: 5_000 });
      assert.equal(await p.$$eval(".value.alarm", (els) => els.length), 1);
      assert.match(await text(p, "#tile-temp_c"), /°C/);
      assert.match(await text(p, "#export-alarms"), /\(1 event\)$/);
      // (docs/screenshot.png is saved by browser_operator_test.ts, with the
      // operator controls in use.)

      // Phone width: nothing overflows horizontally, and the alarm rows are
      // stacked: the Acknowledge button and the value are on screen, not
      // behind a horizontal scroll.
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
      const inView = await p.evaluate(() => {
        const w = globalThis.innerWidth;
        const box = (sel: string) => {
          const el = document.querySelector(sel);
          if (!el) return `${sel}: missing`;
          const b = el.getBoundingClientRect();
          return b.width > 0 && b.left >= 0 && b.right <= w
            ? "ok"
            : `${sel}: ${b.left}..${b.right} of ${w}`;
        };
        // Nothing inside the alarm section may scroll sideways either.
        const scrollers = [...document.querySelectorAll(".alarms, .alarms *")]
          .filter((el) =>
            /auto|scroll/.test(getComputedStyle(el).overflowX) &&
            el.scrollWidth > el.clientWidth + 1
          )
          .map((el) => el.tagName + "." + el.className);
        return [
          box('#alarm-state button.ack[data-alarm="temp_high"]'),
          box('#alarm-state tr[data-alarm="temp_high"] td.c-value'),
          box('#alarm-state tr[data-alarm="temp_high"] td.c-state'),
          box('#alarm-list tr[data-alarm="temp_high"] td.c-value'),
          box('#alarm-list tr[data-alarm="temp_high"] td.c-time'),
          scrollers.length ? `scrollers: ${scrollers}` : "ok",
        ];
      });
      await saveScreenshot(p, "alarm-phone");
      assert.deepEqual(inView, ["ok", "ok", "ok", "ok", "ok", "ok"]);
      // State and Acknowledge first: on the row's first line.
      const [stateTop, ackTop, nameTop] = await p.$eval(
        '#alarm-state tr[data-alarm="temp_high"]',
        (tr) =>
          [".c-state", ".c-ack button", ".c-name"].map((c) =>
            tr.querySelector(c)!.getBoundingClientRect().top
          ),
      );
      assert.ok(stateTop < nameTop && ackTop < nameTop, "state/ack first");
      await p.setViewport({ width: 1280, height: 760 });

      // Hostile input on every topic the island subscribes to: malformed
      // JSON, wrong types and a 300 KB payload. Each is counted and logged
      // (console.warn, rate-limited), none is shown, the page keeps going.
      const huge = JSON.stringify({ pad: "x".repeat(300 * 1024) });
      const garbage: [string, string][] = [];
      const t = (leaf: string) => `${prefix}/${leaf}`;
      const now = () => new Date().toISOString();
      for (
        const [leaf, wrongTypes] of [
          ["telemetry", {
            ts: now(),
            device_id: 1001,
            seq: "7",
            quality: "good",
            values: { temp_c: "hot" },
          }],
          ["alarms", {
            ts: now(),
            device_id: 1001,
            alarm: "temp_high",
            state: "raised",
            value: "61",
            message: 1,
          }],
          ["alarms/state", { ts: now(), device_id: 1001, alarms: {} }],
          ["status", { state: "maybe", ts: now(), session: 1.5 }],
          ["cmd/setpoint/result", { id: 5, ok: "yes" }],
          ["cmd/ack/result", { id: "x", ok: true, value: "a lot" }],
        ] as const
      ) {
        garbage.push([t(leaf), "{not json"]);
        garbage.push([t(leaf), JSON.stringify(wrongTypes)]);
        garbage.push([t(leaf), huge]);
      }
      const seqBefore = Number(
        r.on(`${prefix}/telemetry`).at(-1)?.json.seq ?? 0,
      );
      for (const [topic, payload] of garbage) {
        await r.client.publishAsync(topic, payload, { qos: 1 });
      }
      const expected = `${garbage.length} invalid messages ignored`;
      await p.waitForFunction(
        (want) => document.getElementById("rejected")?.textContent === want,
        { timeout: 10_000 },
        expected,
      );
      // Still live: a newer telemetry message is shown after the barrage.
      await waitFor(
        "live values after the barrage",
        async () => {
          const last = r.on(`${prefix}/telemetry`).at(-1);
          const tv = last && parseTelemetry(JSON.stringify(last.json));
          if (!tv?.ok || tv.value.quality !== "good") return false;
          if (tv.value.seq <= seqBefore + 2) return false;
          return (await text(p, "#v-temp_c")) ===
            tv.value.values.temp_c.toFixed(1);
        },
        10_000,
        20,
      );
      assert.match(await text(p, "#quality"), /^Quality: good/);
      assert.equal(await text(p, "#poller-state"), "Poller: online");
      assert.match(await text(p, "#alarm-count"), /1 active alarm/);
      // Logged: the first 5 one by one (then counts, at most every 10 s).
      assert.ok(
        ownWarnings.length >= 5 && ownWarnings.length <= 6,
        ownWarnings.join("\n"),
      );
      assert.match(
        ownWarnings[0],
        /^hmi: ignored an invalid message on hmitest\/telemetry: malformed JSON$/,
      );
      assert.ok(
        ownWarnings.some((w) => /payload too large/.test(w)),
        ownWarnings.join("\n"),
      );

      // The broker goes away: nothing is confirmed any more. Poller and
      // alarms are "unknown" (grey), the values stale at once.
      await broker.stop();
      await p.waitForFunction(
        () =>
          /^STALE: no broker connection/.test(
            document.getElementById("quality")?.textContent ?? "",
          ),
        { timeout: 5_000, polling: 20 },
      );
      assert.notEqual(await text(p, "#broker-state"), "Broker: connected");
      assert.match(
        await text(p, "#poller-state"),
        /^Poller: unknown \(last online \d\d:\d\d:\d\d\)$/,
      );
      assert.equal(await tone(p, "#poller-state"), "unknown");
      assert.match(await text(p, "#alarm-count"), /^Alarms: unknown/);
      assert.equal(await tone(p, "#alarm-count"), "unknown");
      assert.equal(await text(p, "#v-temp_c"), "stale");
      assert.match(await text(p, "#alarm-state-note"), /last known/);
      await saveScreenshot(p, "broker-lost");
      // Chromium itself logs each failed WebSocket reconnect as an error.
      const wsFailed = (e: string) =>
        e.startsWith(
          `console.error: WebSocket connection to '${broker.wsUrl}/'`,
        );
      // Back on the same ports: the retained status and alarm state confirm
      // the picture again, and live values resume.
      await broker.start();
      await p.waitForFunction(
        () =>
          document.getElementById("poller-state")?.textContent ===
            "Poller: online" &&
          /^Quality: good/.test(
            document.getElementById("quality")?.textContent ?? "",
          ),
        { timeout: 20_000, polling: 20 },
      );
      assert.equal(await text(p, "#broker-state"), "Broker: connected");
      assert.match(await text(p, "#alarm-count"), /1 active alarm/);
      errors.splice(0, errors.length, ...errors.filter((e) => !wsFailed(e)));

      // Stop the poller: its status turns offline and the values are stale
      // at that moment, not 3 poll intervals later.
      pollerStopped = true;
      await poller.stop();
      await p.waitForFunction(
        () =>
          document.getElementById("poller-state")?.textContent ===
            "Poller: offline",
        { timeout: 5_000, polling: 10 },
      );
      assert.match(await text(p, "#quality"), /^STALE: poller offline/);
      assert.equal(await text(p, "#v-temp_c"), "stale");
      assert.equal(await tone(p, "#poller-state"), "bad");
      assert.equal(await text(p, "#broker-state"), "Broker: connected");
      await saveScreenshot(p, "poller-offline");

      // Text in a valid bad-quality message is shown as text, never as
      // markup.
      const hostile = "<img src=x onerror=alert(1)>";
      await r.client.publishAsync(
        `${prefix}/telemetry`,
        JSON.stringify({
          ts: new Date().toISOString(),
          device_id: 1001,
          seq: 999_999,
          quality: "bad",
          values: null,
          error: hostile,
        }),
        { qos: 1 },
      );
      await p.waitForFunction(
        (h) => document.getElementById("quality")?.textContent?.includes(h),
        { timeout: 5_000 },
        hostile,
      );
      assert.equal(await p.$$eval(".hmi img", (els) => els.length), 0);

      assert.deepEqual(errors, []);
    } catch (e) {
      const st = rec?.messages.slice(-5).map((m) =>
        `${m.topic} ${JSON.stringify(m.json).slice(0, 300)}`
      );
      console.error(st?.join("\n"));
      await printFailureContext(logs, page, ".hmi");
      throw e;
    } finally {
      await runCleanup(cleanup);
    }
  },
});
