/**
 * The fleet overview in real Chromium:
 * 1. the whole pipeline on loopback (simulator with 20 devices, embedded
 *    broker, fleet poller, HMI): 20 rows with values, an alarm driven over
 *    Modbus shows in the overview (first row), clicking the row opens the
 *    device page with live data and history, no page errors;
 * 2. scale: 1000 synthetic devices publishing at 1 Hz (an MQTT client, not
 *    1000 simulated devices): time to the first full table, main-thread
 *    time per second (CDP TaskDuration), renders per second, rows in the
 *    DOM (windowing), and the trend chart's update time with a full
 *    10-minute window (600 and 2400 points per series).
 */
import assert from "node:assert/strict";
import type { Page } from "puppeteer-core";
import {
  chartChunkUrl,
  type Cleanup,
  embeddedBrokerWithWs,
  fastSimulator,
  measureChartUpdates,
  newPage,
  printFailureContext,
  rigEnv,
  runCleanup,
  startTestHmi,
  textOf,
} from "./_browser.ts";
import { startFleet } from "../fleet.ts";
import { parseConfig } from "../cli.ts";
import { POLL_OPTIONS } from "../settings.ts";
import { buildStatus, buildTelemetry } from "../contract.ts";
import type { DeviceSpec } from "../devices.ts";
import { writeSetpoint } from "./_modbus.ts";
import { Recorder } from "./_mqtt.ts";
import { VALUES } from "./_fixtures.ts";
import { needs } from "./_support.ts";

const rowCells = (p: Page, name: string) =>
  p.$eval(
    `#fleet-table tr[data-name="${name}"]`,
    (tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent ?? ""),
  );

