/**
 * The live HMI island: subscribes to the device's MQTT topics over WebSocket
 * and shows the trend, current values, alarm list and connection state.
 * Rendered on the server with its initial (disconnected) state, hydrated in
 * the browser. Chart.js and mqtt.js are loaded by dynamic import, after
 * hydration, so the first-load JavaScript stays small.
 *
 * Every payload goes through contract.ts's validating parsers; anything
 * rejected is counted, never shown.
 */
import { useEffect, useReducer, useRef } from "preact/hooks";
import {
  parseAlarmEvent,
  parseStatus,
  parseTelemetry,
  type Status,
  topicsFor,
} from "../contract.ts";
import {
  alarmDurationMs,
  type AlarmRow,
  type BrokerState,
  brokerStateAfter,
  foldAlarm,
  foldStatus,
  formatDuration,
  formatLocalTime,
  formatNumber,
  type HmiProps,
  type LastTelemetry,
  prunePoints,
  pushPoint,
  type TrendPoint,
  trendSample,
  VALUE_FIELDS,
  valueView,
} from "../hmi_model.ts";
import type { TrendCharts } from "../hmi_chart.ts";

interface State {
  broker: BrokerState;
  status: Status | null;
  last: LastTelemetry | null;
  alarms: AlarmRow[];
  points: number;
  rejected: number;
  nowMs: number;
  chartError: string | null;
}

type Action =
  | {
    type: "broker";
    event: "connect" | "reconnect" | "close" | "offline" | "error";
  }
  | { type: "status"; status: Status }
  | { type: "telemetry"; last: LastTelemetry; points: number }
  | { type: "alarm"; rows: (rows: AlarmRow[]) => AlarmRow[] }
  | { type: "rejected" }
  | { type: "tick"; nowMs: number; points: number }
  | { type: "chartError"; error: string };

function reduce(s: State, a: Action): State {
  switch (a.type) {
    case "broker":
      return { ...s, broker: brokerStateAfter(s.broker, a.event) };
    case "status":
      return { ...s, status: foldStatus(s.status, a.status) };
    case "telemetry":
      return { ...s, last: a.last, points: a.points, nowMs: a.last.receivedMs };
    case "alarm":
      return { ...s, alarms: a.rows(s.alarms) };
    case "rejected":
      return { ...s, rejected: s.rejected + 1 };
    case "tick":
      return { ...s, nowMs: a.nowMs, points: a.points };
    case "chartError":
      return { ...s, chartError: a.error };
  }
}

const BROKER_LABEL: Record<BrokerState, string> = {
  connecting: "connecting",
  connected: "connected",
  reconnecting: "reconnecting",
  offline: "offline",
};

