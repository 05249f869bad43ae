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
 * With `bufferDir` the outbox is also durable (outbox_store.ts): a message
 * is committed to `<dir>/outbox.db` before it is handed to MQTT and deleted
 * after its PUBACK, so a restart (even kill -9) loses nothing; the next run
 * replays the rows first, marked replayed, and continues each telemetry
 * topic's `seq` (`lastSeq`). Writes are batched: a short timer (or the next
 * pump) writes everything queued in one transaction.
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
import { ConfigError } from "./cli.ts";
import { mqttErrorText, redact } from "./mqtt_secrets.ts";
import {
  makeMessage,
  type MessageKind,
  Outbox,
  type OutMessage,
  wirePayload,
} from "./outbox.ts";
import { OutboxStore } from "./outbox_store.ts";
import type { BackoffParams } from "./schedule.ts";
import { ReconnectTimer } from "./reconnect.ts";

export interface PublisherOptions {
  url: string;
  username?: string;
  password?: string;
  clientId: string;
  /** Retained online/offline status with the session counter. */
  statusTopic: string;
  /** Most telemetry messages held while disconnected. */
  maxBufferedTelemetry: number;
  /**
   * Most bytes (topic + payload, every kind) held; default 64 MiB. The
   * oldest telemetry goes first; alarms and events are kept even beyond it.
   */
  maxBufferedBytes?: number;
  /** Directory of the durable outbox (`outbox.db`); unset: memory only. */
  bufferDir?: string;
  /** How long queued store writes wait to share a transaction; default 5 ms. */
  storeFlushMs?: number;
  reconnect: BackoffParams;
  log: (line: string) => void;
  now?: () => number;
  random?: () => number;
  /** CA certificate(s) (PEM) for mqtts://. */
  ca?: string;
}

/** Messages handed to mqtt.js at once, awaiting PUBACK. */
const WINDOW = 64;
/** Default wait for more store writes to batch into one transaction. */
const STORE_FLUSH_MS = 5;

/**
 * A retained status carrying an MQTT session number (a fleet device's
 * online/offline) describes that one connection: replayed after a restart it
 * would announce a dead session as current, so it is never made durable.
 * (The poller's own birth and will are not queued at all.)
 */
export function isSessionBound(
  body: Record<string, unknown>,
  retain: boolean,
): boolean {
  return retain && typeof body.session === "number";
}

/** Topic filters per SUBSCRIBE packet when resubscribing. */
const SUBSCRIBE_BATCH = 500;

type Handler = (topic: string, payload: Uint8Array) => void;

export class Publisher {
  readonly outbox: Outbox;
  readonly #o: PublisherOptions;
  readonly #now: () => number;
  #client: mqtt.MqttClient | null = null;
  #inflight = new Set<OutMessage>();
  readonly #reconnect: ReconnectTimer;
  #stopping = false;
  #lastError = "";
  /** Exact topic filters, and those with + or #. */
  #subs = new Map<string, Handler>();
  #wildcardSubs = new Map<string, Handler>();
  #store: OutboxStore | null = null;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** Increases on every connection; the will of an older one is stale. */
  session: number;
  connects = 0;

  constructor(o: PublisherOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#reconnect = new ReconnectTimer(o.reconnect, o.random ?? Math.random);
    this.outbox = new Outbox({
      maxTelemetry: o.maxBufferedTelemetry,
      maxBytes: o.maxBufferedBytes,
    });
    // Time-based start, so a restarted poller's sessions are newer too.
    this.session = this.#now();
    if (o.bufferDir) this.#openStore(o.bufferDir);
  }

  /** The outbox options of a poller configuration. */
  static bufferOptions(cfg: {
    mqttBufferSize: number;
    mqttBufferMaxMb: number;
    mqttBufferDir: string;
  }): Pick<
    PublisherOptions,
    "maxBufferedTelemetry" | "maxBufferedBytes" | "bufferDir"
  > {
    return {
      maxBufferedTelemetry: cfg.mqttBufferSize,
      maxBufferedBytes: cfg.mqttBufferMaxMb * 2 ** 20,
      bufferDir: cfg.mqttBufferDir || undefined,
    };
  }

