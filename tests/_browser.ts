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

/** Collects page errors, console errors/warnings and failed requests. */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e}`));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warn") {
      errors.push(`console.${m.type()}: ${m.text()}`);
    }
  });
  page.on("requestfailed", (q) => {
    errors.push(`request failed: ${q.url()} ${q.failure()?.errorText}`);
  });
  return errors;
}

export const textOf = (page: Page, sel: string): Promise<string> =>
  page.$eval(sel, (el) => el.textContent ?? "");
