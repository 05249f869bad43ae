/**
 * A scripted, misbehaving Modbus TCP device for fault tests: real FC03
 * answers (and FC06 writes of the setpoint) when healthy, and per request
 * any of the faults below.
 */
import net from "node:net";
import { Buffer } from "node:buffer";
import { ADDR } from "../registers.ts";

export type Mode =
  | "healthy"
  | "hung"
  | "slow"
  | "wrong-tid"
  | "truncated"
  | "garbage"
  | "short"
  | "wrong-unit"
  | "exception"
  | "reset"
  | "close";

/** Healthy register block; register 2 (power) counts requests served. */
function registers(n: number, tempRaw: number, setpoint: number): number[] {
  const w = new Array(20).fill(0);
  w[ADDR.deviceId] = 1001;
  w[ADDR.statusBits] = 1;
  w[ADDR.power] = n & 0x7fff;
  w[ADDR.voltage] = 2300;
  w[ADDR.current] = 1087;
  w[ADDR.temp] = tempRaw;
  w[ADDR.soc] = 600;
  w[ADDR.setpoint] = setpoint;
  return w;
}

/** A Modbus TCP device whose behaviour the test scripts per request. */
export class FaultyDevice {
  mode: Mode = "healthy";
  /** When set, decides the mode of each request (overrides `mode`). */
  script: ((n: number, fc: number) => Mode) | null = null;
  slowMs = 0;
  /** Temperature register, 0.1 C (550 = 55.0 C: no alarm). */
  tempRaw = 550;
  /** Register 7; FC06 writes it (when the request is answered healthily). */
  setpoint = 2500;
  requests = 0;
  /** Function codes of every request received, in order. */
  readonly functionCodes: number[] = [];
  /** Every FC03/FC04 request's start and quantity, in order. */
  readonly reads: { start: number; count: number }[] = [];
  /** Called as each request arrives (tests await this instead of sleeping). */
  onRequest: ((n: number, fc: number) => void) | null = null;
  readonly port: number;
  #server: net.Server | null = null;
  #sockets = new Set<net.Socket>();
  #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(port: number) {
    this.port = port;
  }

  static async start(port: number): Promise<FaultyDevice> {
    const d = new FaultyDevice(port);
    await d.listen();
    return d;
  }

  listen(): Promise<void> {
    const server = net.createServer((s) => this.#serve(s));
    this.#server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
  }

  /** The device dies: listener gone, every connection reset. */
  async kill(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const s of this.#sockets) s.resetAndDestroy();
    this.#sockets.clear();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  #serve(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => this.#sockets.delete(socket));
    let buf = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 7 && buf.length >= 6 + buf.readUInt16BE(4)) {
        const len = 6 + buf.readUInt16BE(4);
        const req = buf.subarray(0, len);
        buf = buf.subarray(len);
        this.#answer(socket, Buffer.from(req));
      }
    });
  }

  #answer(socket: net.Socket, req: Buffer): void {
    const n = ++this.requests;
    const tid = req.readUInt16BE(0);
    const unit = req[6];
    const fc = req[7];
    this.functionCodes.push(fc);
    this.onRequest?.(n, fc);
    const mode = this.script?.(n, fc) ?? this.mode;
    let ok: Buffer;
    // The write takes effect when the device answers it, as a real one would.
    let effect = () => {};
    if (fc === 0x06) {
      const value = req.readUInt16BE(10);
      ok = Buffer.from(req);
      effect = () => this.setpoint = value;
    } else {
      const start = req.readUInt16BE(8);
      const count = req.readUInt16BE(10);
      this.reads.push({ start, count });
      const words = registers(n, this.tempRaw, this.setpoint)
        .slice(start, start + count);
      ok = frame(tid, unit, [
        0x03,
        2 * words.length,
        ...words.flatMap((w) => [w >> 8, w & 0xff]),
      ]);
    }
    const send = (b: Buffer | string) => {
      if (!socket.destroyed) socket.write(b);
    };
    switch (mode) {
      case "healthy":
        effect();
        return send(ok);
      case "hung":
        return;
      case "slow": {
        const t = setTimeout(() => {
          this.#timers.delete(t);
          effect();
          send(ok);
        }, this.slowMs);
        this.#timers.add(t);
        return;
      }
      case "wrong-tid":
        ok.writeUInt16BE((tid + 77) & 0xffff, 0);
        return send(ok);
      case "truncated":
        return send(ok.subarray(0, 12));
      case "garbage":
        return send("HTTP/1.1 400 Bad Request\r\n\r\n");
      case "short":
        return send(frame(tid, unit, [0x03, 4, 0x03, 0xe9, 0, 1]));
      case "wrong-unit":
        return send(frame(tid, (unit + 1) & 0xff, [...ok.subarray(7)]));
      case "exception":
        return send(frame(tid, unit, [0x83, 0x04]));
      case "reset":
        socket.resetAndDestroy();
        return;
      case "close":
        socket.end();
        return;
    }
  }

  async close(): Promise<void> {
    await this.kill();
  }
}

export function frame(tid: number, unit: number, pdu: number[]): Buffer {
  const b = Buffer.alloc(7 + pdu.length);
  b.writeUInt16BE(tid, 0);
  b.writeUInt16BE(0, 2);
  b.writeUInt16BE(pdu.length + 1, 4);
  b[6] = unit;
  Buffer.from(pdu).copy(b, 7);
  return b;
}
