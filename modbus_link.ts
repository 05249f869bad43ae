/**
 * One Modbus TCP connection to one device: a small client of our own on
 * node:net (FC03 and FC06 are all the poller needs), so that framing,
 * transaction ids and every failure are under our control and each failure
 * has a short, stable name (see `describeModbusError`).
 *
 * Why not modbus-serial's client: after a truncated frame it keeps the
 * partial bytes and mis-frames every later reply on that connection, takes
 * garbage with any protocol id as a frame, and reports a reply with a wrong
 * transaction id only as a timeout. Here:
 *
 * - Every request is bounded by `timeoutMs`, connect included: one deadline
 *   per request, so a try never takes longer than the timeout.
 * - A request may carry an AbortSignal: aborted before it is sent, it is
 *   never sent (`NotSentError`); aborted while in flight it fails at once
 *   as `NoReplyError` (the device may or may not have acted on it).
 * - A late reply to a request that already timed out (a slow device) is
 *   recognised by its transaction id and discarded, never taken as the
 *   answer to the next request.
 * - Any other transaction id, a non-Modbus header, a truncated frame or a
 *   reply of the wrong shape fails the request as `bad response (...)` and
 *   drops the connection, because framing can no longer be trusted.
 * - Requests are serialised: one in flight at a time per connection.
 *
 * The link does not reconnect by itself: a failed request leaves it closed
 * (or open, after a plain timeout) and the next call reopens as needed.
 *
 * @example
 * ```ts
 * const link = new ModbusLink({ host: "127.0.0.1", port: 5020, unitId: 1, timeoutMs: 1000 });
 * const words = await link.readHolding(0, 10);
 * link.destroy();
 * ```
 */
import net from "node:net";
import { Buffer } from "node:buffer";

export interface LinkOptions {
  host: string;
  port: number;
  unitId: number;
  /** Bound on connecting and on each request, ms. */
  timeoutMs: number;
}

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

/** A failed Modbus operation; `reason` is what telemetry's `error` carries. */
export class ModbusError extends Error {
  override name = "ModbusError";
  readonly reason: string;
  /** Set for a Modbus exception response. */
  readonly modbusCode?: number;
  /**
   * True when the request had been sent before it failed (other than by an
   * exception response): the device may have acted on it (a write may have
   * landed).
   */
  sent = false;
  constructor(reason: string, modbusCode?: number) {
    super(reason);
    this.reason = reason;
    if (modbusCode !== undefined) this.modbusCode = modbusCode;
  }
}

export class TimeoutError extends ModbusError {
  override name = "TimeoutError";
  code = "ETIMEDOUT";
  constructor() {
    super("timeout");
  }
}

/** The request's signal aborted before it was sent: the device never saw it. */
export class NotSentError extends ModbusError {
  override name = "NotSentError";
  constructor() {
    super("not sent (deadline passed)");
  }
}

/** The request's signal aborted after it was sent, before the reply. */
export class NoReplyError extends ModbusError {
  override name = "NoReplyError";
  constructor() {
    super("no reply before the deadline");
  }
}

/** Per-request options. */
export interface RequestOptions {
  /** Abort: before sending, the request is dropped; after, it fails at once. */
  signal?: AbortSignal;
}

/** The reason string of a Modbus exception response. */
export function exceptionReason(code: number): string {
  return `modbus exception ${code} (${
    EXCEPTIONS[code] ?? "unknown exception"
  })`;
}

/** A short, stable, human reason for a failed Modbus operation. */
export function describeModbusError(e: unknown): string {
  if (e instanceof ModbusError) return e.reason;
  const err = e as
    | { message?: string; code?: string; errno?: string; modbusCode?: number }
    | null;
  if (err && typeof err.modbusCode === "number") {
    return exceptionReason(err.modbusCode);
  }
  const code = err?.code ?? err?.errno ?? "";
  const msg = String(err?.message ?? err ?? "");
  return socketReason(code) ??
    (/timed out|timeout/i.test(msg) ? "timeout" : null) ??
    (/refused/i.test(msg) ? "connection refused" : null) ??
    (/reset|broken pipe/i.test(msg) ? "connection reset" : null) ??
    (msg.slice(0, 120) || "unknown error");
}

/** Reason for a socket error code, or null when it is not one we name. */
function socketReason(code: string): string | null {
  switch (code) {
    case "ETIMEDOUT":
      return "timeout";
    case "ECONNREFUSED":
      return "connection refused";
    case "ECONNRESET":
    case "EPIPE":
      return "connection reset";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return "host unreachable";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "host not found";
    default:
      return null;
  }
}

const MBAP = 7; // transaction(2) protocol(2) length(2) unit(1)
const MAX_PDU = 253;
/** Timed-out transaction ids remembered per connection (late replies). */
const ABANDONED_KEPT = 32;

