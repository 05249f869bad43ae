import { type Handlers, noStoreJson } from "../../fresh.ts";
import type { HmiState } from "../../hmi.ts";
import {
  MAX_HISTORY_ROWS,
  parseDeviceParam,
  parseMinutes,
} from "../../history.ts";
import type { Telemetry } from "../../contract.ts";

/**
 * `GET /api/history?minutes=N` (default 10, 1..10080): the telemetry this
 * server recorded in the last N minutes, oldest first, as a JSON array of
 * telemetry payloads. A message recorded twice (MQTT QoS 1 redelivery) is
 * returned once. `device=<name>` selects a fleet device's telemetry
 * (`{prefix}/{name}/telemetry`); without it, the single device's.
 *
 * At most MAX_HISTORY_ROWS (20,000) rows, the newest: `X-History-Truncated`
 * says `true` when older rows of the window were left out, and then
 * `X-History-From` is the `ts` of the oldest row returned (ask again with a
 * shorter window, or accept the gap).
 */
export const handler: Handlers<HmiState> = {
  GET(_req, ctx) {
    const p = parseMinutes(ctx.url.searchParams.get("minutes"));
    if (!p.ok) return noStoreJson({ error: p.error }, 400);
    const d = parseDeviceParam(ctx.url.searchParams.get("device"));
    if (!d.ok) return noStoreJson({ error: d.error }, 400);
    const { rows, truncated } = ctx.state.history.telemetryWindow(
      Date.now() - p.value * 60_000,
      MAX_HISTORY_ROWS,
      d.value,
    );
    const seen = new Set<string>();
    const out: Telemetry[] = [];
    for (const t of rows) {
      const k = `${t.device_id}/${t.ts}/${t.seq}`;
      if (seen.has(k)) continue;
      seen.add(k);
      out.push(t);
    }
    const headers: Record<string, string> = {
      "X-History-Truncated": String(truncated),
    };
    if (truncated && out.length > 0) headers["X-History-From"] = out[0].ts;
    return noStoreJson(out, 200, headers);
  },
};
