/**
 * The HMI server's MQTT subscriber: records every valid telemetry and alarm
 * message of one topic prefix into the History store (history.ts), so pages
 * can draw the recent past before going live. Invalid payloads (malformed
 * JSON, wrong types, over 64 KB, dated in the future) are counted, logged
 * rate-limited and dropped; nothing here throws into the broker client.
 *
 * Reconnects back off exponentially with jitter (1 s .. 30 s), driven here
 * (mqtt.js `reconnectPeriod: 0` + `reconnect()`), as the poller's publisher
 * does, so many HMIs do not hammer a broker that restarts or refuses them.
 *
 * @example
 * ```ts
 * const rec = startRecorder({ url: "mqtt://127.0.0.1:1883", topicPrefix: "demo", history, log });
 * await rec.close();
 * ```
 */
import mqtt from "mqtt";
import { parseAlarmEvent, parseTelemetry, topicsFor } from "./contract.ts";
import { deviceOfTopic } from "./fleet_model.ts";
import type { History } from "./history.ts";
import { mqttErrorText, redact } from "./mqtt_secrets.ts";
import type { BackoffParams } from "./schedule.ts";
import { ReconnectTimer } from "./reconnect.ts";

export interface RecorderOptions {
  url: string;
  username?: string;
  password?: string;
  /** CA certificate(s) (PEM) to trust for mqtts:// and wss://. */
  ca?: string;
  topicPrefix: string;
  history: History;
  log: (l: string) => void;
  /** Reconnect backoff; default 1 s doubling to 30 s, +/-10 % jitter. */
  reconnect?: BackoffParams;
  random?: () => number;
}

export interface HistoryRecorder {
  /** Messages recorded and rejected so far. */
  readonly counts: { telemetry: number; alarms: number; rejected: number };
  /** Resolves once subscribed (after the first connect). */
  readonly subscribed: Promise<void>;
  /** Connected and subscribed right now. */
  readonly recording: boolean;
  /** Consecutive failed connection attempts (0 while connected). */
  readonly failures: number;
  close(): Promise<void>;
}

export const RECORDER_BACKOFF: BackoffParams = {
  baseMs: 1000,
  maxMs: 30_000,
  jitter: 0.1,
};

/** Longest reason quoted in a log line (a hostile payload must not flood it). */
const MAX_REASON = 200;

export function startRecorder(o: RecorderOptions): HistoryRecorder {
  const topics = topicsFor(o.topicPrefix);
  // Also every fleet device's (`{prefix}/{name}/...`), recorded with its name.
  const subscriptions = [
    topics.telemetry,
    topics.alarms,
    `${o.topicPrefix}/+/telemetry`,
    `${o.topicPrefix}/+/alarms`,
  ];
  const backoff = o.reconnect ?? RECORDER_BACKOFF;
  const random = o.random ?? Math.random;
  const counts = { telemetry: 0, alarms: 0, rejected: 0 };
  const subscribed = Promise.withResolvers<void>();
  const url = redact(o.url);
  let recording = false;
  let everConnected = false;
  let lastError = "";
  let stopping = false;
  const pacer = new ReconnectTimer(backoff, random);
  const client = mqtt.connect(o.url, {
    clientId: `hmi-history-${crypto.randomUUID().slice(0, 8)}`,
    username: o.username || undefined,
    password: o.password || undefined,
    ca: o.ca,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    clean: true,
  });
  client.on("connect", () => {
    pacer.reset();
    lastError = "";
    o.log(
      `hmi: history recorder ${
        everConnected ? "reconnected" : "connected"
      } to ${url}`,
    );
    everConnected = true;
    client.subscribe(subscriptions, { qos: 1 }, (err) => {
      if (err) o.log(`hmi: history subscribe failed: ${err.message}`);
      else {
        recording = true;
        subscribed.resolve();
      }
    });
  });
  client.on("close", () => {
    const wasRecording = recording;
    recording = false;
    if (stopping) return;
    const step = pacer.schedule(() => {
      if (!stopping) client.reconnect();
    });
    if (!step) return;
    // One line per state change: lost (or never got) the broker. Further
    // failed tries of the same outage stay quiet unless the reason changes.
    if (step.failures === 1) {
      o.log(
        `hmi: history recorder ${
          wasRecording || everConnected ? "disconnected from" : "cannot reach"
        } ${url}; retrying with backoff (${backoff.baseMs} ms .. ${backoff.maxMs} ms, next in ${step.delayMs} ms)`,
      );
    }
  });
  client.on("error", (e) => {
    // Log a changed reason once, not every reconnect attempt.
    const { text } = mqttErrorText(e.message, o.username, o.password);
    if (text === lastError) return;
    lastError = text;
    o.log(`hmi: history recorder: ${text}`);
  });
  const reject = (topic: string, error: string) => {
    counts.rejected++;
    if (counts.rejected <= 10 || counts.rejected % 100 === 0) {
      o.log(
        `hmi: dropped invalid message on ${topic}: ${
          error.slice(0, MAX_REASON)
        } (${counts.rejected} so far)`,
      );
    }
  };
  client.on("message", (topic, payload) => {
    try {
      const fleetTel = deviceOfTopic(o.topicPrefix, topic, "telemetry");
      const fleetAlarm = deviceOfTopic(o.topicPrefix, topic, "alarms");
      if (topic === topics.telemetry || fleetTel !== null) {
        const r = parseTelemetry(payload);
        if (!r.ok) return reject(topic, r.error);
        const rec = o.history.recordTelemetry(r.value, fleetTel);
        if (!rec.ok) return reject(topic, rec.error);
        counts.telemetry++;
      } else if (topic === topics.alarms || fleetAlarm !== null) {
        const r = parseAlarmEvent(payload);
        if (!r.ok) return reject(topic, r.error);
        const rec = o.history.recordAlarm(r.value, fleetAlarm);
        if (!rec.ok) return reject(topic, rec.error);
        counts.alarms++;
      }
    } catch (e) {
      // A full disk, a closed database or a payload too deep to store must
      // not take the HMI down.
      reject(topic, `recording failed: ${(e as Error)?.message ?? e}`);
    }
  });
  let closed: Promise<void> | null = null;
  return {
    counts,
    subscribed: subscribed.promise,
    get recording() {
      return recording && client.connected;
    },
    get failures() {
      return pacer.failures;
    },
    close() {
      stopping = true;
      pacer.cancel();
      closed ??= new Promise<void>((resolve) => {
        client.end(true, {}, () => resolve());
      });
      return closed;
    },
  };
}
