/**
 * A small Modbus TCP server on `node:net`: MBAP framing with partial-frame
 * buffering, a pure PDU handler for holding registers, standard exception
 * responses. Written for the simulator because modbus-serial's ServerTCP
 * defers every request by a timer, answers 04 where the spec says 03, and
 * never drops a connection that sends an impossible MBAP header.
 *
 * Behaviour:
 * - FC03 and FC04 read the same register bank; FC06 and FC16 write it.
 *   Exceptions follow the Modbus Application Protocol spec v1.1b3 order:
 *   01 unknown function; 03 bad quantity or malformed PDU length; 02 address
 *   range; then the bank's own verdict on a write (02 read-only, 03 value).
 *   FC16 is all-or-nothing.
 * - Unit id: requests to the configured unit id, to 0 and to 255 are served
 *   (the Modbus TCP implementation guide says a directly connected device
 *   should accept 0xFF and 0); any other unit id gets exception 0x0B
 *   (gateway target device failed to respond), a quick, diagnosable answer
 *   instead of a client timeout. Responses echo the request's unit id.
 * - A connection is dropped (its earlier responses flushed, then closed) on
 *   an impossible MBAP header: protocol id != 0, length < 2 (no function
 *   code) or length > 254 (ADU over 260 bytes). Nothing else is read from it.
 * - Requests are answered synchronously in arrival order; a client that does
 *   not read its responses is paused until its socket drains.
 *
 * @example
 * ```ts
 * const words = new Array(20).fill(0);
 * const srv = await listenModbusTcp({
 *   host: "127.0.0.1", port: 5020, unitId: 1,
 *   bank: {
 *     size: 20,
 *     read: (start, count) => words.slice(start, start + count),
 *     checkWrite: () => 0,
 *     write: (start, values) => words.splice(start, values.length, ...values),
 *   },
 * });
 * await srv.close();
 * ```
 */
import net from "node:net";
import { Buffer } from "node:buffer";

export const EXCEPTION = {
  ILLEGAL_FUNCTION: 0x01,
  ILLEGAL_DATA_ADDRESS: 0x02,
  ILLEGAL_DATA_VALUE: 0x03,
  SERVER_DEVICE_FAILURE: 0x04,
  GATEWAY_TARGET_FAILED: 0x0b,
} as const;

export const FC = {
  READ_HOLDING: 0x03,
  READ_INPUT: 0x04,
  WRITE_SINGLE: 0x06,
  WRITE_MULTIPLE: 0x10,
} as const;

/** MBAP length field bounds: unit id + function code .. unit id + 253. */
export const MBAP_MIN_LENGTH = 2;
export const MBAP_MAX_LENGTH = 254;
const MAX_READ = 125;
const MAX_WRITE = 123;

/** The registers a server exposes, addresses 0..size-1. */
export interface RegisterBank {
  readonly size: number;
  /** Words at start..start+count-1; only called with an in-range block. */
  read(start: number, count: number): ArrayLike<number>;
  /**
   * Verdict on a write without changing anything: 0 to accept, otherwise
   * the exception code (02 read-only, 03 value out of range).
   */
  checkWrite(start: number, values: readonly number[]): number;
  /** Apply a write that checkWrite accepted. */
  write(start: number, values: readonly number[]): void;
}

/** Exception response PDU: function code | 0x80, exception code. */
export function exceptionPdu(fc: number, code: number): Uint8Array {
  return Uint8Array.of((fc | 0x80) & 0xff, code);
}

function u16(pdu: Uint8Array, at: number): number {
  return (pdu[at] << 8) | pdu[at + 1];
}

/**
 * Answer one request PDU (function code + data, no MBAP header) against
 * `bank`. Pure apart from the bank's own write; never throws for any input
 * (a throwing bank turns into exception 04).
 */
