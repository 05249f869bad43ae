/**
 * Browser tests' plumbing: Debian's Chromium (launch flags, page-error
 * capture) and the rig every browser test assembles in its own order: a
 * simulator with fast physics, an embedded broker (TCP + WebSocket) that can
 * be stopped and started again on the same ports, the settings poller and
 * HMI share, the HMI, and a fresh page. Each piece registers its own
 * teardown in the test's `Cleanup`, run in reverse by `runCleanup`.
 */
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { type Simulator, startSimulator } from "../sim.ts";
import { type Broker, startBroker } from "../broker.ts";
import { startHmi } from "../hmi.ts";
import { parseConfig } from "../cli.ts";
import { HMI_OPTIONS } from "../settings.ts";
import { freePort, which } from "./_support.ts";

export const CHROMIUM = which("chromium") ?? "/usr/bin/chromium";

/**
 * Headless Chromium with a fresh profile. As root it needs --no-sandbox; on
 * a closed network the background-networking flags keep it from dialling out.
 */
export function launchChromium(userDataDir: string): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-sync",
    ],
  });
}

/** The page's own console lines (hmi_model.ts noteRejection) start so. */
export const OWN_WARNING = /^hmi: /;

/**
 * Collects page errors, console errors and warnings, and failed requests.
 * The page's own rate-limited warnings about rejected input ("hmi: ...")
 * go to `ownWarnings` when it is given (a test that sends garbage expects
 * them); anything else a page logs is an error.
 */
export function collectPageErrors(
  page: Page,
  ownWarnings?: string[],
): string[] {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e}`));
  page.on("console", (m) => {
    if (m.type() === "warn" && ownWarnings && OWN_WARNING.test(m.text())) {
      ownWarnings.push(m.text());
    } else if (m.type() === "error" || m.type() === "warn") {
      errors.push(`console.${m.type()}: ${m.text()}`);
    }
  });
  page.on("requestfailed", (q) => {
    errors.push(`request failed: ${q.url()} ${q.failure()?.errorText}`);
  });
  return errors;
}

/** The URL of the trend chart chunk a loaded HMI page fetched. */
export function chartChunkUrl(page: Page): Promise<string> {
  return page.waitForFunction(
    () =>
      performance.getEntriesByType("resource").map((e) => e.name).find((u) =>
        /\/build\/hmi_chart-[A-Z0-9]+\.js$/.test(u)
      ),
    { timeout: 10_000 },
  ).then((h) => h.jsonValue() as Promise<string>);
}

/** Update times of the trend charts with one full window (ms per update). */
export interface ChartTiming {
  /** Points per series (3 series on the 2 charts). */
  points: number;
  updates: number;
  p50: number;
  p99: number;
  max: number;
}

/**
 * Time the HMI's trend chart update (both charts, 3 series) with a full
 * 10-minute window of `points` points per series, in the page: load the
 * chart chunk at `chartUrl` (the page's origin must serve it), draw on
 * 900x300 canvases, then, as live, push one point, drop the oldest and
 * update, `updates` times.
 */
export async function measureChartUpdates(
  page: Page,
  chartUrl: string,
  sizes: readonly number[] = [600, 2400],
  updates = 200,
): Promise<ChartTiming[]> {
  const out: ChartTiming[] = [];
  for (const n of sizes) {
    const times = await page.evaluate(
      async (url: string, n: number, updates: number) => {
        const { createTrendCharts } = await import(url);
        const hosts = [0, 1].map(() => {
          const host = document.createElement("div");
          // CSSOM styles are allowed by the CSP (no inline style attribute).
          host.style.cssText = "width:900px;height:300px;position:relative";
          const c = document.createElement("canvas");
          host.append(c);
          document.body.append(host);
          return { host, c };
        });
        const now = Date.now();
        const step = n ? 600_000 / n : 1000; // n = 0: axes only (a floor)
        const mk = (f: (i: number) => number) =>
          Array.from(
            { length: n },
            (_, i) => ({ x: now - 600_000 + i * step, y: f(i) }),
          );
        const series = {
          temp: mk((i) => 50 + 10 * Math.sin(i / 30)),
          power: mk((i) => 3000 + 500 * Math.cos(i / 20)),
          soc: mk((i) => 50 + (i % 50)),
        };
        const charts = createTrendCharts(hosts[0].c, hosts[1].c, series, {
          raiseAboveC: 60,
          clearBelowC: 58,
          windowMs: 600_000,
        });
        charts.update(now); // first layout
        const times: number[] = [];
        const warmup = 20; // JIT and caches: the first updates are not timed
        for (let k = 0; k < warmup + updates; k++) {
          for (const s of n ? [series.temp, series.power, series.soc] : []) {
            s.push({ x: now + (k + 1) * step, y: s[s.length - 1].y });
            s.shift();
          }
          const t = performance.now();
          charts.update(now + (k + 1) * step);
          if (k >= warmup) times.push(performance.now() - t);
        }
        charts.destroy();
        for (const h of hosts) h.host.remove();
        return times;
      },
      chartUrl,
      n,
      updates,
    );
    times.sort((a, b) => a - b);
    const at = (p: number) =>
      times[Math.min(times.length - 1, Math.floor(p * times.length))];
    out.push({
      points: n,
      updates,
      p50: at(0.5),
      p99: at(0.99),
      max: times[times.length - 1],
    });
  }
  return out;
}

const SHOTS = new URL("../data/screenshots/", import.meta.url);
const DOCS = new URL("../docs/", import.meta.url);

/**
 * Save a full-page screenshot as data/screenshots/{name}.png (git-ignored:
 * a test run leaves the tree clean). With `docs` and UPDATE_SCREENSHOT=1 in
 * the environment, also as the README's docs/{name}.png.
 */
export async function saveScreenshot(
  page: Page,
  name: string,
  opts: { docs?: boolean } = {},
): Promise<void> {
  await Deno.mkdir(SHOTS, { recursive: true });
  const bytes = await page.screenshot({ fullPage: true });
  await Deno.writeFile(new URL(`${name}.png`, SHOTS), bytes);
  if (opts.docs && Deno.env.get("UPDATE_SCREENSHOT") === "1") {
    await Deno.writeFile(new URL(`${name}.png`, DOCS), bytes);
  }
}

export const textOf = (page: Page, sel: string): Promise<string> =>
  page.$eval(sel, (el) => el.textContent ?? "");

/** Teardowns, run last-registered first. */
export type Cleanup = (() => Promise<unknown>)[];

export async function runCleanup(cleanup: Cleanup): Promise<void> {
  for (const c of cleanup.splice(0).reverse()) {
    await c().catch((e) => console.error(`cleanup: ${e}`));
  }
}

/** Poll and alarm timing that shows an alarm within seconds. */
export const FAST_PIPELINE = {
  POLL_INTERVAL_MS: "250",
  ALARM_RAISE_DELAY_MS: "500",
  ALARM_CLEAR_DELAY_MS: "500",
} as const;

/** Simulator(s) on free ports whose temperature follows a setpoint in ~1 s. */
export async function fastSimulator(
  cleanup: Cleanup,
  log: (l: string) => void,
  devices = 1,
): Promise<Simulator> {
  const sim = await startSimulator({
    host: "127.0.0.1",
    port: devices === 1 ? await freePort() : 0,
    devices,
    tauS: 0.5,
    noise: 0,
    stepMs: 50,
    log,
  });
  cleanup.push(() => sim.close());
  return sim;
}

/** The embedded broker on free ports; `stop` and `start` keep the ports. */
export interface TestBroker {
  readonly url: string;
  readonly wsUrl: string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export async function embeddedBrokerWithWs(
  cleanup: Cleanup,
  log: (l: string) => void,
): Promise<TestBroker> {
  const tcpPort = await freePort();
  const wsPort = await freePort();
  let broker: Broker | null = null;
  const b: TestBroker = {
    url: `mqtt://127.0.0.1:${tcpPort}`,
    wsUrl: `ws://127.0.0.1:${wsPort}`,
    async stop() {
      const running = broker;
      broker = null;
      await running?.close();
    },
    async start() {
      if (!broker) {
        broker = await startBroker({ host: "127.0.0.1", tcpPort, wsPort, log });
      }
    },
  };
  await b.start();
  cleanup.push(() => b.stop());
  return b;
}

