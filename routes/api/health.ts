import { type Handlers, noStoreJson } from "../../fresh.ts";
import type { HmiState } from "../../hmi.ts";
import { redact } from "../../mqtt_secrets.ts";

/**
 * `GET /api/health`: liveness, recording and what the page is configured
 * with. Served without HTTP auth (for probes), so it carries no secret: no
 * credentials, the broker URL without userinfo.
 */
export const handler: Handlers<HmiState> = {
  GET(_req, ctx) {
    const { cfg, startedMs, manifest, recorder, history, authEnabled } =
      ctx.state;
    return noStoreJson({
      status: "ok",
      service: "hmi",
      uptime_s: Math.round((Date.now() - startedMs) / 1000),
      mqtt_ws_url: redact(cfg.mqttWsUrl),
      topic_prefix: cfg.topicPrefix,
      islands: Object.keys(manifest.islands),
      auth: authEnabled ? "basic" : "none",
      history: {
        recording: recorder.recording,
        ...recorder.counts,
        db_bytes: history.usedBytes(),
        max_bytes: history.maxBytes,
      },
    });
  },
};