export function handlePdu(bank: RegisterBank, pdu: Uint8Array): Uint8Array {
  if (pdu.length < 1) {
    return exceptionPdu(0, EXCEPTION.ILLEGAL_FUNCTION);
  }
  const fc = pdu[0];
  try {
    switch (fc) {
      case FC.READ_HOLDING:
      case FC.READ_INPUT: {
        if (pdu.length !== 5) {
          return exceptionPdu(fc, EXCEPTION.ILLEGAL_DATA_VALUE);
        }
        const start = u16(pdu, 1);
        const count = u16(pdu, 3);
        if (count < 1 || count > MAX_READ) {
          return exceptionPdu(fc, EXCEPTION.ILLEGAL_DATA_VALUE);
        }
        if (start + count > bank.size) {
          return exceptionPdu(fc, EXCEPTION.ILLEGAL_DATA_ADDRESS);
        }
        const words = bank.read(start, count);
        const out = new Uint8Array(2 + 2 * count);
        out[0] = fc;
        out[1] = 2 * count;
        for (let i = 0; i < count; i++) {
          const w = words[i] & 0xffff;
          out[2 + 2 * i] = w >> 8;
          out[3 + 2 * i] = w & 0xff;
        }
        return out;
      }
      case FC.WRITE_SINGLE: {
        if (pdu.length !== 5) {
          return exceptionPdu(fc, EXCEPTION.ILLEGAL_DATA_VALUE);
        }
        const addr = u16(pdu, 1);
        if (addr >= bank.size) {
          return exceptionPdu(fc, EXCEPTION.ILLEGAL_DATA_ADDRESS);
        }
        const values = [u16(pdu, 3)];
        const code = bank.checkWrite(addr, values);
        if (code !== 0) return exceptionPdu(fc, code);
        bank.write(addr, values);
        return pdu.slice(0, 5);
      }
      case FC.WRITE_MULTIPLE: {
        if (pdu.length < 6) {
          return exceptionPdu(fc, EXCEPTION.ILLEGAL_DATA_VALUE);
        }
        const start = u16(pdu, 1);
        const count = u16(pdu, 3);
        const bytes = pdu[5];
        if (
          count < 1 || count > MAX_WRITE || bytes !== 2 * count ||
          pdu.length !== 6 + bytes
        ) {
          return exceptionPdu(fc, EXCEPTION.ILLEGAL_DATA_VALUE);
        }
        if (start + count > bank.size) {
          return exceptionPdu(fc, EXCEPTION.ILLEGAL_DATA_ADDRESS);
        }
        const values: number[] = [];
        for (let i = 0; i < count; i++) values.push(u16(pdu, 6 + 2 * i));
        const code = bank.checkWrite(start, values);
        if (code !== 0) return exceptionPdu(fc, code);
        bank.write(start, values);
        return pdu.slice(0, 5);
      }
      default:
        return exceptionPdu(fc, EXCEPTION.ILLEGAL_FUNCTION);
    }
  } catch {
    return exceptionPdu(fc, EXCEPTION.SERVER_DEVICE_FAILURE);
  }
}

/** One complete request frame out of the byte stream. */
export interface MbapFrame {
  transactionId: number;
  unitId: number;
  pdu: Uint8Array;
}

/** Why a stream was found impossible (the connection must be dropped). */
export class FramingError extends Error {
  override name = "FramingError";
}

/**
 * Splits a TCP byte stream into MBAP frames, buffering partial ones. When a
 * header shows an impossible frame, `push` returns the complete frames before
 * it and sets `error`; from then on the decoder ignores all input.
 */
export class MbapDecoder {
  #buf: Buffer = Buffer.alloc(0);
  /** Why the stream is impossible, once it is (then drop the connection). */
  error: FramingError | null = null;

  /** Bytes held waiting for the rest of a frame. */
  get pending(): number {
    return this.#buf.length;
  }

  push(chunk: Uint8Array): MbapFrame[] {
    if (this.error) return [];
    const buf = this.#buf.length === 0
      ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
      : Buffer.concat([this.#buf, chunk]);
    const frames: MbapFrame[] = [];
    let at = 0;
    while (buf.length - at >= 4) {
      const protocol = buf.readUInt16BE(at + 2);
      if (protocol !== 0) {
        return this.#fail(frames, `MBAP protocol id ${protocol}`);
      }
      if (buf.length - at < 6) break;
      const length = buf.readUInt16BE(at + 4);
      if (length < MBAP_MIN_LENGTH || length > MBAP_MAX_LENGTH) {
        return this.#fail(frames, `MBAP length ${length}`);
      }
      if (buf.length - at < 6 + length) break;
      frames.push({
        transactionId: buf.readUInt16BE(at),
        unitId: buf[at + 6],
        // Copy: the chunk's memory may be reused by the runtime.
        pdu: Uint8Array.prototype.slice.call(buf, at + 7, at + 6 + length),
      });
      at += 6 + length;
    }
    // Keep only the (short, < 260 bytes) remainder, copied.
    this.#buf = at === buf.length ? Buffer.alloc(0) : Buffer.from(
      buf.subarray(at),
    );
    return frames;
  }

  #fail(frames: MbapFrame[], why: string): MbapFrame[] {
    this.error = new FramingError(why);
    this.#buf = Buffer.alloc(0);
    return frames;
  }
}

