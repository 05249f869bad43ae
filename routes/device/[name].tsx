import type { Handlers, PageProps } from "../../fresh.ts";
import type { HmiState } from "../../hmi.ts";
import LiveHmi from "../../islands/LiveHmi.tsx";
import { TREND_WINDOW_MS } from "../../hmi_model.ts";
import { topicsFor } from "../../contract.ts";
import { isDeviceName } from "../../fleet_model.ts";

/** A device name that is not one topic-safe level: 404, never subscribed to. */
export const handler: Handlers<HmiState> = {
  GET(_req, ctx) {
    const name = ctx.params.name ?? "";
    if (!isDeviceName(name)) return ctx.render({ name: null }, { status: 404 });
    return ctx.render({ name });
  },
};

/** The single-device view of one fleet device: LiveHmi under `{prefix}/{name}`. */
export default function Device(
  { state, data, url }: PageProps<{ name: string | null }, HmiState>,
) {
  const { cfg } = state;
  const name = data?.name ?? null;
  if (name === null) {
    return (
      <main class="page">
        <h1>Not found</h1>
        <p>
          No device at{" "}
          <code>{url.pathname}</code>: a device name is one topic level of
          letters, digits, <code>_ . -</code>.{" "}
          <a href="/fleet">Back to the fleet</a>
        </p>
      </main>
    );
  }
  const prefix = `${cfg.topicPrefix}/${name}`;
  const topics = topicsFor(prefix);
  return (
    <main class="page">
      <header class="top">
        <h1>
          Device <span id="device-name">{name}</span>
        </h1>
        <p class="sub">
          Topic prefix <code>{prefix}</code>, alarm above {cfg.raiseAboveC}{" "}
          °C, clears below {cfg.clearBelowC} °C
        </p>
      </header>
      <LiveHmi
        mqttWsUrl={cfg.mqttWsUrl}
        topicPrefix={prefix}
        device={name}
        fleetPrefix={cfg.topicPrefix}
        raiseAboveC={cfg.raiseAboveC}
        clearBelowC={cfg.clearBelowC}
        intervalMs={cfg.intervalMs}
        windowMs={TREND_WINDOW_MS}
      />
      <footer class="foot">
        Broker <code>{cfg.mqttWsUrl}</code>; topics{" "}
        <code>{topics.telemetry}</code>, <code>{topics.alarms}</code>,{" "}
        <code>{topics.status}</code>.
      </footer>
    </main>
  );
}