/**
 * The settings poller and HMI share: broker URLs, topic prefix, HMI on a
 * free loopback port, history in a temp DATA_DIR, fast timing; `extra` wins.
 */
export async function rigEnv(
  cleanup: Cleanup,
  broker: TestBroker,
  prefix: string,
  extra: Record<string, string> = {},
): Promise<Record<string, string>> {
  const dataDir = await Deno.makeTempDir({ prefix: "hmi-data-" });
  cleanup.push(() => Deno.remove(dataDir, { recursive: true }));
  return {
    MQTT_URL: broker.url,
    MQTT_WS_URL: broker.wsUrl,
    TOPIC_PREFIX: prefix,
    HMI_HOST: "127.0.0.1",
    HMI_PORT: String(await freePort()),
    DATA_DIR: dataDir,
    ...FAST_PIPELINE,
    ...extra,
  };
}

/** The HMI with `env`; `base` is its http://127.0.0.1:port. */
export async function startTestHmi(
  cleanup: Cleanup,
  env: Record<string, string>,
  log: (l: string) => void,
): Promise<{ port: number; base: string }> {
  const hmi = await startHmi(parseConfig(HMI_OPTIONS, [], env), log);
  cleanup.push(() => hmi.close());
  return { port: hmi.port, base: `http://127.0.0.1:${hmi.port}` };
}

/** A page in a fresh Chromium profile, its errors and own warnings collected. */
export async function newPage(
  cleanup: Cleanup,
  viewport = { width: 1280, height: 900 },
): Promise<{ page: Page; errors: string[]; ownWarnings: string[] }> {
  const userDataDir = await Deno.makeTempDir({ prefix: "hmi-chromium-" });
  cleanup.push(() => Deno.remove(userDataDir, { recursive: true }));
  const browser = await launchChromium(userDataDir);
  cleanup.push(() => browser.close());
  const page = await browser.newPage();
  const ownWarnings: string[] = [];
  const errors = collectPageErrors(page, ownWarnings);
  await page.setViewport(viewport);
  return { page, errors, ownWarnings };
}

/** After a failure: the last log lines and the text `page` shows, for CI. */
export async function printFailureContext(
  logs: string[],
  page: Page | null,
  selector = "body",
): Promise<void> {
  console.error(logs.slice(-30).join("\n"));
  console.error(
    await page?.$eval(selector, (e) => e.textContent).catch(() => "") ?? "",
  );
}
