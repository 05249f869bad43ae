/**
 * The poller's MQTT side: one connection with birth and last-will status,
 * reconnects with exponential backoff and jitter, and a bounded outbox so
 * nothing is lost while the broker is away (replayed in order, marked
 * `"replayed": true`, before live data).
 *
 * We drive reconnects ourselves (mqtt.js `reconnectPeriod: 0` +
 * `reconnect()`): mqtt.js only knows a fixed period, and a message leaves
 * our outbox only when the broker has acknowledged it (PUBACK), so an outage
 * mid-flight cannot lose it (at-least-once).
 *
 * @example
 * ```ts
 * const pub = new Publisher({ url: "mqtt://localhost:1883", statusTopic: "demo/status", ... });
 * pub.start();
 * pub.send("telemetry", "demo/telemetry", payload);
 * await pub.stop();
 * ```
 */
import mqtt from "mqtt";
import { buildStatus } from "./contract.ts";
import { redact, redactSecret } from "./mqtt_secrets.ts";
import {
  encodeMessage,
  type MessageKind,
  Outbox,
  type OutMessage,
} from "./outbox.ts";
import { backoffDelayMs, type BackoffParams } from "./schedule.ts";

export interface PublisherOptions {
  url: string;
  username?: string;
  password?: string;
  clientId: string;
  /** Retained online/offline status with the session counter. */
  statusTopic: string;
  /** Most telemetry messages held while disconnected. */
  maxBufferedTelemetry: number;
  reconnect: BackoffParams;
  log: (line: string) => void;
  now?: () => number;
  random?: () => number;
  /** CA certificate(s) (PEM) for mqtts://. */
  ca?: string;
}

/** Messages handed to mqtt.js at once, awaiting PUBACK. */
const WINDOW = 64;

type Handler = (topic: string, payload: Uint8Array) => void;

export class Publisher {
  readonly outbox: Outbox;
  readonly #o: PublisherOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  #client: mqtt.MqttClient | null = null;
  #inflight = new Set<OutMessage>();
  #failures = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #stopping = false;
  #lastError = "";
  #subs = new Map<string, Handler>();
  /** Increases on every connection; the will of an older one is stale. */
  session: number;
  connects = 0;

  constructor(o: PublisherOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#random = o.random ?? Math.random;
    this.outbox = new Outbox(o.maxBufferedTelemetry);
    // Time-based start, so a restarted poller's sessions are newer too.
    this.session = this.#now();
  }

  get connected(): boolean {
    return this.#client?.connected === true;
  }

