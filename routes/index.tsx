import type { PageProps } from "../fresh.ts";
import type { HmiState } from "../hmi.ts";
import LiveHmi from "../islands/LiveHmi.tsx";
import { TREND_WINDOW_MS } from "../hmi_model.ts";
import { topicsFor } from "../contract.ts";

/** The operator page: server-rendered frame around the live island. */
export default function Home({ state }: PageProps<unknown, HmiState>) {
  const { cfg } = state;
  const topics = topicsFor(cfg.topicPrefix);
  return (
    <main class="page">
      <header class="top">
        <h1>Edge SCADA HMI</h1>
        <p class="sub">
          Topic prefix <code>{cfg.topicPrefix}</code>, poll every{" "}
          {cfg.intervalMs / 1000} s, alarm above {cfg.raiseAboveC}{" "}
          °C, clears below {cfg.clearBelowC} °C
        </p>
      </header>
      <LiveHmi
        mqttWsUrl={cfg.mqttWsUrl}
        topicPrefix={cfg.topicPrefix}
        raiseAboveC={cfg.raiseAboveC}
        clearBelowC={cfg.clearBelowC}
        intervalMs={cfg.intervalMs}
        windowMs={TREND_WINDOW_MS}
      />
      <footer class="foot">
        Broker <code>{cfg.mqttWsUrl}</code>; topics{" "}
        <code>{topics.telemetry}</code>, <code>{topics.alarms}</code>,{" "}
        <code>{topics.status}</code>. <a href="/api/health">health</a>
      </footer>
    </main>
  );
}
