/**
 * The web HMI: builds the island bundles, then serves the Fresh-style app
 * (routes/, islands/, static/) on HMI_HOST:HMI_PORT. It also subscribes to
 * the broker at MQTT_URL and records telemetry and alarm events into
 * `${DATA_DIR}/history.db`, served by /api/history and /api/alarms.
 *
 * Security: with HMI_AUTH_FILE every path but /api/health needs HTTP Basic
 * auth; the browser's own MQTT account (MQTT_WS_USERNAME and its password)
 * is handed out only by /api/mqtt-credentials, never inline in a page.
 *
 * @example
 * ```ts
 * const hmi = await startHmi(cfg, console.log); // cfg: ConfigOf<typeof HMI_OPTIONS>
 * console.log(`http://127.0.0.1:${hmi.port}/`);
 * await hmi.close();
 * ```
 * As a program: `deno task hmi` (see `--help`).
 */
import type { ConfigOf } from "./cli.ts";
import { ConfigError, runMain, stopOnSignals } from "./cli.ts";
import { HMI_OPTIONS } from "./settings.ts";
import { buildIslands } from "./build.ts";
import { createApp, type IslandManifest } from "./fresh.ts";
import { History } from "./history.ts";
import { type HistoryRecorder, startRecorder } from "./hmi_recorder.ts";
import { loadMqttSecrets, readSecretFile, redact } from "./mqtt_secrets.ts";

export type HmiConfig = ConfigOf<typeof HMI_OPTIONS>;

/** Settings a caller may leave out (their defaults as in settings.ts). */
type OptionalKeys =
  | "historyMaxMb"
  | "mqttWsUsername"
  | "mqttWsPassword"
  | "mqttWsPasswordFile"
  | "hmiAuthFile";
/** What `startHmi` takes: HmiConfig with the newer settings optional. */
export type HmiStartConfig =
  & Omit<HmiConfig, OptionalKeys>
  & Partial<Pick<HmiConfig, OptionalKeys>>;

/** The browser's MQTT login, served by /api/mqtt-credentials. */
export interface BrowserMqttCredentials {
  username: string;
  password?: string;
}

/** What every route and page receives as `state`. */
export interface HmiState {
  cfg: HmiConfig;
  startedMs: number;
  manifest: IslandManifest;
  /** Trend history and alarm journal (recorded from MQTT by this server). */
  history: History;
  recorder: HistoryRecorder;
  /** Null: the browser connects anonymously. */
  browserMqtt: BrowserMqttCredentials | null;
  /** HTTP Basic auth in front of the HMI (HMI_AUTH_FILE). */
  authEnabled: boolean;
}

/** Served without HTTP auth: liveness probes (it carries no secret). */
export const OPEN_PATHS = ["/api/health"];

/**
 * Users of an HMI_AUTH_FILE: one `user:password` per line (the password
 * may contain `:`), blank lines and `#` comments skipped. Throws a one-line
 * Error naming the file and line (never its contents).
 */
export function parseAuthFile(
  text: string,
  path: string,
): { username: string; password: string }[] {
  const users: { username: string; password: string }[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "" || line.trimStart().startsWith("#")) return;
    const at = line.indexOf(":");
    if (at <= 0 || at === line.length - 1) {
      throw new Error(
        `HMI_AUTH_FILE ${path} line ${i + 1}: expected user:password`,
      );
    }
    users.push({ username: line.slice(0, at), password: line.slice(at + 1) });
  });
  if (users.length === 0) {
    throw new Error(`HMI_AUTH_FILE ${path}: no user:password lines`);
  }
  return users;
}

