/**
 * The live HMI island: subscribes to the device's MQTT topics over WebSocket
 * and shows the trend, current values, alarm list and connection state.
 * Rendered on the server with its initial (disconnected) state, hydrated in
 * the browser. Chart.js and mqtt.js are loaded by dynamic import, after
 * hydration, so the first-load JavaScript stays small.
 *
 * On load it first draws the recent past from the server's history
 * (/api/history, /api/alarms), then continues live; history and live
 * messages are merged by timestamp + seq (no duplicates), and after every
 * (re)subscription the span since the last covered moment is fetched again
 * (no gaps). Operator commands (setpoint, acknowledge) go out on the
 * cmd/ topics with QoS 1 and the page shows the poller's one answer.
 *
 * Every payload goes through contract.ts's validating parsers; anything
 * rejected is counted (shown on the page) and logged with console.warn,
 * rate-limited, never shown.
 *
 * Honesty rules (see hmi_model.ts): without a broker connection the poller
 * and the alarm summary are "unknown" (grey) and the values stale; values
 * are stale at once when the poller is offline (on a fleet device's page
 * also when its poller process' will says so); replayed or older messages
 * fill the trend only; freshness is judged from the message's own ts.
 */
import { useEffect, useReducer, useRef } from "preact/hooks";
import {
  type AlarmEvent,
  parseAlarmEvent,
  parseStatus,
  parseTelemetry,
  type Status,
  type Telemetry,
  topicsFor,
} from "../contract.ts";
import {
  ACK_STATE_LABEL,
  activeAlarmNames,
  alarmBadge,
  alarmDurationMs,
  type AlarmRow,
  type AlarmsStateMsg,
  type Badge,
  type BrokerState,
  brokerStateAfter,
  canAcknowledge,
  checkSetpointInput,
  COMMAND_UI_TIMEOUT_MS,
  commandAfterAnswer,
  commandAfterTimeout,
  type CommandView,
  type CurrentValue,
  effectiveIntervalMs,
  flushRejectLog,
  foldCurrent,
  foldJournal,
  foldStatus,
  formatDuration,
  formatNumber,
  formatWhen,
  type HmiProps,
  journalCsvRows,
  mergeJournal,
  mergeTelemetry,
  newRejectLog,
  newTrendStore,
  noteRejection,
  onlineOfStatus,
  parseAlarmsState,
  parseCommandAnswer,
  plural,
  pollerBadge,
  pollerOfTopic,
  pruneStore,
  qualityText,
  staleTickMs,
  trendCsvRows,
  VALUE_FIELDS,
  valueView,
} from "../hmi_model.ts";
import { SETPOINT_MAX_W, SETPOINT_MIN_W } from "../registers.ts";
import { toCsv } from "../csv.ts";
import type { TrendCharts } from "../hmi_chart.ts";
import type { MqttClient } from "mqtt";
import { connectBrowserMqtt } from "../hmi_credentials.ts";

interface State {
  broker: BrokerState;
  /** The device's retained status (late wills ignored). */
  status: Status | null;
  /** A status arrived on the current broker connection. */
  statusLive: boolean;
  /** Fleet poller processes' statuses, by poller (fleet device page). */
  pollers: Map<string, Status>;
  /** When the page last knew the poller online (browser clock). */
  lastOnlineMs: number | null;
  current: CurrentValue | null;
  /** Alarm events, newest first (history + live). */
  journal: AlarmEvent[];
  /** Raise/clear episodes folded from the journal. */
  alarms: AlarmRow[];
  /** Retained ISA-18.2 state of every alarm. */
  alarmState: AlarmsStateMsg | null;
  /** The alarm state arrived on the current broker connection. */
  alarmStateLive: boolean;
  /** Telemetry messages in the trend window, and points drawn. */
  points: number;
  chartPoints: number;
  /** The poll interval staleness is judged by (observed, else configured). */
  intervalMs: number;
  rejected: number;
  nowMs: number;
  chartError: string | null;
  history: "loading" | "loaded" | "error";
  historyError: string | null;
  setpoint: CommandView;
  ack: { alarm: string; view: CommandView } | null;
}

/** What the trend store holds now, for the page's data attributes. */
interface TrendCounts {
  points: number;
  chartPoints: number;
  intervalMs: number;
}

