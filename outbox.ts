/**
 * The bounded store-and-forward queue between the poller and MQTT. Pure data
 * structure: no I/O, no clock.
 *
 * Messages leave in the order they were produced. While the broker is away
 * the queue grows up to `maxTelemetry` telemetry messages and `maxBytes`
 * bytes (topic + payload, all kinds counted); when either bound is hit the
 * oldest telemetry is dropped (and counted). Alarm and event messages are
 * never dropped, because an operator must see every alarm transition, so
 * they alone may take the queue past `maxBytes`.
 *
 * Every operation is amortised O(1): a deque with a head index and lazy
 * deletion (holes left by acknowledged or dropped messages are skipped and
 * compacted away once they outnumber the live messages), plus a second
 * deque of the telemetry messages in order, so the oldest telemetry is found
 * without a scan.
 *
 * @example
 * ```ts
 * const box = new Outbox({ maxTelemetry: 3600, maxBytes: 64 * 2 ** 20 });
 * box.push(makeMessage("telemetry", topic, body, { replayed: !connected }).msg);
 * const m = box.takeNext(); // publish wirePayload(m); box.remove(m) on PUBACK
 * ```
 */

export type MessageKind = "telemetry" | "alarm" | "event";

/**
 * A queued message. It keeps the body object as produced rather than its
 * JSON text, which V8 holds in less heap (a queue of telemetry measured 303
 * bytes a message against 431 as text, for 241 bytes on the wire); the text
 * is made again when sent. Messages loaded from disk have only the text.
 */
export interface OutMessage {
  kind: MessageKind;
  topic: string;
  /** The body as produced; `replayed` is added on the wire when set. */
  body?: Record<string, unknown>;
  /** Or the payload exactly as it goes on the wire. */
  payload?: string;
  retain?: boolean;
  /** True when produced while the broker was unreachable (or in a previous run). */
  replayed: boolean;
  /** Approximate bytes: topic + JSON payload (ASCII, one byte a character). */
  bytes: number;
  /** Key of the message's row in the durable store, when there is one. */
  storeId?: number;
}

/** Default byte bound: 64 MiB of topic + payload. */
export const DEFAULT_MAX_BYTES = 64 * 2 ** 20;

export interface OutboxBounds {
  /** Most telemetry messages held. */
  maxTelemetry: number;
  /** Most bytes (topic + payload) held; default DEFAULT_MAX_BYTES. */
  maxBytes?: number;
}

/** Array slot of a queued message; -1 once it has left the queue. */
const SLOT = Symbol("outbox slot");
type Slotted = OutMessage & { [SLOT]?: number };

const NO_MESSAGES: readonly OutMessage[] = Object.freeze([]);

/** Dead slots tolerated before compacting (and never more than live ones). */
const COMPACT_MIN = 1024;

/** The payload of a queued message as it goes on the wire. */
export function wirePayload(m: OutMessage): string {
  return m.payload ??
    encodeMessage({ body: m.body ?? {}, replayed: m.replayed });
}

export class Outbox {
  readonly maxTelemetry: number;
  readonly maxBytes: number;
  #items: (Slotted | undefined)[] = [];
  /** Index of the oldest live message (or items.length when empty). */
  #head = 0;
  /** Where takeNext() looks next. */
  #cursor = 0;
  #length = 0;
  #bytes = 0;
  /** Telemetry in order; dead entries are skipped and compacted lazily. */
  #tel: (Slotted | undefined)[] = [];
  #telHead = 0;
  #telemetryCount = 0;
  /** Telemetry messages dropped because a bound was hit. */
  dropped = 0;
  /** Which bound made the latest drop. */
  lastDropReason: "count" | "bytes" | null = null;

  constructor(bounds: OutboxBounds | number) {
    const b = typeof bounds === "number" ? { maxTelemetry: bounds } : bounds;
    if (!(b.maxTelemetry >= 1)) {
      throw new RangeError("maxTelemetry must be >= 1");
    }
    const maxBytes = b.maxBytes ?? DEFAULT_MAX_BYTES;
    if (!(maxBytes >= 1)) throw new RangeError("maxBytes must be >= 1");
    this.maxTelemetry = b.maxTelemetry;
    this.maxBytes = maxBytes;
  }

  /** Messages queued (sent but not yet acknowledged included). */
  get length(): number {
    return this.#length;
  }

  get telemetryCount(): number {
    return this.#telemetryCount;
  }