/** Defaults for the optional settings; config errors as ConfigError. */
function resolveConfig(given: HmiStartConfig): {
  cfg: HmiConfig;
  secrets: { password?: string; ca?: string };
  browserMqtt: BrowserMqttCredentials | null;
  authUsers: { username: string; password: string }[] | null;
} {
  const def = <K extends OptionalKeys>(k: K): HmiConfig[K] =>
    (given[k] ?? HMI_OPTIONS[k].default) as HmiConfig[K];
  const cfg: HmiConfig = {
    ...given,
    historyMaxMb: def("historyMaxMb"),
    mqttWsUsername: def("mqttWsUsername"),
    mqttWsPassword: def("mqttWsPassword"),
    mqttWsPasswordFile: def("mqttWsPasswordFile"),
    hmiAuthFile: def("hmiAuthFile"),
  };
  try {
    const secrets = loadMqttSecrets({
      password: cfg.mqttPassword,
      passwordFile: cfg.mqttPasswordFile,
      caFile: cfg.mqttCaFile,
    });
    const wsPassword = cfg.mqttWsPasswordFile
      ? readSecretFile(cfg.mqttWsPasswordFile, "MQTT_WS_PASSWORD_FILE")
      : cfg.mqttWsPassword || undefined;
    if (wsPassword && !cfg.mqttWsUsername) {
      throw new Error(
        "MQTT_WS_PASSWORD / MQTT_WS_PASSWORD_FILE needs MQTT_WS_USERNAME",
      );
    }
    const browserMqtt = cfg.mqttWsUsername
      ? { username: cfg.mqttWsUsername, password: wsPassword }
      : null;
    let authUsers = null;
    if (cfg.hmiAuthFile) {
      let text;
      try {
        text = Deno.readTextFileSync(cfg.hmiAuthFile);
      } catch (e) {
        throw new Error(
          `cannot read HMI_AUTH_FILE ${cfg.hmiAuthFile}: ${(e as Error).name}`,
        );
      }
      authUsers = parseAuthFile(text, cfg.hmiAuthFile);
    }
    return { cfg, secrets, browserMqtt, authUsers };
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}

const ROOT = new URL("./", import.meta.url);

/**
 * The Content-Security-Policy: scripts, styles and everything else only from
 * this origin; network connections only to this origin and the broker's
 * WebSocket.
 */
export function contentSecurityPolicy(mqttWsUrl: string): string {
  const u = new URL(mqttWsUrl);
  const ws = `${u.protocol}//${u.host}`;
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src 'self' ${ws}`,
    "worker-src 'none'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/**
 * Build the bundles and start serving. `close()` stops the server.
 * Throws ConfigError for unreadable or invalid secret, CA and auth files.
 */
export async function startHmi(
  given: HmiStartConfig,
  log: (l: string) => void = () => {},
): Promise<{ port: number; close(): Promise<void> }> {
  const { cfg, secrets, browserMqtt, authUsers } = resolveConfig(given);
  const { manifest } = await buildIslands({ root: ROOT, log });
  await Deno.mkdir(cfg.dataDir, { recursive: true });
  const dbPath = `${cfg.dataDir.replace(/\/+$/, "") || "."}/history.db`;
  // Prunes at open (whatever expired while the server was down) and on a timer.
  const history = new History({
    path: dbPath,
    maxBytes: cfg.historyMaxMb * 1024 * 1024,
    log,
  });
  let recorder: HistoryRecorder | null = null;
  let server: Deno.HttpServer<Deno.NetAddr> | null = null;
  const ac = new AbortController();
  try {
    // Not awaited: the page works (live) while the broker is unreachable.
    recorder = startRecorder({
      url: cfg.mqttUrl,
      username: cfg.mqttUsername,
      password: secrets.password,
      ca: secrets.ca,
      topicPrefix: cfg.topicPrefix,
      history,
      log,
    });
    const state: HmiState = {
      cfg,
      startedMs: Date.now(),
      manifest,
      history,
      recorder,
      browserMqtt,
      authEnabled: authUsers !== null,
    };
    const app = await createApp({
      root: ROOT,
      manifest,
      state,
      csp: contentSecurityPolicy(cfg.mqttWsUrl),
      auth: authUsers
        ? { realm: "Edge SCADA HMI", users: authUsers, open: OPEN_PATHS }
        : undefined,
    });
    let port = cfg.hmiPort;
    const listening = Promise.withResolvers<void>();
    server = Deno.serve({
      hostname: cfg.hmiHost,
      port: cfg.hmiPort,
      signal: ac.signal,
      onListen: (addr) => {
        port = addr.port;
        listening.resolve();
      },
      onError: (e) => {
        log(`hmi: request failed: ${(e as Error)?.message ?? e}`);
        return new Response("Internal server error\n", { status: 500 });
      },
    }, app.fetch);
    await listening.promise;
    log(
      `hmi: listening on http://${cfg.hmiHost}:${port}/ (broker ${
        redact(cfg.mqttWsUrl)
      }; history ${dbPath}, at most ${cfg.historyMaxMb} MB; ${
        authUsers
          ? `HTTP Basic auth, ${authUsers.length} user(s)`
          : "no HTTP auth"
      })`,
    );
    if (!authUsers && browserMqtt) {
      log(
        `hmi: warning: no HMI_AUTH_FILE, so anyone who can load the page gets MQTT user "${browserMqtt.username}" (use only on a trusted network)`,
      );
    }
    let closed: Promise<void> | null = null;
    const srv = server, rec = recorder;
    return {
      port,
      close() {
        closed ??= (async () => {
          ac.abort();
          await srv.finished;
          await rec.close();
          history.close();
        })();
        return closed;
      },
    };
  } catch (e) {
    ac.abort();
    if (server) await server.finished;
    await recorder?.close();
    history.close();
    throw e;
  }
}

if (import.meta.main) {
  await runMain(
    "hmi",
    "web HMI: live trend, values, alarms over MQTT/WebSocket",
    HMI_OPTIONS,
    async (cfg) => {
      const hmi = await startHmi(cfg, (l) => console.log(l));
      stopOnSignals(() => hmi.close());
    },
  );
}
