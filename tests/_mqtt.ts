/** A test subscriber that records every message and lets a test await one. */
import mqtt from "mqtt";

export interface Received {
  topic: string;
  json: Record<string, unknown>;
  retain: boolean;
  atMs: number;
}

export class Recorder {
  readonly messages: Received[] = [];
  #waiters: {
    pred: (m: Received) => boolean;
    resolve: (m: Received) => void;
  }[] = [];
  readonly client: mqtt.MqttClient;

  private constructor(client: mqtt.MqttClient) {
    this.client = client;
    client.on("message", (topic, payload, packet) => {
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(payload.toString());
      } catch {
        json = { unparsable: payload.toString() };
      }
      const m = { topic, json, retain: packet.retain, atMs: Date.now() };
      this.messages.push(m);
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.pred(m)) return true;
        w.resolve(m);
        return false;
      });
    });
  }

  static async connect(
    url: string,
    filter: string,
    opts: mqtt.IClientOptions = {},
  ): Promise<Recorder> {
    const client = await mqtt.connectAsync(url, {
      reconnectPeriod: 200,
      connectTimeout: 5000,
      ...opts,
    });
    const r = new Recorder(client);
    await client.subscribeAsync(filter, { qos: 1 });
    return r;
  }

  on(topic: string): Received[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  /** Resolves with the first message (already received or future) matching. */
  waitFor(
    what: string,
    pred: (m: Received) => boolean,
    timeoutMs = 15_000,
    fromIndex = 0,
  ): Promise<Received> {
    const seen = this.messages.slice(fromIndex).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== done);
        const tail = this.messages.slice(-5).map((m) =>
          `${m.topic} ${JSON.stringify(m.json)}`
        );
        reject(
          new Error(
            `timed out waiting for ${what}; last messages:\n${tail.join("\n")}`,
          ),
        );
      }, timeoutMs);
      const done = (m: Received) => {
        clearTimeout(timer);
        resolve(m);
      };
      this.#waiters.push({ pred, resolve: done });
    });
  }

  /** Wait until `n` messages on `topic` satisfy `pred` (counting from `fromIndex`). */
  async waitForCount(
    what: string,
    topic: string,
    n: number,
    pred: (m: Received) => boolean = () => true,
    timeoutMs = 15_000,
    fromIndex = 0,
  ): Promise<Received[]> {
    const match = (m: Received) => m.topic === topic && pred(m);
    await this.waitFor(
      `${n} x ${what}`,
      () => this.messages.slice(fromIndex).filter(match).length >= n,
      timeoutMs,
      fromIndex,
    );
    return this.messages.slice(fromIndex).filter(match);
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
