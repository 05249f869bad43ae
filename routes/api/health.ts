import type { Handlers } from "../../fresh.ts";
import type { HmiState } from "../../hmi.ts";

/** `GET /api/health`: liveness and what the page is configured with. */
export const handler: Handlers<HmiState> = {
  GET(_req, ctx) {
    const { cfg, startedMs, manifest, recorder } = ctx.state;
    return Response.json({
      status: "ok",
      service: "hmi",
      uptime_s: Math.round((Date.now() - startedMs) / 1000),
      mqtt_ws_url: cfg.mqttWsUrl,
      topic_prefix: cfg.topicPrefix,
      islands: Object.keys(manifest.islands),
      history: { recording: recorder.recording, ...recorder.counts },
    }, { headers: { "Cache-Control": "no-store" } });
  },
};
