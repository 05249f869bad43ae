/**
 * The bounded store-and-forward queue between the poller and MQTT. Pure data
 * structure: no I/O, no clock.
 *
 * Messages leave in the order they were produced. While the broker is away
 * the queue grows up to `maxTelemetry` telemetry messages; beyond that the
 * oldest telemetry is dropped (and counted), while alarm and status events
 * are never dropped, because an operator must see every alarm transition.
 *
 * @example
 * ```ts
 * const box = new Outbox(3600);
 * box.push({ kind: "telemetry", topic, body, replayed: !connected });
 * const next = box.peek();
 * ```
 */

export type MessageKind = "telemetry" | "alarm" | "event";

export interface OutMessage {
  kind: MessageKind;
  topic: string;
  /** JSON-serialisable payload; `replayed` is added when it was held back. */
  body: Record<string, unknown>;
  retain?: boolean;
  /** True when produced while the broker was unreachable. */
  replayed: boolean;
}

export class Outbox {
  readonly maxTelemetry: number;
  #queue: OutMessage[] = [];
  #telemetryCount = 0;
  /** Telemetry messages dropped because the bound was hit. */
  dropped = 0;

  constructor(maxTelemetry: number) {
    if (!(maxTelemetry >= 1)) throw new RangeError("maxTelemetry must be >= 1");
    this.maxTelemetry = maxTelemetry;
  }

  get length(): number {
    return this.#queue.length;
  }

  get telemetryCount(): number {
    return this.#telemetryCount;
  }

  /** Add a message; returns the telemetry message dropped to make room, if any. */
  push(msg: OutMessage): OutMessage | null {
    let droppedMsg: OutMessage | null = null;
    if (msg.kind === "telemetry" && this.#telemetryCount >= this.maxTelemetry) {
      const i = this.#queue.findIndex((m) => m.kind === "telemetry");
      droppedMsg = this.#queue.splice(i, 1)[0];
      this.#telemetryCount--;
      this.dropped++;
    }
    this.#queue.push(msg);
    if (msg.kind === "telemetry") this.#telemetryCount++;
    return droppedMsg;
  }

  /** Oldest message, left in place until `shift()` confirms delivery. */
  peek(index = 0): OutMessage | undefined {
    return this.#queue[index];
  }

  /** Remove the oldest message (after the broker acknowledged it). */
  shift(): OutMessage | undefined {
    const m = this.#queue.shift();
    if (m?.kind === "telemetry") this.#telemetryCount--;
    return m;
  }

  /** Remove a delivered message wherever it is (normally the head). */
  remove(msg: OutMessage): boolean {
    const i = this.#queue[0] === msg ? 0 : this.#queue.indexOf(msg);
    if (i < 0) return false;
    this.#queue.splice(i, 1);
    if (msg.kind === "telemetry") this.#telemetryCount--;
    return true;
  }

  /** Snapshot, oldest first (for persistence and tests). */
  toArray(): OutMessage[] {
    return [...this.#queue];
  }
}

/** The wire payload of a queued message. */
export function encodeMessage(m: OutMessage): string {
  return JSON.stringify(m.replayed ? { ...m.body, replayed: true } : m.body);
}
