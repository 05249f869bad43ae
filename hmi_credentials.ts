/**
 * Browser side of the HMI's MQTT connection: the login (the browser account
 * from
 * `GET /api/mqtt-credentials`, same origin, so HTTP Basic auth of the page
 * applies; never cached) for the islands to spread into `mqtt.connect`
 * options, and reconnect backoff. Browser-safe: no Deno or Node APIs,
 * bundled into the islands.
 *
 * @example
 * ```ts
 * const creds = await mqttCredentials();
 * const client = mqtt.connect(props.mqttWsUrl, { ...creds, timerVariant: "native" });
 * ```
 */

import type { MqttClient } from "mqtt";
import { backoffDelayMs } from "./schedule.ts";

/** What `mqtt.connect` takes as its `username` / `password` options. */
export interface MqttCredentials {
  username?: string;
  password?: string;
}

/** The endpoint serving them (routes/api/mqtt-credentials.ts). */
export const CREDENTIALS_PATH = "/api/mqtt-credentials";

/**
 * The browser's MQTT credentials, or `{}` (connect anonymously) when the
 * server has none (204, 404, empty body). Never rejects: on any other
 * failure it warns on the console and returns `{}`, so the page still
 * connects and the broker's refusal shows in the broker status.
 */
export async function mqttCredentials(
  fetchFn: typeof fetch = globalThis.fetch.bind(globalThis),
): Promise<MqttCredentials> {
  try {
    const res = await fetchFn(CREDENTIALS_PATH, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" },
    });
    // Read the body to its end in every case: cancelling it shows in the
    // browser as an aborted request (net::ERR_ABORTED).
    const text = await res.text();
    if (res.status === 204 || res.status === 404) return {};
    if (!res.ok) {
      console.warn(`${CREDENTIALS_PATH}: HTTP ${res.status}`);
      return {};
    }
    if (text.trim() === "") return {};
    const j = JSON.parse(text) as Record<string, unknown>;
    const out: MqttCredentials = {};
    if (typeof j.username === "string" && j.username) out.username = j.username;
    if (typeof j.password === "string") out.password = j.password;
    return out;
  } catch (e) {
    console.warn(`${CREDENTIALS_PATH}: ${(e as Error)?.message ?? e}`);
    return {};
  }
}

/** Browser reconnects: first after 1 s, doubling to 10 s, +/-10 % jitter. */
export const BROWSER_RECONNECT = { baseMs: 1000, maxMs: 10_000, jitter: 0.1 };

/**
 * Exponential backoff for an mqtt.js client, which itself only knows a
 * fixed `reconnectPeriod`: each failed attempt doubles the period (with
 * jitter, so many open pages do not reconnect in step after a broker
 * restart), a successful connect resets it.
 */
export function backOffReconnects(
  client: {
    options: { reconnectPeriod?: number };
    on(ev: "connect" | "reconnect", f: () => void): unknown;
  },
  random: () => number = Math.random,
): void {
  let failures = 0;
  client.on("reconnect", () => {
    failures++;
    client.options.reconnectPeriod = backoffDelayMs(
      failures + 1,
      BROWSER_RECONNECT,
      random(),
    );
  });
  client.on("connect", () => {
    failures = 0;
    client.options.reconnectPeriod = BROWSER_RECONNECT.baseMs;
  });
}

/** The mqtt.js client events the islands show as the broker connection. */
export const BROKER_EVENTS = [
  "connect",
  "reconnect",
  "close",
  "offline",
  "error",
] as const;
export type BrokerEvent = typeof BROKER_EVENTS[number];

/**
 * The islands' MQTT-over-WebSocket connection: loads mqtt.js's browser
 * build (a separate chunk, after hydration), logs in with the account from
 * /api/mqtt-credentials, backs off reconnects, and reports every broker
 * lifecycle event to `onEvent`.
 */
export async function connectBrowserMqtt(
  url: string,
  clientIdPrefix: string,
  onEvent: (ev: BrokerEvent) => void,
): Promise<MqttClient> {
  const [mod, creds] = await Promise.all([
    import("mqtt/dist/mqtt.esm"),
    mqttCredentials(),
  ]);
  const mqtt = (mod.default ?? mod) as unknown as {
    connect(url: string, o: Record<string, unknown>): MqttClient;
  };
  const client = mqtt.connect(url, {
    ...creds,
    // The default worker timers need a blob: worker, which the CSP blocks.
    timerVariant: "native",
    reconnectPeriod: BROWSER_RECONNECT.baseMs,
    connectTimeout: 5000,
    clientId: `${clientIdPrefix}-${Math.random().toString(16).slice(2, 10)}`,
  });
  backOffReconnects(client);
  for (const ev of BROKER_EVENTS) client.on(ev, () => onEvent(ev));
  return client;
}