interface Pending {
  tid: number;
  fc: number;
  check: (pdu: Buffer) => string | null;
  resolve: (pdu: Buffer) => void;
  reject: (e: ModbusError) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class ModbusLink {
  readonly #opts: LinkOptions;
  #socket: net.Socket | null = null;
  #opening: Promise<void> | null = null;
  #rx: Buffer = Buffer.alloc(0);
  #pending: Pending | null = null;
  #lastSocketError = "";
  #tid = 0;
  #abandoned: number[] = [];
  /** Serialises requests. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: LinkOptions) {
    this.#opts = opts;
  }

  get isOpen(): boolean {
    const s = this.#socket;
    return s !== null && this.#opening === null && !s.destroyed &&
      s.readyState === "open";
  }

  /** Connect if not connected, within `timeoutMs` (default: the link's). */
  open(timeoutMs: number = this.#opts.timeoutMs): Promise<void> {
    if (this.isOpen) return Promise.resolve();
    if (this.#opening) return this.#opening;
    this.destroy();
    const socket = new net.Socket();
    this.#socket = socket;
    this.#rx = Buffer.alloc(0);
    this.#abandoned = [];
    this.#lastSocketError = "";
    const opening = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        this.#drop(socket);
        reject(new TimeoutError());
      }, timeoutMs);
      const onConnect = () => {
        cleanup();
        socket.setNoDelay(true);
        resolve();
      };
      const onFail = () => {
        cleanup();
        this.#drop(socket);
        reject(
          new ModbusError(
            socketReason(this.#lastSocketError) ?? "connection closed",
          ),
        );
      };
      const cleanup = () => {
        clearTimeout(timer);
        socket.off("connect", onConnect);
        socket.off("close", onFail);
      };
      socket.once("connect", onConnect);
      socket.once("close", onFail);
    });
    // Never unhandled: a socket error always ends in 'close'.
    socket.on("error", (e: Error & { code?: string }) => {
      this.#lastSocketError = e.code ?? "";
    });
    socket.on("data", (chunk: Buffer) => this.#onData(socket, chunk));
    socket.on("close", () => this.#onClose(socket));
    socket.connect({ host: this.#opts.host, port: this.#opts.port });
    this.#opening = opening;
    return opening.finally(() => {
      if (this.#opening === opening) this.#opening = null;
    });
  }

  /** FC03: `count` holding registers from `start`, as raw words. */
  async readHolding(
    start: number,
    count: number,
    opts: RequestOptions = {},
  ): Promise<number[]> {
    const req = Buffer.alloc(5);
    req.writeUInt8(0x03, 0);
    req.writeUInt16BE(start, 1);
    req.writeUInt16BE(count, 3);
    const pdu = await this.#request(req, (p) => {
      if (p.length < 2 || p[1] !== 2 * count || p.length !== 2 + 2 * count) {
        return "byte count mismatch";
      }
      return null;
    }, opts);
    const words: number[] = [];
    for (let i = 0; i < count; i++) words.push(pdu.readUInt16BE(2 + 2 * i));
    return words;
  }

  /** FC06: write one register. */
  async writeRegister(
    address: number,
    value: number,
    opts: RequestOptions = {},
  ): Promise<void> {
    const req = Buffer.alloc(5);
    req.writeUInt8(0x06, 0);
    req.writeUInt16BE(address, 1);
    req.writeUInt16BE(value & 0xffff, 3);
    await this.#request(
      req,
      (p) => p.equals(req) ? null : "echo mismatch",
      opts,
    );
  }

  /** Drop the connection at once; a request in flight fails. */
  destroy(): void {
    const s = this.#socket;
    if (s) this.#drop(s);
  }

  #request(
    pdu: Buffer,
    check: (pdu: Buffer) => string | null,
    opts: RequestOptions,
  ): Promise<Buffer> {
    const { signal } = opts;
    let sent = false;
    const run = async () => {
      if (signal?.aborted) throw new NotSentError();
      // One deadline for connect + request: a try is bounded by timeoutMs.
      const deadline = performance.now() + this.#opts.timeoutMs;
      await this.open();
      if (signal?.aborted) throw new NotSentError();
      const socket = this.#socket;
      if (!socket || !this.isOpen) throw new ModbusError("connection closed");
      const remainingMs = Math.max(0, deadline - performance.now());
      const tid = this.#tid = (this.#tid + 1) & 0xffff;
      const frame = Buffer.alloc(MBAP + pdu.length);
      frame.writeUInt16BE(tid, 0);
      frame.writeUInt16BE(0, 2);
      frame.writeUInt16BE(pdu.length + 1, 4);
      frame.writeUInt8(this.#opts.unitId, 6);
      pdu.copy(frame, MBAP);
      return await new Promise<Buffer>((resolve, reject) => {
        const onAbort = () => {
          if (this.#pending?.tid !== tid) return;
          clearTimeout(this.#pending.timer);
          this.#pending = null;
          // Its reply may still come: recognise and skip it, as after a timeout.
          this.#abandon(tid);
          reject(new NoReplyError());
        };
        const settle = {
          resolve: (b: Buffer) => {
            signal?.removeEventListener("abort", onAbort);
            resolve(b);
          },
          reject: (e: ModbusError) => {
            signal?.removeEventListener("abort", onAbort);
            reject(e);
          },
        };
        const timer = setTimeout(() => {
          signal?.removeEventListener("abort", onAbort);
          if (this.#pending?.tid !== tid) return;
          this.#pending = null;
          if (this.#rx.length > 0) {
            // Part of a frame and then silence: framing is lost.
            reject(new ModbusError("bad response (truncated frame)"));
            this.#drop(socket);
            return;
          }
          // A late reply may still come; it will be recognised and skipped.
          this.#abandon(tid);
          reject(new TimeoutError());
        }, remainingMs);
        this.#pending = {
          tid,
          fc: pdu[0],
          check,
          resolve: settle.resolve,
          reject: settle.reject,
          timer,
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        sent = true;
        socket.write(frame);
      });
    };
    const tracked = () =>
      run().catch((e) => {
        if (sent && e instanceof ModbusError && e.modbusCode === undefined) {
          e.sent = true;
        }
        throw e;
      });
    const result = this.#queue.then(tracked, tracked);
    this.#queue = result.catch(() => {});
    if (!signal) return result;
    // Aborted while still queued or connecting: fail now; run() sees the
    // abort before it would send, so the device never gets the request.
    return new Promise<Buffer>((resolve, reject) => {
      const onAbort = () => {
        if (!sent) reject(new NotSentError());
      };
      signal.addEventListener("abort", onAbort, { once: true });
      result.then(resolve, reject).finally(() =>
        signal.removeEventListener("abort", onAbort)
      );
    });
  }

  #abandon(tid: number): void {
    this.#abandoned.push(tid);
    if (this.#abandoned.length > ABANDONED_KEPT) this.#abandoned.shift();
  }

  #settle(err: ModbusError | null, pdu?: Buffer): void {
    const p = this.#pending;
    if (!p) return;
    this.#pending = null;
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(pdu!);
  }

  /** Fail the request in flight and drop the connection. */
  #fail(socket: net.Socket, reason: string): void {
    this.#settle(new ModbusError(reason));
    this.#drop(socket);
  }

  #onData(socket: net.Socket, chunk: Buffer): void {
    if (socket !== this.#socket) return;
    this.#rx = this.#rx.length ? Buffer.concat([this.#rx, chunk]) : chunk;
    while (this.#rx.length >= 6) {
      const tid = this.#rx.readUInt16BE(0);
      const protocol = this.#rx.readUInt16BE(2);
      const length = this.#rx.readUInt16BE(4);
      if (protocol !== 0 || length < 2 || length > MAX_PDU + 1) {
        return this.#fail(socket, "bad response (not Modbus TCP)");
      }
      if (this.#rx.length < 6 + length) return; // wait for the rest
      const unit = this.#rx[6];
      const pdu = this.#rx.subarray(MBAP, 6 + length);
      this.#rx = this.#rx.subarray(6 + length);
      if (this.#rx.length === 0) this.#rx = Buffer.alloc(0);
      const p = this.#pending;
      if (!p || tid !== p.tid) {
        // A late answer to a request that timed out: skip it.
        if (this.#abandoned.includes(tid)) continue;
        return this.#fail(socket, "bad response (transaction id mismatch)");
      }
      if (unit !== this.#opts.unitId) {
        return this.#fail(socket, "bad response (unit id mismatch)");
      }
      if (pdu[0] === (p.fc | 0x80)) {
        // An exception is a well-formed answer: the connection stays.
        const code = pdu.length >= 2 ? pdu[1] : 0;
        this.#settle(new ModbusError(exceptionReason(code), code));
        continue;
      }
      if (pdu[0] !== p.fc) {
        return this.#fail(socket, "bad response (function code mismatch)");
      }
      const why = p.check(pdu);
      if (why) return this.#fail(socket, `bad response (${why})`);
      this.#settle(null, Buffer.from(pdu));
    }
  }

  #onClose(socket: net.Socket): void {
    if (socket !== this.#socket) return;
    const partial = this.#rx.length > 0;
    this.#socket = null;
    this.#rx = Buffer.alloc(0);
    const reason = socketReason(this.#lastSocketError) ??
      (partial ? "bad response (truncated frame)" : "connection closed");
    this.#settle(new ModbusError(reason));
  }

  /** Destroy `socket`; if it is the current one, forget it and fail its request. */
  #drop(socket: net.Socket): void {
    if (socket === this.#socket) {
      this.#socket = null;
      this.#opening = null;
      this.#rx = Buffer.alloc(0);
      this.#settle(new ModbusError("connection closed"));
    }
    socket.removeAllListeners("data");
    // Keep an error listener: a late socket error must not crash the process.
    socket.on("error", () => {});
    socket.destroy();
  }
}
