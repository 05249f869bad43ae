/**
 * Shared test plumbing: free ports, waiting for events, and detecting the
 * optional real peers (Mosquitto, mbpoll, Chromium, pymodbus).
 */
import net from "node:net";

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The first of `n` consecutive TCP ports on 127.0.0.1 that were all free a
 * moment ago (for the simulator's MODBUS_PORT + i devices), none of them in
 * `avoid`. Take the test's other ports first and pass them here.
 */
export async function freePortRun(
  n: number,
  avoid: readonly number[] = [],
  attempts = 20,
): Promise<number> {
  for (let a = 0; a < attempts; a++) {
    const base = await freePort();
    if (base + n - 1 > 65535) continue;
    // Ports already handed out for something else (the OS may give the
    // next free port to the next caller) must not fall inside the run.
    if (avoid.some((p) => p >= base && p < base + n)) continue;
    let free = true;
    for (let i = 1; i < n && free; i++) {
      free = await assertPortFree(base + i).then(() => true, () => false);
    }
    if (free) return base;
  }
  throw new Error(`no ${n} consecutive free ports after ${attempts} attempts`);
}

/** Resolves once nothing accepts on `port` (proves a test closed its server). */
export function assertPortFree(
  port: number,
  host = "127.0.0.1",
): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on(
      "error",
      (e) =>
        reject(new Error(`port ${port} still in use: ${(e as Error).message}`)),
    );
    srv.listen(port, host, () => srv.close(() => resolve()));
  });
}

/**
 * Polls `check` until it returns a truthy value or `timeoutMs` passes.
 * For conditions with no event to await (state of another process).
 */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  everyMs = 25,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      lastErr = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${
      lastErr ? ` (last error: ${(lastErr as Error).message})` : ""
    }`,
  );
}

/** Absolute path of an executable on PATH, or null. */
export function which(cmd: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    const p = `${dir}/${cmd}`;
    try {
      const st = Deno.statSync(p);
      if (st.isFile && (st.mode ?? 0o111) & 0o111) return p;
    } catch { /* not here */ }
  }
  return null;
}

const reported = new Set<string>();

/**
 * `ignore` value for a Deno.test that needs `tool`: false when present;
 * otherwise true, with the reason printed once. Under CI a missing tool is
 * an error instead, because CI must run everything.
 */
export function needs(
  tool: string,
  path: string | null = which(tool),
): boolean {
  if (path) return false;
  if (Deno.env.get("CI")) {
    throw new Error(`${tool} is required under CI but was not found`);
  }
  if (!reported.has(tool)) {
    reported.add(tool);
    console.error(
      `note: ${tool} not installed; tests that need it are ignored`,
    );
  }
  return true;
}

/** Mosquitto from Debian lives in /usr/sbin, often not on PATH. */
export const MOSQUITTO = which("mosquitto") ??
  (exists("/usr/sbin/mosquitto") ? "/usr/sbin/mosquitto" : null);

export function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Collects a child's stderr/stdout lines and lets a test await one. */
export class LineLog {
  lines: string[] = [];
  #waiters: { re: RegExp; resolve: (l: string) => void }[] = [];

  push(line: string): void {
    this.lines.push(line);
    this.#waiters = this.#waiters.filter((w) => {
      if (w.re.test(line)) {
        w.resolve(line);
        return false;
      }
      return true;
    });
  }

  /** Resolves with the first line (already seen or future) matching `re`. */
  waitFor(re: RegExp, timeoutMs = 10_000): Promise<string> {
    const seen = this.lines.find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `no line matching ${re} within ${timeoutMs} ms:\n${
              this.lines.join("\n")
            }`,
          ),
        );
      }, timeoutMs);
      this.#waiters.push({
        re,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }
}

/** Pipe a ReadableStream of bytes into a LineLog (and optionally echo). */
export async function collectLines(
  stream: ReadableStream<Uint8Array>,
  log: LineLog,
): Promise<void> {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      log.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  }
  if (buf) log.push(buf);
}
