import { type Handlers, noStoreJson } from "../../fresh.ts";
import type { HmiState } from "../../hmi.ts";

/**
 * `GET /api/mqtt-credentials`: the browser's own MQTT login
 * (MQTT_WS_USERNAME and its password, a read + command account), as
 * `{"username":...,"password":...}`; 204 when the browser connects
 * anonymously. Never cached (`no-store`), never inline in a page, and
 * behind HTTP Basic auth when HMI_AUTH_FILE is set: whoever can load the
 * HMI gets this account. The browser side is hmi_credentials.ts.
 */
export const handler: Handlers<HmiState> = {
  GET(_req, ctx) {
    const c = ctx.state.browserMqtt;
    if (!c) {
      return new Response(null, {
        status: 204,
        headers: { "Cache-Control": "no-store" },
      });
    }
    return noStoreJson(
      c.password === undefined
        ? { username: c.username }
        : { username: c.username, password: c.password },
    );
  },
};
