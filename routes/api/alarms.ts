import type { Handlers } from "../../fresh.ts";
import type { HmiState } from "../../hmi.ts";
import { parseDeviceParam, parseLimit } from "../../history.ts";

const NO_STORE = { "Cache-Control": "no-store" };

/**
 * `GET /api/alarms?limit=N` (default 50, 1..1000): the newest N alarm events
 * (raised, cleared, acked) this server recorded, newest first.
 * `device=<name>` selects a fleet device's events; without it, the single
 * device's.
 */
export const handler: Handlers<HmiState> = {
  GET(_req, ctx) {
    const p = parseLimit(ctx.url.searchParams.get("limit"));
    if (!p.ok) {
      return Response.json({ error: p.error }, {
        status: 400,
        headers: NO_STORE,
      });
    }
    const d = parseDeviceParam(ctx.url.searchParams.get("device"));
    if (!d.ok) {
      return Response.json({ error: d.error }, {
        status: 400,
        headers: NO_STORE,
      });
    }
    return Response.json(ctx.state.history.recentAlarms(p.value, d.value), {
      headers: NO_STORE,
    });
  },
};