type Action =
  | {
    type: "broker";
    event: "connect" | "reconnect" | "close" | "offline" | "error";
    nowMs: number;
  }
  | { type: "status"; status: Status }
  | { type: "poller"; name: string; status: Status }
  | { type: "telemetry"; msg: Telemetry; receivedMs: number; n: TrendCounts }
  | { type: "journal"; events: AlarmEvent[] }
  | { type: "alarmState"; state: AlarmsStateMsg }
  | { type: "rejected" }
  | { type: "tick"; nowMs: number; n: TrendCounts }
  | { type: "chartError"; error: string }
  | { type: "history"; n: TrendCounts; error?: string }
  | { type: "setpoint"; f: (v: CommandView) => CommandView }
  | { type: "ack"; alarm?: string; f: (v: CommandView) => CommandView };

/** The poller's state as far as this page knows (device status + wills). */
const pollerOf = (s: State) => onlineOfStatus(s.status, s.pollers);

function reduce(s: State, a: Action): State {
  switch (a.type) {
    case "broker": {
      const broker = brokerStateAfter(s.broker, a.event);
      if (s.broker !== "connected" || broker === "connected") {
        return { ...s, broker };
      }
      // Connection lost: nothing shown is confirmed any more; retained
      // status and alarm state come again after the next subscribe.
      const wasOnline = s.statusLive && pollerOf(s) === "online";
      return {
        ...s,
        broker,
        statusLive: false,
        alarmStateLive: false,
        lastOnlineMs: wasOnline ? a.nowMs : s.lastOnlineMs,
        nowMs: a.nowMs,
      };
    }
    case "status":
      return {
        ...s,
        status: foldStatus(s.status, a.status),
        statusLive: true,
      };
    case "poller": {
      const pollers = new Map(s.pollers);
      pollers.set(a.name, foldStatus(pollers.get(a.name) ?? null, a.status));
      return { ...s, pollers };
    }
    case "telemetry":
      return {
        ...s,
        ...a.n,
        current: foldCurrent(s.current, a.msg, a.receivedMs),
        nowMs: a.receivedMs,
      };
    case "journal": {
      const journal = mergeJournal(s.journal, a.events);
      return { ...s, journal, alarms: foldJournal(journal) };
    }
    case "alarmState":
      return { ...s, alarmState: a.state, alarmStateLive: true };
    case "rejected":
      return { ...s, rejected: s.rejected + 1 };
    case "tick":
      return { ...s, ...a.n, nowMs: a.nowMs };
    case "chartError":
      return { ...s, chartError: a.error };
    case "history":
      return a.error
        ? { ...s, history: "error", historyError: a.error }
        : { ...s, ...a.n, history: "loaded", historyError: null };
    case "setpoint":
      return { ...s, setpoint: a.f(s.setpoint) };
    case "ack":
      if (a.alarm !== undefined) {
        return { ...s, ack: { alarm: a.alarm, view: a.f({ kind: "idle" }) } };
      }
      return s.ack ? { ...s, ack: { ...s.ack, view: a.f(s.ack.view) } } : s;
  }
}

