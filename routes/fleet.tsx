import type { PageProps } from "../fresh.ts";
import type { HmiState } from "../hmi.ts";
import FleetOverview from "../islands/FleetOverview.tsx";
import { fleetTopics } from "../fleet_model.ts";

/** The fleet overview: one row per device of the fleet pollers. */
export default function Fleet({ state }: PageProps<unknown, HmiState>) {
  const { cfg } = state;
  const t = fleetTopics(cfg.topicPrefix);
  return (
    <main class="page">
      <header class="top">
        <h1>Fleet overview</h1>
        <p class="sub">
          Devices under{" "}
          <code>{cfg.topicPrefix}/</code>; a value is stale after 3 poll
          intervals. Select a row for the device's trend, alarms and controls.
        </p>
      </header>
      <FleetOverview
        mqttWsUrl={cfg.mqttWsUrl}
        topicPrefix={cfg.topicPrefix}
        intervalMs={cfg.intervalMs}
      />
      <footer class="foot">
        Broker <code>{cfg.mqttWsUrl}</code>; topics <code>{t.telemetry}</code>,
        {" "}
        <code>{t.alarmsState}</code>, <code>{t.status}</code>,{" "}
        <code>{t.pollers}</code>.
      </footer>
    </main>
  );
}