  /** Open the durable outbox and queue what earlier runs left, first. */
  #openStore(dir: string): void {
    let store: OutboxStore;
    let loaded: OutMessage[];
    try {
      store = OutboxStore.open(dir);
      loaded = store.load().messages;
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
    this.#store = store;
    for (const m of loaded) {
      const dropped = this.outbox.push(m);
      for (const d of dropped) store.delete(d);
      if (dropped.length) this.#logDrops(dropped.length);
    }
    this.#flushStore();
    if (loaded.length) {
      this.#o.log(
        `mqtt: ${loaded.length} unsent messages from an earlier run in ${store.path}` +
          (this.outbox.dropped
            ? ` (${this.outbox.dropped} oldest telemetry dropped to fit the bounds)`
            : "") +
          "; they go first, marked replayed",
      );
    }
  }

  /**
   * The last telemetry `seq` sent on `topic` by an earlier run (durable
   * outbox only; else 0), so numbering continues across restarts.
   */
  lastSeq(topic: string): number {
    return this.#store?.lastSeq(topic) ?? 0;
  }

  /**
   * The body of the last retained message this or an earlier run sent on
   * `topic` (durable outbox only; else null), e.g. the alarm state to
   * continue from. Null when unknown or unreadable.
   */
  lastRetained(topic: string): Record<string, unknown> | null {
    const text = this.#store?.lastRetained(topic);
    if (text === undefined) return null;
    try {
      const v = JSON.parse(text);
      return v && typeof v === "object" && !Array.isArray(v) ? v : null;
    } catch {
      return null;
    }
  }

  /** Store counters (inserts, deletes, transactions), or null in memory mode. */
  get storeStats(): OutboxStore["stats"] | null {
    return this.#store?.stats ?? null;
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
      // We resubscribe and resend ourselves (#onConnect, the outbox).
      resubscribe: false,
      connectTimeout: 5000,
      keepalive: 10,
      will: this.#will(willSession),
    });
    this.#client.on("connect", () => this.#onConnect());
    this.#client.on("close", () => this.#onClose());
    this.#client.on("error", (e) => this.#noteError(e.message));
    this.#client.on("message", (topic, payload) => {
      // A fleet subscribes two exact topics per device: look those up, and
      // match only the (few) wildcard filters.
      this.#subs.get(topic)?.(topic, payload);
      for (const [filter, h] of this.#wildcardSubs) {
        if (mqttMatch(filter, topic)) h(topic, payload);
      }
    });
  }

  /** Subscribe (QoS 1), kept across reconnects. */
  subscribe(filter: string, handler: Handler): void {
    if (/[+#]/.test(filter)) this.#wildcardSubs.set(filter, handler);
    else this.#subs.set(filter, handler);
    if (this.connected) this.#client!.subscribe(filter, { qos: 1 });
  }

  /** Queue a message; it is published now if connected, else replayed later. */
  send(
    kind: MessageKind,
    topic: string,
    body: Record<string, unknown>,
    retain = false,
  ): void {
    const { msg, payload } = makeMessage(kind, topic, body, {
      retain,
      replayed: !this.connected,
    });
    const dropped = this.outbox.push(msg);
    const store = this.#store;
    if (store) {
      if (!isSessionBound(body, retain)) store.add(msg, payload);
      for (const d of dropped) store.delete(d);
      if (kind === "telemetry" && typeof body.seq === "number") {
        store.noteSeq(topic, body.seq);
      }
      // The state a retained message announces (alarms/state) outlives us.
      if (retain && !isSessionBound(body, retain)) {
        store.noteRetained(topic, JSON.stringify(body));
      }
    }
    if (dropped.length) this.#logDrops(dropped.length);
    // With a store, wait a moment so neighbouring messages share a commit.
    if (store) this.#scheduleFlush();
    else this.#pump();
  }

  /** Log the first drop and every 100th, never one line per message. */
  #logDrops(n: number): void {
    const after = this.outbox.dropped;
    const before = after - n;
    if (before > 0 && Math.floor(before / 100) === Math.floor(after / 100)) {
      return;
    }
    const bound = this.outbox.lastDropReason === "bytes"
      ? `${+(this.outbox.maxBytes / 2 ** 20).toFixed(3)} MB`
      : `${this.outbox.maxTelemetry} telemetry messages`;
    this.#o.log(
      `mqtt: buffer full (${bound}); dropped ${after} oldest telemetry so far`,
    );
  }

  #scheduleFlush(): void {
    if (this.#flushTimer !== undefined) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      this.#flushStore();
      this.#pump();
    }, this.#o.storeFlushMs ?? STORE_FLUSH_MS);
  }

  /** Write queued store changes; on an I/O failure go on in memory only. */
  #flushStore(): void {
    const store = this.#store;
    if (!store) return;
    try {
      store.flush();
    } catch (e) {
      this.#store = null;
      this.#o.log(
        `mqtt: buffer store ${store.path} failed (${
          String((e as Error)?.message ?? e).split("\n")[0]
        }); buffering in memory only from now on`,
      );
      try {
        store.close();
      } catch { /* failing already */ }
    }
  }

  #closeStore(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    this.#flushStore();
    try {
      this.#store?.close();
    } catch (e) {
      this.#o.log(
        `mqtt: closing ${this.#store?.path}: ${(e as Error).message}`,
      );
    }
  }

  /** Publish a final offline status and disconnect. */
  async stop(drainMs = 1000): Promise<void> {
    this.#stopping = true;
    this.#reconnect.cancel();
    const c = this.#client;
    if (c?.connected) {
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
    if (c) await endWithin(c, drainMs);
    const kept = this.#store?.path;
    this.#closeStore();
    if (this.outbox.length > 0) {
      this.#o.log(
        `mqtt: stopped with ${this.outbox.length} messages unsent` +
          (kept ? ` (kept in ${kept} for the next run)` : ""),
      );
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
    const e = mqttErrorText(msg, this.#o.username, this.#o.password);
    this.#o.log(e.authRejected ? `mqtt: ${e.text}` : `mqtt: error: ${e.text}`);
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
    this.#reconnect.reset();
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
    // Every filter again (clean session), a few SUBSCRIBE packets, not one
    // per filter: a fleet of 1000 devices has 2000.
    const filters = [...this.#subs.keys(), ...this.#wildcardSubs.keys()];
    for (let i = 0; i < filters.length; i += SUBSCRIBE_BATCH) {
      c.subscribe(filters.slice(i, i + SUBSCRIBE_BATCH), { qos: 1 });
    }
    this.#pump();
  }

  #onClose(): void {
    // Everything not acknowledged goes again on the next connection, oldest
    // first. (Not at "connect": mqtt.js reports connected a moment before
    // it emits that, and a send in between has been published already.)
    this.#inflight.clear();
    this.outbox.rewind();
    // mqtt.js keeps unacknowledged packets of the lost connection and would
    // resend them itself, under ids it reuses after the reconnect, leaving
    // entries no PUBACK ever settles. The outbox resends them: drop its copies.
    const c = this.#client;
    if (c) {
      for (const id of Object.keys(c.outgoing)) {
        c.removeOutgoingMessage(Number(id));
      }
    }
    if (this.#stopping || this.#reconnect.pending) return;
    // The next connection announces a newer session in its will.
    const next = this.#nextSession();
    const step = this.#reconnect.schedule(() => {
      if (this.#stopping || !this.#client) return;
      this.#client.options.will = this.#will(next);
      this.#client.reconnect();
    })!;
    if (step.failures === 1) {
      this.#o.log(
        `mqtt: disconnected; buffering, reconnecting in ${step.delayMs} ms`,
      );
    } else if (step.delayMs < this.#o.reconnect.maxMs) {
      this.#o.log(`mqtt: reconnect failed; next try in ${step.delayMs} ms`);
    }
  }

  #pump(): void {
    const c = this.#client;
    if (!c?.connected) return;
    const store = this.#store;
    while (this.#inflight.size < WINDOW) {
      const m = this.outbox.peekNext();
      if (!m) break;
      // Nothing leaves the process before its row (and seq) is committed;
      // the flush timer commits it and pumps again.
      if (store && !store.isCommitted(m)) {
        this.#scheduleFlush();
        break;
      }
      this.outbox.takeNext();
      this.#inflight.add(m);
      c.publish(
        m.topic,
        wirePayload(m),
        { qos: 1, retain: m.retain },
        (err) => {
          const mine = this.#inflight.delete(m);
          if (err) {
            // Usually a closed connection (#onClose forgot the window; the
            // next connection sends it again). Any other failure leaves the
            // message queued until the next connection too.
            if (mine) this.#pump();
            return;
          }
          if (this.outbox.remove(m) && this.#store) {
            this.#store.delete(m);
            if (this.outbox.length === 0) this.#compactStore();
            else this.#scheduleFlush();
          }
          this.#pump();
        },
      );
    }
  }

  /** Drained: let the store give back space after a long outage. */
  #compactStore(): void {
    try {
      if (!this.#store?.compactIfIdle()) this.#scheduleFlush();
    } catch {
      this.#flushStore();
    }
  }
}

/**
 * End the connection gracefully, but never wait longer than `ms`: mqtt.js's
 * graceful end waits for every PUBACK it is owed, and a packet it resent
 * after a reconnect may never get one, which would hang the shutdown. Our
 * outbox (and store) already decided what was delivered, so forcing is safe.
 */
async function endWithin(c: mqtt.MqttClient, ms: number): Promise<void> {
  if (!c.connected) return void await c.endAsync(true);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ended = await Promise.race([
    c.endAsync(false).then(() => true),
    new Promise<false>((r) => timer = setTimeout(() => r(false), ms)),
  ]);
  clearTimeout(timer);
  if (!ended) await c.endAsync(true);
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