/** Full response ADU for a request frame. */
export function encodeResponse(
  transactionId: number,
  unitId: number,
  pdu: Uint8Array,
): Buffer {
  const out = Buffer.allocUnsafe(7 + pdu.length);
  out.writeUInt16BE(transactionId & 0xffff, 0);
  out.writeUInt16BE(0, 2);
  out.writeUInt16BE(pdu.length + 1, 4);
  out[6] = unitId & 0xff;
  out.set(pdu, 7);
  return out;
}

/** The PDU to answer a frame with, applying the unit-id rule above. */
export function answerFrame(
  bank: RegisterBank,
  unitId: number,
  frame: MbapFrame,
): Uint8Array {
  const u = frame.unitId;
  if (u !== unitId && u !== 0 && u !== 255) {
    return exceptionPdu(frame.pdu[0] ?? 0, EXCEPTION.GATEWAY_TARGET_FAILED);
  }
  return handlePdu(bank, frame.pdu);
}

export interface ServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  unitId: number;
  bank: RegisterBank;
  /** Prefix of log lines, e.g. "device 1001". */
  name?: string;
  /** One line per connect and per disconnect. */
  log?: (line: string) => void;
}

export interface ModbusTcpServer {
  /** The port actually listened on. */
  readonly port: number;
  /** Open client connections. */
  readonly connections: number;
  /** Stop listening, destroy every client socket; resolves when closed. */
  close(): Promise<void>;
}

/** Listen for Modbus TCP clients; resolves once listening. */
export function listenModbusTcp(opts: ServerOptions): Promise<ModbusTcpServer> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const name = opts.name ? `${opts.name}: ` : "";
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true });

  server.on("connection", (sock) => {
    sockets.add(sock);
    const peer = `${sock.remoteAddress}:${sock.remotePort}`;
    const decoder = new MbapDecoder();
    let requests = 0;
    let reason = "closed by client";
    let dropping = false;
    let paused = false;
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    sock.setNoDelay(true);
    log(`${name}client ${peer} connected (${sockets.size} open)`);

    sock.on("data", (chunk: Buffer) => {
      if (dropping) return;
      const frames = decoder.push(chunk);
      if (frames.length > 0) {
        sock.cork();
        let ok = true;
        for (const f of frames) {
          requests++;
          const pdu = answerFrame(opts.bank, opts.unitId, f);
          ok = sock.write(encodeResponse(f.transactionId, f.unitId, pdu));
        }
        sock.uncork();
        if (!ok && !paused) {
          paused = true;
          sock.pause();
          sock.once("drain", () => {
            paused = false;
            sock.resume();
          });
        }
      }
      if (decoder.error) {
        dropping = true;
        reason = `dropped: ${decoder.error.message}`;
        sock.end();
        // A client that never reads must not keep the socket alive.
        killTimer = setTimeout(() => sock.destroy(), 1000);
      }
    });
    sock.on("error", (e) => {
      if (!dropping) reason = `error: ${(e as Error).message}`;
    });
    sock.on("close", () => {
      if (killTimer !== undefined) clearTimeout(killTimer);
      sockets.delete(sock);
      log(
        `${name}client ${peer} disconnected after ${requests} request${
          requests === 1 ? "" : "s"
        } (${reason}; ${sockets.size} open)`,
      );
    });
  });

  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once("error", onError);
    server.listen(opts.port, opts.host, () => {
      server.off("error", onError);
      server.on("error", (e) => log(`${name}server error: ${e.message}`));
      const port = (server.address() as net.AddressInfo).port;
      let closing: Promise<void> | null = null;
      resolve({
        port,
        get connections() {
          return sockets.size;
        },
        close() {
          closing ??= new Promise<void>((done) => {
            server.close(() => done());
            for (const s of sockets) s.destroy();
          }).then(() => waitSocketsClosed(sockets));
          return closing;
        },
      });
    });
  });
}

/** Resolves once every socket in the set has emitted close. */
async function waitSocketsClosed(sockets: Set<net.Socket>): Promise<void> {
  const pending = [...sockets].map((s) =>
    s.closed ? Promise.resolve() : new Promise<void>((r) => s.once("close", r))
  );
  await Promise.all(pending);
}
