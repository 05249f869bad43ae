/**
 * The HMI server's MQTT subscriber: records every valid telemetry and alarm
 * message of one topic prefix into the History store (history.ts), so pages
 * can draw the recent past before going live. Invalid payloads are logged
 * (rate-limited) and dropped; nothing here throws into the broker client.
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
import { redact } from "./mqtt_secrets.ts";

export interface RecorderOptions {
  url: string;
  username?: string;
  password?: string;
  /** CA certificate(s) (PEM) to trust for mqtts:// and wss://. */
  ca?: string;
  topicPrefix: string;
  history: History;
  log: (l: string) => void;
}

export interface HistoryRecorder {
  /** Messages recorded and rejected so far. */
  readonly counts: { telemetry: number; alarms: number; rejected: number };
  /** Resolves once subscribed (after the first connect). */
  readonly subscribed: Promise<void>;
  /** Connected and subscribed right now. */
  readonly recording: boolean;
  close(): Promise<void>;
}

export function startRecorder(o: RecorderOptions): HistoryRecorder {
  const topics = topicsFor(o.topicPrefix);
  // Also every fleet device's (`{prefix}/{name}/...`), recorded with its name.
  const subscriptions = [
    topics.telemetry,
    topics.alarms,
    `${o.topicPrefix}/+/telemetry`,
    `${o.topicPrefix}/+/alarms`,
  ];
  const counts = { telemetry: 0, alarms: 0, rejected: 0 };
  const subscribed = Promise.withResolvers<void>();
  let recording = false;
  let lastError = "";
  const client = mqtt.connect(o.url, {
    clientId: `hmi-history-${crypto.randomUUID().slice(0, 8)}`,
    username: o.username || undefined,
    password: o.password || undefined,
    ca: o.ca,
    reconnectPeriod: 1000,
    connectTimeout: 5000,
    clean: true,
  });
  client.on("connect", () => {
    lastError = "";
    o.log(`hmi: history recorder connected to ${redact(o.url)}`);
    client.subscribe(subscriptions, { qos: 1 }, (err) => {
      if (err) o.log(`hmi: history subscribe failed: ${err.message}`);
      else {
        recording = true;
        subscribed.resolve();
      }
    });
  });
  client.on("close", () => recording = false);
  client.on("error", (e) => {
    // Log a changed reason once, not every reconnect attempt.
    if (e.message !== lastError) {
      lastError = e.message;
      o.log(`hmi: history recorder: ${e.message}`);
    }
  });
  const reject = (topic: string, error: string) => {
    counts.rejected++;
    if (counts.rejected <= 10 || counts.rejected % 100 === 0) {
      o.log(
        `hmi: dropped invalid message on ${topic}: ${error} (${counts.rejected} so far)`,
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
        o.history.recordTelemetry(r.value, fleetTel);
        counts.telemetry++;
      } else if (topic === topics.alarms || fleetAlarm !== null) {
        const r = parseAlarmEvent(payload);
        if (!r.ok) return reject(topic, r.error);
        o.history.recordAlarm(r.value, fleetAlarm);
        counts.alarms++;
      }
    } catch (e) {
      // A full disk or a closed database must not take the HMI down.
      o.log(`hmi: recording ${topic} failed: ${(e as Error).message}`);
    }
  });
  let closed: Promise<void> | null = null;
  return {
    counts,
    subscribed: subscribed.promise,
    get recording() {
      return recording && client.connected;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        client.end(true, {}, () => resolve());
      });
      return closed;
    },
  };
}