  /** Bytes (topic + payload) queued. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Append a message (a message object goes into one outbox once). Returns
   * the telemetry dropped to respect the bounds, oldest first: usually none.
   */
  push(msg: OutMessage): readonly OutMessage[] {
    const m = msg as Slotted;
    if (m[SLOT] !== undefined) throw new Error("message already queued");
    m[SLOT] = this.#items.length;
    this.#items.push(m);
    this.#length++;
    this.#bytes += m.bytes;
    if (m.kind === "telemetry") {
      this.#tel.push(m);
      this.#telemetryCount++;
    }
    let dropped: OutMessage[] | null = null;
    while (
      this.#telemetryCount > this.maxTelemetry ||
      (this.#bytes > this.maxBytes && this.#telemetryCount > 0)
    ) {
      this.lastDropReason = this.#telemetryCount > this.maxTelemetry
        ? "count"
        : "bytes";
      const victim = this.#oldestTelemetry();
      this.#unlink(victim);
      this.dropped++;
      (dropped ??= []).push(victim);
    }
    return dropped ?? NO_MESSAGES;
  }

  /** Oldest message, left in place until `remove()` confirms delivery. */
  peek(): OutMessage | undefined {
    return this.#items[this.#head];
  }

  /**
   * The next message not yet taken since the last `rewind()`, oldest first.
   * The publisher hands these to MQTT and `remove()`s each on its PUBACK.
   */
  takeNext(): OutMessage | undefined {
    const m = this.peekNext();
    if (m) this.#cursor++;
    return m;
  }

  /** What `takeNext()` would return, left untaken. */
  peekNext(): OutMessage | undefined {
    const items = this.#items;
    let i = Math.max(this.#cursor, this.#head);
    while (i < items.length && items[i] === undefined) i++;
    this.#cursor = i;
    return items[i];
  }

  /** Start `takeNext()` from the oldest again (after a lost connection). */
  rewind(): void {
    this.#cursor = this.#head;
  }

  /** Remove the oldest message. */
  shift(): OutMessage | undefined {
    const m = this.#items[this.#head];
    if (m) this.#unlink(m);
    return m;
  }

  /** Remove a delivered message wherever it is (normally the head). */
  remove(msg: OutMessage): boolean {
    const slot = (msg as Slotted)[SLOT];
    if (slot === undefined || slot < 0 || this.#items[slot] !== msg) {
      return false;
    }
    this.#unlink(msg as Slotted);
    return true;
  }

  /** Snapshot, oldest first (for tests and diagnostics). */
  toArray(): OutMessage[] {
    const out: OutMessage[] = [];
    for (let i = this.#head; i < this.#items.length; i++) {
      const m = this.#items[i];
      if (m) out.push(m);
    }
    return out;
  }

  #oldestTelemetry(): Slotted {
    const tel = this.#tel;
    while (tel[this.#telHead]![SLOT]! < 0) tel[this.#telHead++] = undefined;
    return tel[this.#telHead]!;
  }

  #unlink(m: Slotted): void {
    const slot = m[SLOT]!;
    const items = this.#items;
    items[slot] = undefined;
    m[SLOT] = -1;
    this.#length--;
    this.#bytes -= m.bytes;
    if (slot === this.#head) {
      while (this.#head < items.length && items[this.#head] === undefined) {
        this.#head++;
      }
    }
    if (m.kind === "telemetry") {
      this.#telemetryCount--;
      const tel = this.#tel;
      // Release acknowledged telemetry at the front at once (the usual case).
      while (this.#telHead < tel.length && tel[this.#telHead]![SLOT]! < 0) {
        tel[this.#telHead++] = undefined;
      }
      const dead = tel.length - this.#telemetryCount;
      if (dead > COMPACT_MIN && dead > this.#telemetryCount) {
        this.#tel = tel.filter((t) => t !== undefined && t[SLOT]! >= 0);
        this.#telHead = 0;
      }
    }
    const holes = items.length - this.#length;
    if (holes > COMPACT_MIN && holes > this.#length) this.#compact();
  }

  /** Drop the holes; O(n), but only after more than n removals. */
  #compact(): void {
    const old = this.#items;
    const items: Slotted[] = [];
    let cursor = 0;
    for (let i = this.#head; i < old.length; i++) {
      if (i === this.#cursor) cursor = items.length;
      const m = old[i];
      if (m === undefined) continue;
      m[SLOT] = items.length;
      items.push(m);
    }
    if (this.#cursor >= old.length) cursor = items.length;
    this.#items = items;
    this.#head = 0;
    this.#cursor = cursor;
  }
}

/** A message as produced, before encoding. */
export interface ProducedMessage {
  kind: MessageKind;
  topic: string;
  /** JSON-serialisable payload; `replayed` is added when it was held back. */
  body: Record<string, unknown>;
  retain?: boolean;
  replayed: boolean;
}

/** The wire payload of a message body. */
export function encodeMessage(
  m: Pick<ProducedMessage, "body" | "replayed"> & Partial<ProducedMessage>,
): string {
  return JSON.stringify(m.replayed ? { ...m.body, replayed: true } : m.body);
}

/**
 * A queued message for `body`, and its wire payload (encoded once here to
 * know its size; keep it only as long as needed).
 */
export function makeMessage(
  kind: MessageKind,
  topic: string,
  body: Record<string, unknown>,
  opts: { retain?: boolean; replayed: boolean },
): { msg: OutMessage; payload: string } {
  const payload = encodeMessage({ body, replayed: opts.replayed });
  return {
    msg: {
      kind,
      topic,
      body,
      retain: opts.retain ?? false,
      replayed: opts.replayed,
      bytes: topic.length + payload.length,
    },
    payload,
  };
}

/** A queued message that exists only as wire text (loaded from disk). */
export function textMessage(
  kind: MessageKind,
  topic: string,
  payload: string,
  opts: { retain?: boolean; replayed: boolean; storeId?: number },
): OutMessage {
  return {
    kind,
    topic,
    payload,
    retain: opts.retain ?? false,
    replayed: opts.replayed,
    bytes: topic.length + payload.length,
    storeId: opts.storeId,
  };
}

/**
 * `payload` (a JSON object as `encodeMessage` wrote it without the marker)
 * with `"replayed": true` added, exactly as `encodeMessage` would add it.
 */
export function markReplayed(payload: string): string {
  if (!payload.endsWith("}")) throw new Error("payload is not a JSON object");
  return payload === "{}"
    ? '{"replayed":true}'
    : `${payload.slice(0, -1)},"replayed":true}`;
}
