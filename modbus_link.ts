/**
 * One Modbus TCP connection to one device, on npm:modbus-serial, with every
 * operation bounded by a timeout of our own and errors named in plain words.
 *
 * modbus-serial does not reconnect by itself, and a request in flight when
 * the peer dies only rejects at its timeout; so the caller decides when to
 * `destroy()` and a later call reopens.
 *
 * @example
 * ```ts
 * const link = new ModbusLink({ host: "127.0.0.1", port: 5020, unitId: 1, timeoutMs: 1000 });
 * const words = await link.readHolding(0, 10);
 * link.destroy();
 * ```
 */
import Modbus from "modbus-serial";

export interface LinkOptions {
  host: string;
  port: number;
  unitId: number;
  /** Bound on connecting and on each request, ms. */
  timeoutMs: number;
}

type Client = InstanceType<typeof Modbus.default>;

/** Standard Modbus exception names (Modbus Application Protocol 1.1b3, 7). */
const EXCEPTIONS: Record<number, string> = {
  1: "illegal function",
  2: "illegal data address",
  3: "illegal data value",
  4: "server device failure",
  5: "acknowledge",
  6: "server device busy",
  8: "memory parity error",
  10: "gateway path unavailable",
  11: "gateway target failed to respond",
};

/** A short, stable, human reason for a failed Modbus operation. */
export function describeModbusError(e: unknown): string {
  const err = e as
    | { message?: string; code?: string; errno?: string; modbusCode?: number }
    | null;
  if (err && typeof err.modbusCode === "number") {
    const name = EXCEPTIONS[err.modbusCode] ?? "unknown exception";
    return `modbus exception ${err.modbusCode} (${name})`;
  }
  const code = err?.code ?? err?.errno ?? "";
  const msg = String(err?.message ?? err ?? "");
  if (code === "ETIMEDOUT" || /timed out|timeout/i.test(msg)) return "timeout";
  if (code === "ECONNREFUSED" || /refused/i.test(msg)) {
    return "connection refused";
  }
  if (code === "ECONNRESET" || /reset/i.test(msg)) return "connection reset";
  if (code === "EPIPE" || /broken pipe/i.test(msg)) return "connection reset";
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH") {
    return "host unreachable";
  }
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "host not found";
  if (/port not open/i.test(msg)) return "connection closed";
  if (/CRC|length|unexpected|bad|invalid/i.test(msg)) {
    return `bad response (${msg.slice(0, 80)})`;
  }
  return msg.slice(0, 120) || "unknown error";
}

export class TimeoutError extends Error {
  override name = "TimeoutError";
  code = "ETIMEDOUT";
}

/** Rejects with TimeoutError after `ms`; the timer never outlives the race. */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} timed out`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export class ModbusLink {
  readonly #opts: LinkOptions;
  #client: Client | null = null;
  #opening: Promise<Client> | null = null;

  constructor(opts: LinkOptions) {
    this.#opts = opts;
  }

  get isOpen(): boolean {
    return this.#client?.isOpen === true;
  }

  /** Connect if not connected. */
  open(): Promise<Client> {
    if (this.#client?.isOpen) return Promise.resolve(this.#client);
    if (this.#opening) return this.#opening;
    this.destroy();
    const client = new Modbus.default();
    // Without a listener, a socket error event would crash the process.
    client.on("error", () => {});
    client.setID(this.#opts.unitId);
    client.setTimeout(this.#opts.timeoutMs);
    const opening = withTimeout(
      client.connectTCP(this.#opts.host, { port: this.#opts.port }).then(
        () => client,
      ),
      this.#opts.timeoutMs,
      "connect",
    );
    this.#client = client;
    this.#opening = opening;
    return opening.then(
      (c) => {
        if (this.#opening === opening) this.#opening = null;
        return c;
      },
      (e) => {
        if (this.#opening === opening) {
          this.#opening = null;
          this.destroy();
        }
        throw e;
      },
    );
  }

  /** FC03: `count` holding registers from `start`, as raw words. */
  async readHolding(start: number, count: number): Promise<number[]> {
    const c = await this.open();
    const res = await withTimeout(
      c.readHoldingRegisters(start, count),
      this.#opts.timeoutMs + 50,
      "read",
    );
    if (!Array.isArray(res.data) || res.data.length !== count) {
      throw new Error(
        `bad response length: expected ${count} got ${res.data?.length}`,
      );
    }
    return res.data;
  }

  /** FC06: write one register. */
  async writeRegister(address: number, value: number): Promise<void> {
    const c = await this.open();
    await withTimeout(
      c.writeRegister(address, value),
      this.#opts.timeoutMs + 50,
      "write",
    );
  }

  /** Drop the connection at once (pending requests are abandoned). */
  destroy(): void {
    const c = this.#client;
    this.#client = null;
    this.#opening = null;
    if (!c) return;
    try {
      c.destroy(() => {});
    } catch { /* already gone */ }
  }
}