Deno.test({
  name:
    "fleet overview in Chromium: 20 devices, an alarm first, row opens the device page",
  ignore: needs("chromium"),
  async fn() {
    const logs: string[] = [];
    const log = (l: string) => logs.push(l);
    const cleanup: Cleanup = [];
    let page: Page | null = null;
    try {
      const sim = await fastSimulator(cleanup, log, 20);
      const prefix = "fleetui";
      const broker = await embeddedBrokerWithWs(cleanup, log);
      const env = await rigEnv(cleanup, broker, prefix);
      const { base } = await startTestHmi(cleanup, env, log);
      const cfg = parseConfig(POLL_OPTIONS, [], env);
      const specs: DeviceSpec[] = sim.ports.map((port, i) => ({
        name: `inv-${i + 1}`,
        host: "127.0.0.1",
        port,
        unitId: 1,
        intervalMs: 250,
        map: "inverter",
      }));
      const fleet = startFleet(cfg, specs, { log, pollerName: "ui" });
      cleanup.push(() => fleet.stop());

      const { page: p, errors, ownWarnings } = await newPage(cleanup);
      page = p;
      const t0 = performance.now();
      const res = await p.goto(`${base}/fleet`, {
        waitUntil: "domcontentloaded",
      });
      assert.equal(res?.status(), 200);
      await p.waitForFunction(
        () => {
          const t = document.getElementById("fleet-table");
          return t?.dataset.devices === "20" && t.dataset.good === "20";
        },
        { timeout: 15_000, polling: 20 },
      );
      console.log(
        `20 devices: page load -> all rows good ${
          Math.round(performance.now() - t0)
        } ms`,
      );
      assert.equal(await textOf(p, "#broker-state"), "Broker: connected");
      assert.equal(
        await p.$$eval("#fleet-table tr.row", (trs) => trs.length),
        20,
      );
      // Every row: a link to its page, online, good, numbers.
      for (const s of specs) {
        const [name, online, quality, temp, power, alarms] = await rowCells(
          p,
          s.name,
        );
        assert.equal(name, s.name);
        assert.equal(online, "online");
        assert.equal(quality, "good");
        assert.match(temp, /^-?\d+\.\d$/, `${s.name} temp ${temp}`);
        assert.match(power, /^-?\d+$/, `${s.name} power ${power}`);
        assert.equal(alarms, "\u2014");
      }
      assert.equal(
        await p.$eval(
          '#fleet-table tr[data-name="inv-12"] a',
          (a) => a.getAttribute("href"),
        ),
        "/device/inv-12",
      );
      // Hostile input on every topic the overview subscribes to: malformed
      // JSON, wrong types, 300 KB. Counted, logged (rate-limited), ignored.
      const rec = await Recorder.connect(env.MQTT_URL, `${prefix}/#`);
      cleanup.push(() => rec.close());
      const huge = JSON.stringify({ pad: "x".repeat(300 * 1024) });
      const garbage: [string, string][] = [];
      for (
        const [topic, wrongTypes] of [
          [`${prefix}/inv-3/telemetry`, { ts: 1, seq: "2", quality: "good" }],
          [`${prefix}/inv-3/alarms/state`, { ts: "now", alarms: {} }],
          [`${prefix}/inv-3/status`, { state: "up", ts: "now" }],
          [`${prefix}/_pollers/ui/status`, { state: 1, ts: "now" }],
        ] as const
      ) {
        garbage.push([topic, "{not json"]);
        garbage.push([topic, JSON.stringify(wrongTypes)]);
        garbage.push([topic, huge]);
      }
      for (const [topic, payload] of garbage) {
        await rec.client.publishAsync(topic, payload, { qos: 1 });
      }
      await p.waitForFunction(
        (want) => document.getElementById("rejected")?.textContent === want,
        { timeout: 10_000 },
        `${garbage.length} invalid messages ignored`,
      );
      const renders = Number(
        await p.$eval(
          "#fleet-table",
          (t) => (t as HTMLElement).dataset.renders,
        ),
      );
      await p.waitForFunction(
        (r) => {
          const t = document.getElementById("fleet-table");
          return Number(t?.dataset.renders) > r + 2 && t?.dataset.good === "20";
        },
        { timeout: 5_000 },
        renders,
      );
      const [, online3, quality3] = await rowCells(p, "inv-3");
      assert.deepEqual([online3, quality3], ["online", "good"]);
      assert.ok(ownWarnings.length >= 5 && ownWarnings.length <= 6);
      assert.match(ownWarnings[0], /^hmi: ignored an invalid message on /);

      // Natural name order when nothing is wrong.
      const order = await p.$$eval(
        "#fleet-table tr.row",
        (trs) => trs.map((tr) => (tr as HTMLElement).dataset.name),
      );
      assert.deepEqual(order.slice(0, 3), ["inv-1", "inv-2", "inv-3"]);

      // Drive inv-7's setpoint to 4000 W over Modbus: temp_high is raised,
      // and the row moves to the top with the alarm.
      await writeSetpoint(sim.ports[6], 4000);
      await p.waitForSelector(
        '#fleet-table tr[data-name="inv-7"][data-alarms="1"]',
        { timeout: 20_000 },
      );
      const [name7, , , , , alarms7] = await rowCells(p, "inv-7");
      assert.equal(name7, "inv-7");
      assert.equal(alarms7, "temp_high (unacknowledged)");
      await p.waitForFunction(
        () =>
          (document.querySelector("#fleet-table tr.row") as HTMLElement)
            ?.dataset.name === "inv-7",
        { timeout: 2_000 },
      );
      assert.match(await textOf(p, "#fleet-alarms"), /^1 in alarm/);

      // The filter box narrows the rows.
      await p.type("#fleet-filter", "inv-1");
      await p.waitForFunction(
        () => document.getElementById("fleet-table")?.dataset.rows === "11",
        { timeout: 2_000 },
      );
      await p.$eval("#fleet-filter", (el) => {
        const i = el as HTMLInputElement;
        i.value = "";
        i.dispatchEvent(new Event("input", { bubbles: true }));
      });
      await p.waitForFunction(
        () => document.getElementById("fleet-table")?.dataset.rows === "20",
        { timeout: 2_000 },
      );

      // Clicking the row (not the link) opens the device page: live data,
      // its own alarm, history from /api/history?device=inv-7.
      await Promise.all([
        p.waitForNavigation({ waitUntil: "domcontentloaded" }),
        p.click('#fleet-table tr[data-name="inv-7"] td.power'),
      ]);
      assert.equal(new URL(p.url()).pathname, "/device/inv-7");
      assert.equal(await textOf(p, "#device-name"), "inv-7");
      await p.waitForFunction(
        () =>
          /^-?\d/.test(document.getElementById("v-temp_c")?.textContent ?? ""),
        { timeout: 10_000, polling: 20 },
      );
      assert.equal(await textOf(p, "#poller-state"), "Poller: online");
      await p.waitForFunction(
        () => document.getElementById("trend")?.dataset.history === "loaded",
        { timeout: 5_000 },
      );
      await p.waitForFunction(
        () =>
          /1 active alarm/.test(
            document.getElementById("alarm-count")?.textContent ?? "",
          ),
        { timeout: 5_000 },
      );
      // The recorded history is inv-7's: its alarm is in the journal.
      await p.waitForSelector(
        '#alarm-list tr[data-alarm="temp_high"][data-state="raised"]',
        { timeout: 5_000 },
      );
      const hist = await (await fetch(`${base}/api/history?device=inv-7`))
        .json();
      assert.ok(hist.length > 0, "inv-7 history recorded");
      assert.ok(
        hist.every((t: { device_id: number }) => t.device_id === 1007),
        "only inv-7's rows",
      );
      // The fleet poller process dies: only its will on
      // {prefix}/_pollers/{poller}/status says so (the device statuses it
      // kept stay "online"). The device page follows the will.
      const devStatus = await rec.waitFor(
        "inv-7 retained status",
        (m) => m.topic === `${prefix}/inv-7/status`,
        5_000,
      );
      assert.equal(devStatus.json.poller, "ui");
      assert.equal(devStatus.json.state, "online");
      await rec.client.publishAsync(
        `${prefix}/_pollers/ui/status`,
        JSON.stringify(
          buildStatus("offline", Date.now(), Number(devStatus.json.session)),
        ),
        { qos: 1, retain: true },
      );
      await p.waitForFunction(
        () =>
          document.getElementById("poller-state")?.textContent ===
            "Poller: offline",
        { timeout: 5_000, polling: 20 },
      );
      // Values stale at once, not 3 intervals later.
      assert.match(await textOf(p, "#quality"), /^STALE: poller offline/);

      // And back: the nav link.
      await Promise.all([
        p.waitForNavigation({ waitUntil: "domcontentloaded" }),
        p.click('nav a[href="/fleet"]'),
      ]);
      await p.waitForSelector('#fleet-table tr[data-name="inv-7"]', {
        timeout: 10_000,
      });
      assert.deepEqual(errors, []);
    } catch (e) {
      await printFailureContext(logs, page);
      throw e;
    } finally {
      await runCleanup(cleanup);
    }
  },
});

