/** Debian's Chromium for browser tests: launch flags and page-error capture. */
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { which } from "./_support.ts";

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
