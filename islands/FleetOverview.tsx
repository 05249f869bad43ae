/**
 * The fleet overview island: one row per device of a fleet poller
 * (`{prefix}/{name}/...` topics), with quality, temperature, power, active
 * alarms and online/offline; problems first, a filter box, and a link from
 * each row to the device's own page (/device/{name}).
 *
 * Built to stay fast with 1000 devices at 1 Hz:
 * - every message is validated (contract.ts) and folded into a Map in place
 *   (fleet_model.ts); nothing is rendered per message;
 * - renders are batched: at most one per RENDER_EVERY_MS, on an animation
 *   frame (none at all while the tab is hidden);
 * - only the rows in view (plus an overscan) are in the DOM: the table is
 *   windowed over fixed-height rows, with spacer rows for the rest;
 * - telemetry is subscribed with QoS 0 (no acknowledgement per message from
 *   the browser); the retained alarm state and status with QoS 1.
 * mqtt.js is loaded by dynamic import after hydration, as in LiveHmi.
 */
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { MqttClient } from "mqtt";
import { connectBrowserMqtt } from "../hmi_credentials.ts";
import {
  applyFleetMessage,
  deviceHref,
  type FleetProps,
  type FleetRow,
  fleetRows,
  type FleetSort,
  fleetTopics,
  newFleetState,
  visibleRange,
} from "../fleet_model.ts";
import {
  type BrokerState,
  brokerStateAfter,
  flushRejectLog,
  formatDuration,
  formatNumber,
  newRejectLog,
  noteRejection,
} from "../hmi_model.ts";

/** At most one render per this many ms (plus one animation frame). */
const RENDER_EVERY_MS = 250;
/** Row height in px; must match `.fleet-table tbody tr.row` in styles.css. */
const ROW_PX = 30;

const SORT_LABEL: Record<FleetSort, string> = {
  severity: "Problems first",
  name: "Name",
  temp: "Temperature",
  power: "Power",
};

function qualityText(r: FleetRow): string {
  switch (r.quality) {
    case "none":
      return "no data";
    case "good":
      return "good";
    case "bad":
      return `BAD: ${r.error ?? ""}`;
    case "stale":
      return `STALE ${formatDuration(r.ageMs)}`;
  }
}

function alarmText(r: FleetRow): string {
  if (r.active === 0) {
    return r.unacked > 0 ? `${r.unacked} to acknowledge` : "\u2014";
  }
  const names = r.activeNames.join(", ");
  return r.unacked > 0 ? `${names} (unacknowledged)` : names;
}

function Row({ r }: { r: FleetRow }) {
  const value = (v: number | null, d: number) =>
    r.quality === "good" ? formatNumber(v, d) : r.quality;
  return (
    <tr
      class={`row sev-${r.severity} q-${r.quality} ${
        r.active ? "alarm" : ""
      } ${r.online}`}
      data-name={r.name}
      data-quality={r.quality}
      data-online={r.online}
      data-alarms={String(r.active)}
    >
      <td class="name">
        <a href={deviceHref(r.name)}>{r.name}</a>
      </td>
      <td class="online">{r.online}</td>
      <td class="quality" title={r.error ?? undefined}>{qualityText(r)}</td>
      <td class="num temp">{value(r.tempC, 1)}</td>
      <td class="num power">{value(r.powerW, 0)}</td>
      <td class="alarms">{alarmText(r)}</td>
    </tr>
  );
}