  start(): void {
    const willSession = this.#nextSession();
    this.#client = mqtt.connect(this.#o.url, {
      clientId: this.#o.clientId,
      username: this.#o.username || undefined,
      password: this.#o.password || undefined,
      ca: this.#o.ca,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      keepalive: 10,
      will: this.#will(willSession),
    });
    this.#client.on("connect", () => this.#onConnect());
    this.#client.on("close", () => this.#onClose());
    this.#client.on("error", (e) => this.#noteError(e.message));
    this.#client.on("message", (topic, payload) => {
      for (const [filter, h] of this.#subs) {
        if (mqttMatch(filter, topic)) h(topic, payload);
      }
    });
  }

  /** Subscribe (QoS 1), kept across reconnects. */
  subscribe(filter: string, handler: Handler): void {
    this.#subs.set(filter, handler);
    if (this.connected) this.#client!.subscribe(filter, { qos: 1 });
  }

  /** Queue a message; it is published now if connected, else replayed later. */
  send(
    kind: MessageKind,
    topic: string,
    body: Record<string, unknown>,
    retain = false,
  ): void {
    const dropped = this.outbox.push({
      kind,
      topic,
      body,
      retain,
      replayed: !this.connected,
    });
    if (
      dropped && (this.outbox.dropped === 1 || this.outbox.dropped % 100 === 0)
    ) {
      this.#o.log(
        `mqtt: buffer full (${this.outbox.maxTelemetry} telemetry messages); dropped ${this.outbox.dropped} oldest so far`,
      );
    }
    this.#pump();
  }

  /** Publish a final offline status and disconnect. */
  async stop(drainMs = 1000): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#reconnectTimer);
    const c = this.#client;
    if (!c) return;
    if (c.connected) {
      const deadline = this.#now() + drainMs;
      while (this.outbox.length > 0 && c.connected && this.#now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          c.publishAsync(
            this.#o.statusTopic,
            JSON.stringify(buildStatus("offline", this.#now(), this.session)),
            { qos: 1, retain: true },
          ),
          new Promise((r) => timer = setTimeout(r, drainMs)),
        ]);
      } catch {
        /* going away anyway */
      } finally {
        clearTimeout(timer);
      }
    }
    await c.endAsync(!c.connected);
    if (this.outbox.length > 0) {
      this.#o.log(`mqtt: stopped with ${this.outbox.length} messages unsent`);
    }
  }

  #nextSession(): number {
    this.session = Math.max(this.session + 1, this.#now());
    return this.session;
  }

  #will(session: number) {
    return {
      topic: this.#o.statusTopic,
      payload: Buffer.from(
        JSON.stringify(buildStatus("offline", this.#now(), session)),
      ),
      qos: 1 as const,
      retain: true,
    };
  }

  #noteError(msg: string): void {
    if (msg === this.#lastError) return;
    this.#lastError = msg;
    if (/not authori[sz]ed|bad user ?name or password/i.test(msg)) {
      // One clear line; the reconnect backoff keeps going (an operator may
      // fix the broker's password file without restarting the poller).
      this.#o.log(
        `mqtt: broker rejected the credentials of user "${
          this.#o.username ?? ""
        }" (${msg}); retrying with backoff`,
      );
      return;
    }
    this.#o.log(`mqtt: error: ${redactSecret(msg, this.#o.password)}`);
  }

  /**
   * Resolves after the first connection attempt has succeeded or failed (or
   * `timeoutMs`), so a poller starting next to its broker does not mark its
   * very first messages as replayed.
   */
  firstAttempt(timeoutMs: number): Promise<void> {
    const c = this.#client;
    if (!c || c.connected || this.connects > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        c.off("connect", done);
        c.off("close", done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      c.once("connect", done);
      c.once("close", done);
    });
  }

  #onConnect(): void {
    const c = this.#client!;
    this.connects++;
    this.#failures = 0;
    this.#lastError = "";
    this.#o.log(
      `mqtt: connected to ${redact(this.#o.url)} (session ${this.session}` +
        (this.outbox.length
          ? `, replaying ${this.outbox.length} messages)`
          : ")"),
    );
    // Birth first: status subscribers see online before replayed data.
    c.publish(
      this.#o.statusTopic,
      JSON.stringify(buildStatus("online", this.#now(), this.session)),
      { qos: 1, retain: true },
    );
    for (const filter of this.#subs.keys()) c.subscribe(filter, { qos: 1 });
    this.#pump();
  }

  #onClose(): void {
    this.#inflight.clear();
    if (this.#stopping || this.#reconnectTimer !== undefined) return;
    this.#failures++;
    const delay = backoffDelayMs(
      this.#failures,
      this.#o.reconnect,
      this.#random(),
    );
    if (this.#failures === 1) {
      this.#o.log(`mqtt: disconnected; buffering, reconnecting in ${delay} ms`);
    } else if (delay < this.#o.reconnect.maxMs) {
      this.#o.log(`mqtt: reconnect failed; next try in ${delay} ms`);
    }
    // The next connection announces a newer session in its will.
    const next = this.#nextSession();
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#stopping || !this.#client) return;
      this.#client.options.will = this.#will(next);
      this.#client.reconnect();
    }, delay);
  }

  #pump(): void {
    const c = this.#client;
    if (!c?.connected) return;
    for (let i = 0; this.#inflight.size < WINDOW; i++) {
      const m = this.outbox.peek(i);
      if (!m) break;
      if (this.#inflight.has(m)) continue;
      this.#inflight.add(m);
      c.publish(
        m.topic,
        encodeMessage(m),
        { qos: 1, retain: m.retain },
        (err) => {
          if (!this.#inflight.delete(m) && err) return;
          if (!err) this.outbox.remove(m);
          this.#pump();
        },
      );
    }
  }
}

/** MQTT topic filter match (+ and #). */
export function mqttMatch(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
