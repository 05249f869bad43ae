/**
 * Shared test plumbing: free ports, waiting for events, and detecting the
 * optional real peers (Mosquitto, mbpoll, Chromium, pymodbus).
 */
import net from "node:net";

/**
 * Where test ports come from. A port that was free a moment ago is not
 * reserved: any outgoing connection (ours, a child's, another job's on this
 * shared machine) may be given it as its local port before our server
 * listens (CI saw EADDRINUSE that way). Outgoing connections take their
 * ports from the kernel's ephemeral range, so test ports are picked below
 * it, where only an explicit listener can take them; and this process never
 * hands out the same port twice.
 */
const TEST_PORT_FLOOR = 20_000;
const handedOut = new Set<number>();

/** [low, high] of Linux's ephemeral range, or null where unknown. */
export function ephemeralPortRange(): [number, number] | null {
  try {
    const text = Deno.readTextFileSync(
      "/proc/sys/net/ipv4/ip_local_port_range",
    );
    const [low, high] = text.trim().split(/\s+/).map(Number);
    return Number.isInteger(low) && Number.isInteger(high) ? [low, high] : null;
  } catch {
    return null;
  }
}

const ephemeral = ephemeralPortRange();
// Enough room below the ephemeral range, or fall back to the OS's choice.
const testPortCeiling = ephemeral && ephemeral[0] - TEST_PORT_FLOOR >= 2000
  ? ephemeral[0] - 1
  : null;

function osPickedPort(): Promise<number> {
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

const isFree = (port: number) =>
  assertPortFree(port).then(() => true, () => false);

/** The first of `n` consecutive candidate ports (none handed out yet). */
async function candidateRun(n: number): Promise<number | null> {
  const base = testPortCeiling
    ? TEST_PORT_FLOOR +
      Math.floor(Math.random() * (testPortCeiling - TEST_PORT_FLOOR - n + 2))
    : await osPickedPort();
  if (base + n - 1 > 65535) return null;
  for (let i = 0; i < n; i++) {
    if (handedOut.has(base + i) || !await isFree(base + i)) return null;
  }
  return base;
}

/**
 * The first of `n` consecutive TCP ports on 127.0.0.1 that are free now and
 * were not handed out before in this process (the simulator's MODBUS_PORT + i
 * devices use runs).
 */
export async function freePortRun(n: number, attempts = 50): Promise<number> {
  for (let a = 0; a < attempts; a++) {
    const base = await candidateRun(n);
    if (base === null) continue;
    for (let i = 0; i < n; i++) handedOut.add(base + i);
    return base;
  }
  throw new Error(`no ${n} consecutive free ports after ${attempts} attempts`);
}

/** A TCP port on 127.0.0.1 that is free now, outside the ephemeral range. */
export function freePort(): Promise<number> {
  return freePortRun(1);
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