export default function LiveHmi(props: HmiProps) {
  const [s, dispatch] = useReducer(reduce, {
    broker: "connecting",
    status: null,
    last: null,
    alarms: [],
    points: 0,
    rejected: 0,
    nowMs: 0,
    chartError: null,
  });
  const tempCanvas = useRef<HTMLCanvasElement>(null);
  const powerCanvas = useRef<HTMLCanvasElement>(null);

  useEffect(() => {
    const series = {
      temp: [] as TrendPoint[],
      power: [] as TrendPoint[],
      soc: [] as TrendPoint[],
    };
    let charts: TrendCharts | null = null;
    let frame = 0;
    let closed = false;
    const redraw = () => {
      if (frame || !charts) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        charts?.update(Date.now());
      });
    };
    const prune = (now: number) => {
      for (const d of [series.temp, series.power, series.soc]) {
        prunePoints(d, now, props.windowMs);
      }
    };

    import("../hmi_chart.ts").then(({ createTrendCharts }) => {
      if (closed || !tempCanvas.current || !powerCanvas.current) return;
      charts = createTrendCharts(
        tempCanvas.current,
        powerCanvas.current,
        series,
        props,
      );
      redraw();
    }).catch((e) =>
      dispatch({ type: "chartError", error: String(e?.message ?? e) })
    );

    const topics = topicsFor(props.topicPrefix);
    // deno-lint-ignore no-explicit-any
    let client: any = null;
    import("mqtt/dist/mqtt.esm").then((mod) => {
      if (closed) return;
      const mqtt = mod.default ?? mod;
      client = mqtt.connect(props.mqttWsUrl, {
        // The default worker timers need a blob: worker, which the CSP blocks.
        timerVariant: "native",
        reconnectPeriod: 1000,
        connectTimeout: 5000,
        clientId: `hmi-${Math.random().toString(16).slice(2, 10)}`,
      });
      for (
        const ev of [
          "connect",
          "reconnect",
          "close",
          "offline",
          "error",
        ] as const
      ) {
        client.on(ev, () => dispatch({ type: "broker", event: ev }));
      }
      client.on("connect", () => {
        client.subscribe([topics.telemetry, topics.alarms, topics.status], {
          qos: 1,
        });
      });
      client.on("message", (topic: string, payload: Uint8Array) => {
        const now = Date.now();
        if (topic === topics.telemetry) {
          const r = parseTelemetry(payload);
          if (!r.ok) return dispatch({ type: "rejected" });
          const p = trendSample(r.value);
          pushPoint(series.temp, { x: p.x, y: p.temp }, now, props.windowMs);
          pushPoint(series.power, { x: p.x, y: p.power }, now, props.windowMs);
          pushPoint(series.soc, { x: p.x, y: p.soc }, now, props.windowMs);
          redraw();
          dispatch({
            type: "telemetry",
            last: { msg: r.value, receivedMs: now },
            points: series.temp.length,
          });
        } else if (topic === topics.alarms) {
          const r = parseAlarmEvent(payload);
          if (!r.ok) return dispatch({ type: "rejected" });
          dispatch({ type: "alarm", rows: (rows) => foldAlarm(rows, r.value) });
        } else if (topic === topics.status) {
          const r = parseStatus(payload);
          if (!r.ok) return dispatch({ type: "rejected" });
          dispatch({ type: "status", status: r.value });
        }
      });
    }).catch(() => dispatch({ type: "broker", event: "offline" }));

    const tick = setInterval(() => {
      const now = Date.now();
      prune(now);
      redraw();
      dispatch({ type: "tick", nowMs: now, points: series.temp.length });
    }, 1000);

    return () => {
      closed = true;
      clearInterval(tick);
      if (frame) cancelAnimationFrame(frame);
      client?.end(true);
      charts?.destroy();
    };
  }, []);

  const view = valueView(s.last, s.nowMs, props.intervalMs);
  const poller = s.status?.state ?? "unknown";
  const active = s.alarms.filter((r) => r.active).length;

  return (
    <div class="hmi">
      <section class="conn" aria-label="Connection state">
        <span class={`pill broker-${s.broker}`} id="broker-state">
          Broker: {BROKER_LABEL[s.broker]}
        </span>
        <span class={`pill poller-${poller}`} id="poller-state">
          Poller: {poller}
        </span>
        <span
          class={`pill ${active ? "alarm-on" : "alarm-off"}`}
          id="alarm-count"
        >
          {active
            ? `${active} active alarm${active > 1 ? "s" : ""}`
            : "no active alarms"}
        </span>
        {s.rejected > 0 && (
          <span class="pill warn" id="rejected">
            {s.rejected} invalid message{s.rejected > 1 ? "s" : ""} ignored
          </span>
        )}
      </section>

      <section class="values" aria-label="Current values">
        <div class={`quality q-${view.kind}`} id="quality">
          {view.kind === "none" && "No data yet"}
          {view.kind === "fresh" &&
            `Quality: good, ${formatLocalTime(Date.parse(view.ts))}`}
          {view.kind === "stale" &&
            `STALE: no data for ${formatDuration(view.ageMs)} (last ${
              formatLocalTime(Date.parse(view.ts))
            })`}
          {view.kind === "bad" &&
            `BAD QUALITY at ${
              formatLocalTime(Date.parse(view.ts))
            }: ${view.error}`}
        </div>
        <dl class="grid">
          {VALUE_FIELDS.map((f) => (
            <div class={`value v-${view.kind}`} key={f.field}>
              <dt>{f.label}</dt>
              <dd>
                <span class="num" id={`v-${f.field}`}>
                  {view.kind === "fresh"
                    ? formatNumber(view.values[f.field], f.decimals)
                    : view.kind === "stale"
                    ? "stale"
                    : view.kind === "bad"
                    ? "bad"
                    : "\u2014"}
                </span>{" "}
                <span class="unit">{f.unit}</span>
                {view.kind === "stale" && view.values && (
                  <small class="last">
                    last {formatNumber(view.values[f.field], f.decimals)}
                  </small>
                )}
              </dd>
            </div>
          ))}
        </dl>
      </section>

      <section class="trend" aria-label="Trend">
        <figure class="chart" id="trend" data-points={String(s.points)}>
          <canvas ref={tempCanvas} role="img" aria-label="Temperature trend" />
        </figure>
        <figure class="chart">
          <canvas
            ref={powerCanvas}
            role="img"
            aria-label="Power and SOC trend"
          />
        </figure>
        {s.chartError && <p class="warn">Chart unavailable: {s.chartError}</p>}
      </section>

      <section class="alarms" aria-label="Alarms">
        <h2>Alarms</h2>
        <table id="alarm-list">
          <thead>
            <tr>
              <th>Alarm</th>
              <th>State</th>
              <th>Value</th>
              <th>Raised</th>
              <th>Cleared</th>
              <th>Duration</th>
            </tr>
          </thead>
          <tbody>
            {s.alarms.length === 0 && (
              <tr>
                <td colSpan={6} class="empty">No alarms since page load</td>
              </tr>
            )}
            {s.alarms.map((r) => (
              <tr
                key={r.key}
                class={r.active ? "active" : "cleared"}
                data-alarm={r.alarm}
                data-state={r.active ? "raised" : "cleared"}
                title={r.message}
              >
                <td>{r.alarm}</td>
                <td>{r.active ? "RAISED" : "cleared"}</td>
                <td>
                  {formatNumber(r.value, 1)}
                  {r.clearValue !== null && r.raisedMs !== null &&
                    ` \u2192 ${formatNumber(r.clearValue, 1)}`} C
                </td>
                <td>{formatLocalTime(r.raisedMs)}</td>
                <td>{formatLocalTime(r.clearedMs)}</td>
                <td>
                  {formatDuration(
                    alarmDurationMs(r, s.nowMs || r.raisedMs || 0),
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </div>
  );
}
