/**
 * The web HMI: builds the island bundles, then serves the Fresh-style app
 * (routes/, islands/, static/) on HMI_HOST:HMI_PORT. It also subscribes to
 * the broker at MQTT_URL and records telemetry and alarm events into
 * `${DATA_DIR}/history.db`, served by /api/history and /api/alarms.
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
import { ConfigError, runMain } from "./cli.ts";
import { HMI_OPTIONS } from "./settings.ts";
import { buildIslands } from "./build.ts";
import { createApp, type IslandManifest } from "./fresh.ts";
import { History } from "./history.ts";
import { type HistoryRecorder, startRecorder } from "./hmi_recorder.ts";
import { loadMqttSecrets } from "./mqtt_secrets.ts";

export type HmiConfig = ConfigOf<typeof HMI_OPTIONS>;

/** What every route and page receives as `state`. */
export interface HmiState {
  cfg: HmiConfig;
  startedMs: number;
  manifest: IslandManifest;
  /** Trend history and alarm journal (recorded from MQTT by this server). */
  history: History;
  recorder: HistoryRecorder;
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

/** Build the bundles and start serving. `close()` stops the server. */
export async function startHmi(
  cfg: HmiConfig,
  log: (l: string) => void = () => {},
): Promise<{ port: number; close(): Promise<void> }> {
  let secrets;
  try {
    secrets = loadMqttSecrets({
      password: cfg.mqttPassword,
      passwordFile: cfg.mqttPasswordFile,
      caFile: cfg.mqttCaFile,
    });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const { manifest } = await buildIslands({ root: ROOT, log });
  await Deno.mkdir(cfg.dataDir, { recursive: true });
  const dbPath = `${cfg.dataDir.replace(/\/+$/, "") || "."}/history.db`;
  const history = new History({ path: dbPath });
  let recorder: HistoryRecorder | null = null;
  let server: Deno.HttpServer<Deno.NetAddr> | null = null;
  const ac = new AbortController();
  try {
    history.prune(Date.now());
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
    };
    const app = await createApp({
      root: ROOT,
      manifest,
      state,
      csp: contentSecurityPolicy(cfg.mqttWsUrl),
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
      `hmi: listening on http://${cfg.hmiHost}:${port}/ (broker ${cfg.mqttWsUrl}; history ${dbPath})`,
    );
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
      const stop = () => {
        hmi.close().then(() => Deno.exit(0));
      };
      Deno.addSignalListener("SIGINT", stop);
      Deno.addSignalListener("SIGTERM", stop);
    },
  );
}