/** Publishes 1000 devices' telemetry at 1 Hz, spread evenly (100 per 100 ms). */
function syntheticFleet(
  pub: Recorder,
  prefix: string,
  n: number,
): { stop(): void; sent(): number } {
  let seq = 0;
  let sent = 0;
  let slot = 0;
  const SLOTS = 10;
  const timer = setInterval(() => {
    const now = Date.now();
    if (slot === 0) seq++;
    for (let i = slot; i < n; i += SLOTS) {
      const values = {
        ...VALUES,
        temp_c: 40 + ((i * 7 + seq) % 25),
        power_w: 1000 + ((i * 13 + seq) % 3000),
      };
      pub.client.publish(
        `${prefix}/dev-${i}/telemetry`,
        JSON.stringify(
          buildTelemetry({ tsMs: now, deviceId: 1001 + i, seq, values }),
        ),
        { qos: 0 },
      );
      sent++;
    }
    slot = (slot + 1) % SLOTS;
  }, 1000 / SLOTS);
  return {
    stop: () => clearInterval(timer),
    sent: () => sent,
  };
}

Deno.test({
  name:
    "fleet overview at scale: 1000 devices at 1 Hz, and the trend chart with a full window (numbers in the log)",
  ignore: needs("chromium"),
  async fn() {
    const logs: string[] = [];
    const log = (l: string) => logs.push(l);
    const cleanup: Cleanup = [];
    const N = 1000;
    try {
      const prefix = "scale";
      const broker = await embeddedBrokerWithWs(cleanup, log);
      // The synthetic devices publish at 1 Hz, the default poll interval.
      const env = await rigEnv(cleanup, broker, prefix, {
        POLL_INTERVAL_MS: "1000",
      });
      const { base } = await startTestHmi(cleanup, env, log);
      const pub = await Recorder.connect(env.MQTT_URL, "none/#");
      cleanup.push(() => pub.close());
      // Retained state first, as a fleet poller leaves it: every device
      // online, 10 of them in alarm.
      for (let i = 0; i < N; i++) {
        pub.client.publish(
          `${prefix}/dev-${i}/status`,
          JSON.stringify({
            ...buildStatus("online", Date.now(), 1),
            poller: "p",
          }),
          { qos: 1, retain: true },
        );
        pub.client.publish(
          `${prefix}/dev-${i}/alarms/state`,
          JSON.stringify({
            ts: new Date().toISOString(),
            device_id: 1001 + i,
            alarms: [{
              alarm: "temp_high",
              state: i % 100 === 0 ? "active-unacknowledged" : "normal",
              value: null,
              raised_ts: null,
              cleared_ts: null,
              acked_ts: null,
            }],
          }),
          { qos: 1, retain: true },
        );
      }
      const gen = syntheticFleet(pub, prefix, N);
      cleanup.push(() => Promise.resolve(gen.stop()));

      const { page: p, errors } = await newPage(cleanup);
      const t0 = performance.now();
      await p.goto(`${base}/fleet`, { waitUntil: "domcontentloaded" });
      await p.waitForFunction(
        (n) =>
          document.getElementById("fleet-table")?.dataset.devices === String(n),
        { timeout: 20_000, polling: 20 },
        N,
      );
      const seenMs = performance.now() - t0;
      await p.waitForFunction(
        (n) => {
          const t = document.getElementById("fleet-table");
          return t?.dataset.devices === String(n) &&
            t.dataset.good === String(n);
        },
        { timeout: 20_000, polling: 20 },
        N,
      );
      const fullMs = performance.now() - t0;
      // The 10 in alarm are on top.
      const top = await p.$$eval(
        "#fleet-table tr.row",
        (trs) =>
          trs.slice(0, 11).map((tr) => (tr as HTMLElement).dataset.alarms),
      );
      assert.deepEqual(top, [...Array(10).fill("1"), "0"]);

      // Steady state: main-thread time over 10 s of 1000 messages/s.
      const cdp = await p.createCDPSession();
      cleanup.push(() => cdp.detach());
      await cdp.send("Performance.enable");
      const metrics = async () => {
        const { metrics } = await cdp.send("Performance.getMetrics");
        return Object.fromEntries(metrics.map((m) => [m.name, m.value]));
      };
      const rendersOf = async () =>
        Number(
          await p.$eval(
            "#fleet-table",
            (t) => (t as HTMLElement).dataset.renders,
          ),
        );
      const m0 = await metrics();
      const r0 = await rendersOf();
      const sent0 = gen.sent();
      const w0 = performance.now();
      await new Promise((r) => setTimeout(r, 10_000)); // a measurement window, not a wait for an event
      const m1 = await metrics();
      const r1 = await rendersOf();
      const wallS = (performance.now() - w0) / 1000;
      const perS = (k: string) => (m1[k] - m0[k]) / wallS;
      const taskMsPerS = perS("TaskDuration") * 1000;
      const scriptMsPerS = perS("ScriptDuration") * 1000;
      const layoutMsPerS = (perS("LayoutDuration") +
        perS("RecalcStyleDuration")) * 1000;
      const rendersPerS = (r1 - r0) / wallS;
      const msgsPerS = (gen.sent() - sent0) / wallS;
      // The same traffic with no row shown (a filter matching nothing):
      // what MQTT over WebSocket plus validation cost alone.
      await p.type("#fleet-filter", "no-such-device");
      await p.waitForFunction(
        () => document.getElementById("fleet-table")?.dataset.rows === "0",
        { timeout: 2_000 },
      );
      const n0 = await metrics();
      const v0 = performance.now();
      await new Promise((r) => setTimeout(r, 5_000)); // a measurement window
      const n1 = await metrics();
      const ingestMsPerS = (n1.TaskDuration - n0.TaskDuration) /
        ((performance.now() - v0) / 1000) * 1000;
      await p.$eval("#fleet-filter", (el) => {
        const i = el as HTMLInputElement;
        i.value = "";
        i.dispatchEvent(new Event("input", { bubbles: true }));
      });
      await p.waitForFunction(
        (n) =>
          document.getElementById("fleet-table")?.dataset.rows === String(n),
        { timeout: 2_000 },
        N,
      );
      const domRows = await p.$$eval(
        "#fleet-table tr.row",
        (trs) => trs.length,
      );
      const rowPx = await p.$eval(
        "#fleet-table tr.row",
        (tr) => tr.getBoundingClientRect().height,
      );

      // Windowing follows scrolling: the middle of the list renders.
      await p.$eval(".fleet-scroll", (el) => el.scrollTop = 15_000);
      await p.waitForFunction(
        () => {
          const rows = [...document.querySelectorAll("#fleet-table tr.row")];
          const sc = document.querySelector(".fleet-scroll")!;
          const box = sc.getBoundingClientRect();
          return rows.some((r) => {
            const b = r.getBoundingClientRect();
            return b.top >= box.top + 30 && b.bottom <= box.bottom;
          });
        },
        { timeout: 2_000 },
      );
      const scrollHeight = await p.$eval(
        ".fleet-scroll",
        (el) => el.scrollHeight,
      );

      console.log(
        `fleet overview, ${N} devices at 1 Hz (${
          msgsPerS.toFixed(0)
        } msg/s): all ${N} devices listed ${
          Math.round(seenMs)
        } ms, first full table (all good) ${
          Math.round(fullMs)
        } ms; main thread ${taskMsPerS.toFixed(0)} ms/s (script ${
          scriptMsPerS.toFixed(0)
        }, style+layout ${layoutMsPerS.toFixed(0)}), with no row shown ${
          ingestMsPerS.toFixed(0)
        } ms/s; ${
          rendersPerS.toFixed(1)
        } renders/s; ${domRows} rows in the DOM (${rowPx} px each), scroll height ${scrollHeight} px`,
      );
      assert.ok(fullMs < 15_000, `first full table after ${fullMs} ms`);
      // The page keeps up: well under a whole core, and it renders.
      assert.ok(
        taskMsPerS < 800,
        `main thread busy ${taskMsPerS.toFixed(0)} ms per second`,
      );
      assert.ok(rendersPerS >= 1, `${rendersPerS} renders/s`);
      assert.ok(rendersPerS <= 4.5, `${rendersPerS} renders/s`);
      assert.ok(domRows < 100, `${domRows} rows in the DOM`);
      assert.equal(rowPx, 30);
      assert.ok(Math.abs(scrollHeight - N * 30) < 200, `${scrollHeight}`);
      gen.stop();

      // (b) The trend chart with a full 10-minute window: load the chart
      // chunk the single-device page uses and time update() over 600 and
      // 2400 points per series (1 Hz and 4 Hz; the trend store decimates
      // anything faster to at most about 2000).
      await p.goto(`${base}/`, { waitUntil: "domcontentloaded" });
      const timing = await measureChartUpdates(p, await chartChunkUrl(p));
      console.log(
        `trend chart update (both charts, 3 series), full 10-min window: ${
          timing.map((t) =>
            `${t.points} points p50 ${t.p50.toFixed(2)} ms, p99 ${
              t.p99.toFixed(2)
            } ms`
          ).join("; ")
        }`,
      );
      const big = timing.find((t) => t.points === 2400)!;
      assert.ok(big.p50 < 100, `chart update ${big.p50} ms`);
      // The CSP blocks the inline style of the measuring canvases' hosts?
      // No: styles set through the CSSOM are allowed; nothing may have failed.
      assert.deepEqual(errors, []);
    } catch (e) {
      console.error(logs.slice(-30).join("\n"));
      throw e;
    } finally {
      await runCleanup(cleanup);
    }
  },
});