/** A v4 UUID; crypto.randomUUID exists only in secure contexts (not plain http on a LAN). */
function uuid(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${
    h.slice(16, 20)
  }-${h.slice(20)}`;
}

/** Save `text` as a file through a Blob and a temporary download link. */
function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const msOf = (ts: string | null) => ts === null ? null : Date.parse(ts);

const fileStamp = (ms: number) =>
  new Date(ms).toISOString().replace(/[:.]/g, "-").slice(0, 19);

/** Alarm events fetched at load and after every (re)subscription. */
const JOURNAL_FETCH = 100;

function commandText(v: CommandView, what: string): string {
  switch (v.kind) {
    case "idle":
      return "";
    case "invalid":
      return v.error;
    case "pending":
      return `${what}: pending\u2026`;
    case "accepted":
      return `${what}: accepted${
        v.value !== undefined ? ` (${v.value} W)` : ""
      }`;
    case "rejected":
      return `${what}: rejected: ${v.error}`;
    case "timeout":
      return `${what}: no answer within ${
        COMMAND_UI_TIMEOUT_MS / 1000
      } s (poller offline?)`;
  }
}

const BROKER_LABEL: Record<BrokerState, string> = {
  connecting: "connecting",
  connected: "connected",
  reconnecting: "reconnecting",
  offline: "offline",
};

/** A badge: grey unless known good (green) or bad (red). */
function Pill({ id, badge }: { id: string; badge: Badge }) {
  return (
    <span class={`pill tone-${badge.tone}`} id={id} data-tone={badge.tone}>
      {badge.text}
    </span>
  );
}

export default function LiveHmi(props: HmiProps) {
  const [s, dispatch] = useReducer(reduce, {
    broker: "connecting",
    status: null,
    statusLive: false,
    pollers: new Map(),
    lastOnlineMs: null,
    current: null,
    journal: [],
    alarms: [],
    alarmState: null,
    alarmStateLive: false,
    points: 0,
    chartPoints: 0,
    intervalMs: props.intervalMs,
    rejected: 0,
    nowMs: 0,
    chartError: null,
    history: "loading",
    historyError: null,
    setpoint: { kind: "idle" },
    ack: null,
  });
  const tempCanvas = useRef<HTMLCanvasElement>(null);
  const powerCanvas = useRef<HTMLCanvasElement>(null);
  const setpointInput = useRef<HTMLInputElement>(null);
  const store = useRef(
    newTrendStore({ windowMs: props.windowMs, intervalMs: props.intervalMs }),
  ).current;
  const rejectLog = useRef(newRejectLog()).current;
  // The connected mqtt.js client (null until loaded and connected).
  const live = useRef<
    {
      client: MqttClient | null;
      timers: Set<ReturnType<typeof setTimeout>>;
    }
  >({
    client: null,
    timers: new Set(),
  }).current;
  const topics = topicsFor(props.topicPrefix);
  const pollersTopic = props.fleetPrefix
    ? `${props.fleetPrefix}/_pollers/+/status`
    : null;
  const windowMinutes = Math.max(1, Math.ceil(props.windowMs / 60_000));
  const dev = props.device ? `&device=${encodeURIComponent(props.device)}` : "";

  useEffect(() => {
    let charts: TrendCharts | null = null;
    let frame = 0;
    let closed = false;
    let drawnMs = 0;
    const redraw = () => {
      if (frame || !charts) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        drawnMs = Date.now();
        charts?.update(drawnMs);
      });
    };
    const addTelemetry = (msgs: Telemetry[]) => {
      const n = mergeTelemetry(store, msgs, Date.now());
      if (n > 0) redraw();
      return n;
    };
    const counts = (): TrendCounts => ({
      points: store.msgs.length,
      chartPoints: store.temp.length,
      intervalMs: effectiveIntervalMs(store),
    });
    /** Count, and log (rate-limited), one rejected message. */
    const reject = (topic: string, error: string) => {
      const line = noteRejection(rejectLog, topic, error, Date.now());
      if (line) console.warn(line);
      dispatch({ type: "rejected" });
    };

    // Everything up to this moment is in the store (or being fetched).
    let coveredMs = Date.now();
    let subscribed = false;
    /** Fetch telemetry since `fromMs` and the newest alarm events, merge. */
    const loadHistory = async (fromMs: number, limit: number) => {
      const minutes = Math.min(
        windowMinutes,
        Math.max(1, Math.ceil((Date.now() - fromMs) / 60_000) + 1),
      );
      const [h, a] = await Promise.all([
        fetch(`/api/history?minutes=${minutes}${dev}`),
        fetch(`/api/alarms?limit=${limit}${dev}`),
      ]);
      if (!h.ok || !a.ok) {
        await Promise.all([h.body?.cancel(), a.body?.cancel()]);
        throw new Error(`history HTTP ${h.status}, alarms HTTP ${a.status}`);
      }
      const [tel, events] = await Promise.all([h.json(), a.json()]);
      if (closed) return;
      const good: Telemetry[] = [];
      for (const t of Array.isArray(tel) ? tel : []) {
        const r = parseTelemetry(JSON.stringify(t));
        if (r.ok) good.push(r.value);
      }
      const evs: AlarmEvent[] = [];
      for (const e of Array.isArray(events) ? events : []) {
        const r = parseAlarmEvent(JSON.stringify(e));
        if (r.ok) evs.push(r.value);
      }
      addTelemetry(good);
      dispatch({ type: "journal", events: evs });
      dispatch({ type: "history", n: counts() });
    };
    loadHistory(Date.now() - props.windowMs, JOURNAL_FETCH).catch((e) =>
      !closed && dispatch({
        type: "history",
        n: counts(),
        error: String(e?.message ?? e),
      })
    );

    import("../hmi_chart.ts").then(({ createTrendCharts }) => {
      if (closed || !tempCanvas.current || !powerCanvas.current) return;
      charts = createTrendCharts(
        tempCanvas.current,
        powerCanvas.current,
        store,
        props,
      );
      redraw();
    }).catch((e) =>
      dispatch({ type: "chartError", error: String(e?.message ?? e) })
    );

    // deno-lint-ignore no-explicit-any
    let client: any = null;
    connectBrowserMqtt(
      props.mqttWsUrl,
      "hmi",
      (ev) => dispatch({ type: "broker", event: ev, nowMs: Date.now() }),
    ).then(
      (connected) => {
        if (closed) return void connected.end(true);
        client = connected;
        client.on("close", () => {
          live.client = null;
          // Received live up to now; after the next subscribe, fetch from here.
          if (subscribed) coveredMs = Date.now();
          subscribed = false;
        });
        client.on("connect", () => {
          live.client = client;
          client.subscribe(
            [
              topics.telemetry,
              topics.alarms,
              topics.alarmsState,
              topics.status,
              topics.cmdSetpointResult,
              topics.cmdAckResult,
              ...(pollersTopic ? [pollersTopic] : []),
            ],
            { qos: 1 },
            (err: Error | null) => {
              if (err || closed) return;
              subscribed = true;
              // Close the gap between the last fetch (or disconnect) and now.
              const from = coveredMs;
              coveredMs = Date.now();
              loadHistory(from, 20).catch(() => {/* the live data goes on */});
            },
          );
        });
        client.on("message", (topic: string, payload: Uint8Array) => {
          const now = Date.now();
          if (topic === topics.telemetry) {
            const r = parseTelemetry(payload);
            if (!r.ok) return reject(topic, r.error);
            // Every message fills the trend; only a live, newer one is shown.
            addTelemetry([r.value]);
            dispatch({
              type: "telemetry",
              msg: r.value,
              receivedMs: now,
              n: counts(),
            });
          } else if (topic === topics.alarms) {
            const r = parseAlarmEvent(payload);
            if (!r.ok) return reject(topic, r.error);
            dispatch({ type: "journal", events: [r.value] });
          } else if (topic === topics.alarmsState) {
            const r = parseAlarmsState(payload);
            if (!r.ok) return reject(topic, r.error);
            dispatch({ type: "alarmState", state: r.value });
          } else if (topic === topics.status) {
            const r = parseStatus(payload);
            if (!r.ok) return reject(topic, r.error);
            dispatch({ type: "status", status: r.value });
          } else if (
            topic === topics.cmdSetpointResult || topic === topics.cmdAckResult
          ) {
            const a = parseCommandAnswer(payload);
            if (!a) return reject(topic, "invalid command answer");
            const f = (v: CommandView) => commandAfterAnswer(v, a);
            dispatch(
              topic === topics.cmdAckResult
                ? { type: "ack", f }
                : { type: "setpoint", f },
            );
          } else if (props.fleetPrefix) {
            const name = pollerOfTopic(props.fleetPrefix, topic);
            if (name === null) return;
            const r = parseStatus(payload);
            if (!r.ok) return reject(topic, r.error);
            dispatch({ type: "poller", name, status: r.value });
          }
        });
      },
    ).catch(() =>
      dispatch({ type: "broker", event: "offline", nowMs: Date.now() })
    );

    const onTick = () => {
      const now = Date.now();
      pruneStore(store, now);
      // The time axis slides once a second even when nothing arrives (fast
      // polling ticks more often, but its data redraws anyway).
      if (now - drawnMs >= 1000) redraw();
      const line = flushRejectLog(rejectLog, now);
      if (line) console.warn(line);
      dispatch({ type: "tick", nowMs: now, n: counts() });
    };
    onTick();
    // Staleness moves with the clock: check at least once per poll interval.
    const tick = setInterval(onTick, staleTickMs(props.intervalMs));

    return () => {
      closed = true;
      clearInterval(tick);
      for (const t of live.timers) clearTimeout(t);
      if (frame) cancelAnimationFrame(frame);
      client?.end(true);
      live.client = null;
      charts?.destroy();
    };
  }, []);

  /** Publish a command (QoS 1, never retained); answer or local timeout. */
  const sendCommand = (
    topic: string,
    body: Record<string, unknown>,
    set: (f: (v: CommandView) => CommandView) => void,
    value?: number,
  ) => {
    const id = body.id as string;
    if (!live.client) {
      set(() => ({ kind: "invalid", error: "not connected to the broker" }));
      return;
    }
    set(() => ({ kind: "pending", id, sentMs: Date.now(), value }));
    live.client.publish(topic, JSON.stringify(body), {
      qos: 1,
      retain: false,
    });
    const t = setTimeout(() => {
      live.timers.delete(t);
      set((v) => commandAfterTimeout(v, id));
    }, COMMAND_UI_TIMEOUT_MS);
    live.timers.add(t);
  };

  const applySetpoint = (e: Event) => {
    e.preventDefault();
    const set = (f: (v: CommandView) => CommandView) =>
      dispatch({ type: "setpoint", f });
    const c = checkSetpointInput(
      setpointInput.current?.value ?? "",
      SETPOINT_MIN_W,
      SETPOINT_MAX_W,
    );
    if (!c.ok) return set(() => ({ kind: "invalid", error: c.error }));
    sendCommand(
      topics.cmdSetpoint,
      {
        id: uuid(),
        value: c.value,
        ts: new Date().toISOString(),
      },
      set,
      c.value,
    );
  };

  const acknowledge = (alarm: string) => {
    let first = true;
    sendCommand(topics.cmdAck, { id: uuid(), alarm }, (f) => {
      dispatch(first ? { type: "ack", alarm, f } : { type: "ack", f });
      first = false;
    });
  };

  const exportTrend = () => {
    const { header, rows } = trendCsvRows(store.msgs);
    download(`trend-${fileStamp(Date.now())}.csv`, toCsv(header, rows));
  };
  const exportJournal = () => {
    const { header, rows } = journalCsvRows(s.journal);
    download(`alarms-${fileStamp(Date.now())}.csv`, toCsv(header, rows));
  };

  const connected = s.broker === "connected";
  const poller = pollerOf(s);
  const view = valueView(s.current, s.nowMs, s.intervalMs, {
    connected,
    pollerOffline: s.statusLive && poller === "offline",
  });
  const activeNames = activeAlarmNames(s.alarmState, s.alarms);
  const pollerPill = pollerBadge({
    connected,
    live: s.statusLive,
    state: poller,
    lastOnlineMs: s.lastOnlineMs,
  }, s.nowMs);
  const alarmPill = alarmBadge({
    connected,
    live: s.alarmStateLive,
    active: activeNames.length,
  });
  const spText = commandText(s.setpoint, "Setpoint");
  const when = (ms: number | null) => formatWhen(ms, s.nowMs);

  return (
    <div class="hmi">
      <section class="conn" aria-label="Connection state">
        <span class={`pill broker-${s.broker}`} id="broker-state">
          Broker: {BROKER_LABEL[s.broker]}
        </span>
        <Pill id="poller-state" badge={pollerPill} />
        <Pill id="alarm-count" badge={alarmPill} />
        {s.rejected > 0 && (
          <span class="pill warn" id="rejected">
            {s.rejected} invalid message{s.rejected > 1 ? "s" : ""} ignored
          </span>
        )}
        {s.history === "error" && (
          <span class="pill warn" id="history-error">
            History unavailable: {s.historyError}
          </span>
        )}
      </section>

      <section class="values" aria-label="Current values">
        <div
          class={`quality q-${view.kind}`}
          id="quality"
          data-kind={view.kind}
        >
          {qualityText(view, s.nowMs)}
        </div>
        <dl class="grid">
          {VALUE_FIELDS.map((f) => (
            <div
              class={`value v-${view.kind}${
                f.alarm && activeNames.includes(f.alarm) ? " alarm" : ""
              }`}
              key={f.field}
              id={`tile-${f.field}`}
            >
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
        <form
          class="setpoint"
          id="setpoint-form"
          aria-label="Setpoint"
          noValidate
          onSubmit={applySetpoint}
        >
          <label for="setpoint-input">
            Setpoint ({SETPOINT_MIN_W}..{SETPOINT_MAX_W} W)
          </label>
          <div class="row">
            <input
              id="setpoint-input"
              ref={setpointInput}
              type="number"
              inputMode="numeric"
              min={SETPOINT_MIN_W}
              max={SETPOINT_MAX_W}
              step={1}
              required
              placeholder="W"
            />
            <button
              type="submit"
              id="setpoint-apply"
              disabled={!connected || s.setpoint.kind === "pending"}
            >
              Apply
            </button>
          </div>
          <output
            id="setpoint-result"
            class={`cmd cmd-${s.setpoint.kind}`}
            data-state={s.setpoint.kind}
            aria-live="polite"
          >
            {spText}
          </output>
        </form>
      </section>

      <section class="trend" aria-label="Trend">
        <figure
          class="chart"
          id="trend"
          data-points={String(s.points)}
          data-chart-points={String(s.chartPoints)}
          data-history={s.history}
        >
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
        <div class="tools">
          <button type="button" id="export-trend" onClick={exportTrend}>
            Export trend CSV
          </button>
        </div>
      </section>

      <section class="alarms" aria-label="Alarms">
        <h2>
          Alarm state
          {s.alarmState && !s.alarmStateLive && (
            <small class="muted" id="alarm-state-note">
              {" "}
              (last known{connected ? "" : ", not connected to the broker"})
            </small>
          )}
        </h2>
        <table id="alarm-state" class="alarm-table">
          <thead>
            <tr>
              <th>Alarm</th>
              <th>State</th>
              <th>Value</th>
              <th>Raised</th>
              <th>Cleared</th>
              <th>Acknowledged</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            {!s.alarmState && (
              <tr>
                <td colSpan={7} class="empty">
                  {connected
                    ? "Waiting for the alarm state"
                    : "Alarm state unknown: not connected to the broker"}
                </td>
              </tr>
            )}
            {s.alarmState?.alarms.map((a) => (
              <tr
                key={a.alarm}
                class={`ack-${a.state}`}
                data-alarm={a.alarm}
                data-state={a.state}
              >
                <td class="c-name" data-label="Alarm">{a.alarm}</td>
                <td class="c-state" data-label="State">
                  {ACK_STATE_LABEL[a.state]}
                </td>
                <td class="c-value" data-label="Value">
                  {a.value === null
                    ? "\u2014"
                    : `${formatNumber(a.value, 1)} \u00b0C`}
                </td>
                <td class="c-time" data-label="Raised">
                  {when(msOf(a.raised_ts))}
                </td>
                <td class="c-time" data-label="Cleared">
                  {when(msOf(a.cleared_ts))}
                </td>
                <td class="c-time" data-label="Acknowledged">
                  {when(msOf(a.acked_ts))}
                </td>
                <td class="c-ack">
                  {canAcknowledge(a.state) && (
                    <button
                      type="button"
                      class="ack"
                      data-alarm={a.alarm}
                      disabled={!connected ||
                        (s.ack?.alarm === a.alarm &&
                          s.ack.view.kind === "pending")}
                      onClick={() => acknowledge(a.alarm)}
                    >
                      Acknowledge
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {s.ack && (
          <p
            id="ack-result"
            class={`cmd cmd-${s.ack.view.kind}`}
            data-state={s.ack.view.kind}
            aria-live="polite"
          >
            {commandText(s.ack.view, `Acknowledge ${s.ack.alarm}`)}
          </p>
        )}

        <h2>Alarm history</h2>
        <table id="alarm-list" class="alarm-table">
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
                <td colSpan={6} class="empty">No alarms recorded</td>
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
                <td class="c-name" data-label="Alarm">{r.alarm}</td>
                <td class="c-state" data-label="State">
                  {r.active ? "RAISED" : "cleared"}
                </td>
                <td class="c-value" data-label="Value">
                  {formatNumber(r.value, 1)}
                  {r.clearValue !== null && r.raisedMs !== null &&
                    ` \u2192 ${formatNumber(r.clearValue, 1)}`} °C
                </td>
                <td class="c-time" data-label="Raised">{when(r.raisedMs)}</td>
                <td class="c-time" data-label="Cleared">
                  {when(r.clearedMs)}
                </td>
                <td class="c-time" data-label="Duration">
                  {formatDuration(
                    alarmDurationMs(r, s.nowMs || r.raisedMs || 0),
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <div class="tools">
          <button type="button" id="export-alarms" onClick={exportJournal}>
            Export alarm journal CSV ({plural(s.journal.length, "event")})
          </button>
        </div>
      </section>
    </div>
  );
}