export default function FleetOverview(props: FleetProps) {
  const fleet = useRef(newFleetState()).current;
  const rejectLog = useRef(newRejectLog()).current;
  const [renders, setRenders] = useState(0);
  const [broker, setBroker] = useState<BrokerState>("connecting");
  const [filter, setFilter] = useState("");
  const [sort, setSort] = useState<FleetSort>("severity");
  const [win, setWin] = useState({ top: 0, height: 600 });
  const scroller = useRef<HTMLDivElement>(null);

  useEffect(() => {
    let closed = false;
    let timer: ReturnType<typeof setTimeout> | 0 = 0;
    let frame = 0;
    let lastRender = 0;
    /** Coalesce: one render per RENDER_EVERY_MS, on an animation frame. */
    const schedule = () => {
      if (timer || frame || closed) return;
      const wait = Math.max(0, lastRender + RENDER_EVERY_MS - Date.now());
      timer = setTimeout(() => {
        timer = 0;
        frame = requestAnimationFrame(() => {
          frame = 0;
          lastRender = Date.now();
          setRenders((n) => n + 1);
        });
      }, wait);
    };
    const topics = fleetTopics(props.topicPrefix);
    let client: MqttClient | null = null;
    connectBrowserMqtt(
      props.mqttWsUrl,
      "hmi-fleet",
      (ev) => setBroker((b) => brokerStateAfter(b, ev)),
    ).then(
      (c) => {
        if (closed) return void c.end(true);
        client = c;
        c.on("connect", () => {
          c.subscribe({
            [topics.telemetry]: { qos: 0 },
            [topics.alarmsState]: { qos: 1 },
            [topics.status]: { qos: 1 },
            [topics.pollers]: { qos: 1 },
          });
        });
        c.on("message", (topic: string, payload: Uint8Array) => {
          const now = Date.now();
          const before = fleet.rejected;
          applyFleetMessage(fleet, props.topicPrefix, topic, payload, now);
          if (fleet.rejected !== before && fleet.lastRejected) {
            // Logged, rate-limited (hmi_model.ts noteRejection); never shown.
            const { topic: t, error } = fleet.lastRejected;
            const line = noteRejection(rejectLog, t, error, now);
            if (line) console.warn(line);
          }
          schedule();
        });
      },
    ).catch(() => setBroker("offline"));
    // Staleness moves with the clock even when nothing arrives.
    const tick = setInterval(() => {
      const line = flushRejectLog(rejectLog, Date.now());
      if (line) console.warn(line);
      schedule();
    }, 1000);
    return () => {
      closed = true;
      clearInterval(tick);
      if (timer) clearTimeout(timer);
      if (frame) cancelAnimationFrame(frame);
      client?.end(true);
    };
  }, []);

  // Window of rows in view: follow scrolling and resizing (once per frame).
  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    let frame = 0;
    const measure = () => {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        // The table grows with its rows up to the scroller's max-height:
        // while it is short, size the window by the browser window.
        setWin({
          top: el.scrollTop,
          height: Math.max(el.clientHeight, globalThis.innerHeight),
        });
      });
    };
    el.addEventListener("scroll", measure, { passive: true });
    globalThis.addEventListener("resize", measure);
    measure();
    return () => {
      el.removeEventListener("scroll", measure);
      globalThis.removeEventListener("resize", measure);
      if (frame) cancelAnimationFrame(frame);
    };
  }, []);

  const { rows, summary } = useMemo(
    () =>
      fleetRows(fleet, Date.now(), props.intervalMs, {
        filter,
        sort,
        connected: broker === "connected",
      }),
    [renders, filter, sort, broker],
  );
  const { start, end } = visibleRange(rows.length, win.top, win.height, ROW_PX);
  const shown = rows.slice(start, end);

  const open = (e: MouseEvent) => {
    const t = e.target as HTMLElement;
    if (t.closest("a")) return; // the link itself navigates
    const name = t.closest("tr")?.dataset.name;
    if (name) location.assign(deviceHref(name));
  };

  return (
    <div class="fleet">
      <section class="conn" aria-label="Fleet summary">
        <span class={`pill broker-${broker}`} id="broker-state">
          Broker: {broker}
        </span>
        <span class="pill" id="fleet-count">{summary.total} devices</span>
        <span
          class={`pill tone-${
            broker !== "connected"
              ? "unknown"
              : summary.alarms
              ? "alarm"
              : summary.total
              ? "good"
              : "unknown"
          }`}
          id="fleet-alarms"
        >
          {summary.alarms} in alarm
        </span>
        <span class={`pill ${summary.bad ? "warn" : ""}`} id="fleet-bad">
          {summary.bad} bad
        </span>
        <span class={`pill ${summary.stale ? "warn" : ""}`} id="fleet-stale">
          {summary.stale} stale
        </span>
        <span
          class={`pill ${summary.offline ? "warn" : ""}`}
          id="fleet-offline"
        >
          {summary.offline} offline
        </span>
        {fleet.rejected > 0 && (
          <span class="pill warn" id="rejected">
            {fleet.rejected} invalid message{fleet.rejected > 1 ? "s" : ""}{" "}
            ignored
          </span>
        )}
      </section>
      <section class="fleet-tools" aria-label="Filter and sort">
        <label>
          Filter{" "}
          <input
            id="fleet-filter"
            type="search"
            placeholder="name, or alarm / bad / stale / offline"
            value={filter}
            onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          Sort{" "}
          <select
            id="fleet-sort"
            value={sort}
            onChange={(e) =>
              setSort((e.target as HTMLSelectElement).value as FleetSort)}
          >
            {(Object.keys(SORT_LABEL) as FleetSort[]).map((k) => (
              <option key={k} value={k}>{SORT_LABEL[k]}</option>
            ))}
          </select>
        </label>
        <span class="muted" id="fleet-shown">
          {rows.length === summary.total
            ? `${rows.length} rows`
            : `${rows.length} of ${summary.total} rows`}
        </span>
      </section>
      <div class="fleet-scroll" ref={scroller}>
        <table
          id="fleet-table"
          class="fleet-table"
          data-rows={String(rows.length)}
          data-devices={String(summary.total)}
          data-good={String(summary.good)}
          data-rendered={String(shown.length)}
          data-renders={String(renders)}
        >
          <thead>
            <tr>
              <th class="name">Device</th>
              <th class="online">Poller</th>
              <th class="quality">Quality</th>
              <th class="num">Temp (°C)</th>
              <th class="num">Power (W)</th>
              <th class="alarms">Active alarms</th>
            </tr>
          </thead>
          <tbody onClick={open}>
            {rows.length === 0 && (
              <tr>
                <td colSpan={6} class="empty">
                  {summary.total === 0
                    ? `Waiting for devices on ${props.topicPrefix}/+/telemetry`
                    : "No device matches the filter"}
                </td>
              </tr>
            )}
            {start > 0 && (
              <tr class="spacer" aria-hidden="true">
                <td colSpan={6} style={{ height: `${start * ROW_PX}px` }} />
              </tr>
            )}
            {shown.map((r) => <Row key={r.name} r={r} />)}
            {end < rows.length && (
              <tr class="spacer" aria-hidden="true">
                <td
                  colSpan={6}
                  style={{ height: `${(rows.length - end) * ROW_PX}px` }}
                />
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </div>
  );
}
