import { type Handlers, noStoreJson } from "../../fresh.ts";
import type { HmiState } from "../../hmi.ts";
import { parseDeviceParam, parseLimit } from "../../history.ts";

/**
 * `GET /api/alarms?limit=N` (default 50, 1..1000): the newest N alarm events
 * (raised, cleared, acked) this server recorded, newest first.
 * `device=<name>` selects a fleet device's events; without it, the single
 * device's.
 */
export const handler: Handlers<HmiState> = {
  GET(_req, ctx) {
    const p = parseLimit(ctx.url.searchParams.get("limit"));
    if (!p.ok) return noStoreJson({ error: p.error }, 400);
    const d = parseDeviceParam(ctx.url.searchParams.get("device"));
    if (!d.ok) return noStoreJson({ error: d.error }, 400);
    return noStoreJson(ctx.state.history.recentAlarms(p.value, d.value));
  },
};
