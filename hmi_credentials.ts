/**
 * Browser side of the HMI's MQTT login: fetches the browser account from
 * `GET /api/mqtt-credentials` (same origin, so HTTP Basic auth of the page
 * applies; never cached) for the islands to spread into `mqtt.connect`
 * options. Browser-safe: no Deno or Node APIs, bundled into the islands.
 *
 * @example
 * ```ts
 * const creds = await mqttCredentials();
 * const client = mqtt.connect(props.mqttWsUrl, { ...creds, timerVariant: "native" });
 * ```
 */

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
    if (res.status === 204 || res.status === 404) {
      await res.body?.cancel();
      return {};
    }
    if (!res.ok) {
      await res.body?.cancel();
      console.warn(`${CREDENTIALS_PATH}: HTTP ${res.status}`);
      return {};
    }
    const text = await res.text();
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
