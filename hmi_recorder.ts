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
import type { History } from "./history.ts";

export interface RecorderOptions {
  url: string;
  username?: string;
  password?: string;
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
  const counts = { telemetry: 0, alarms: 0, rejected: 0 };
  const subscribed = Promise.withResolvers<void>();
  let recording = false;
  let lastError = "";
  const client = mqtt.connect(o.url, {
    clientId: `hmi-history-${crypto.randomUUID().slice(0, 8)}`,
    username: o.username || undefined,
    password: o.password || undefined,
    reconnectPeriod: 1000,
    connectTimeout: 5000,
    clean: true,
  });
  client.on("connect", () => {
    lastError = "";
    o.log(`hmi: history recorder connected to ${o.url}`);
    client.subscribe([topics.telemetry, topics.alarms], { qos: 1 }, (err) => {
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
      if (topic === topics.telemetry) {
        const r = parseTelemetry(payload);
        if (!r.ok) return reject(topic, r.error);
        o.history.recordTelemetry(r.value);
        counts.telemetry++;
      } else if (topic === topics.alarms) {
        const r = parseAlarmEvent(payload);
        if (!r.ok) return reject(topic, r.error);
        o.history.recordAlarm(r.value);
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
