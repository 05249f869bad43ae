/**
 * Bounded, reproducible fuzz of the simulator's Modbus TCP server over
 * loopback: 4 raw connections send batches of valid, mutated, truncated,
 * garbage and impossible-header frames (in random splits and pipelined),
 * while a modbus-serial client keeps polling FC03. An independent oracle
 * (written here from the spec, not imported from modbus_server.ts) predicts
 * how the server must frame the stream and answer each request.
 *
 * Reproduce a failure with FUZZ_SEED=<seed printed in the failure>.
 * FUZZ_FRAMES sets the total number of frames (default 20000).
 */
import assert from "node:assert/strict";
import net from "node:net";
import { Buffer } from "node:buffer";
import Modbus from "modbus-serial";
import { startSimulator } from "../sim.ts";
import { seededRandom } from "../sim_model.ts";
import { DEVICE_ID, REGISTER_SPACE } from "../registers.ts";
import { freePort } from "./_support.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20240611);
const TOTAL_FRAMES = Number(Deno.env.get("FUZZ_FRAMES") ?? 50_000);
const CONNECTIONS = 4;
const UNIT = 1;

type Rand = () => number;
const int = (r: Rand, lo: number, hi: number) =>
  lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, 0, xs.length - 1)];

/** A 16-bit value biased towards the interesting boundaries. */
function u16(r: Rand): number {
  return r() < 0.7
    ? pick(r, [
      0,
      1,
      5,
      6,
      7,
      8,
      9,
      10,
      19,
      20,
      21,
      123,
      124,
      125,
      126,
      5000,
      5001,
      0x7fff,
      0x8000,
      0xffff,
    ])
    : int(r, 0, 0xffff);
}

/** A request PDU: mostly well-formed FC03/04/06/16, some other codes. */
function requestPdu(r: Rand): number[] {
  const be = (v: number) => [v >> 8, v & 0xff];
  const fc = r() < 0.9 ? pick(r, [3, 4, 6, 16]) : int(r, 0, 255);
  switch (fc) {
    case 3:
    case 4:
      return [
        fc,
        ...be(u16(r) % (r() < 0.8 ? 24 : 0x10000)),
        ...be(
          r() < 0.8 ? int(r, 0, 21) : u16(r),
        ),
      ];
    case 6:
      return [fc, ...be(r() < 0.6 ? 7 : u16(r) % 24), ...be(u16(r))];
    case 16: {
      const qty = r() < 0.8 ? int(r, 0, 3) : u16(r) % 130;
      const vals = Array.from(
        { length: Math.min(qty, 123) },
        () => be(u16(r)),
      ).flat();
      const bc = r() < 0.9 ? 2 * qty : int(r, 0, 255);
      return [
        fc,
        ...be(r() < 0.6 ? 7 : u16(r) % 24),
        ...be(qty),
        bc & 0xff,
        ...vals,
      ]
        .slice(0, 253);
    }
    default:
      return [
        fc,
        ...Array.from({ length: int(r, 0, 6) }, () => int(r, 0, 255)),
      ];
  }
}

/** MBAP frame with a consistent length field. */
function frame(tid: number, unit: number, pdu: number[]): number[] {
  const len = pdu.length + 1;
  return [tid >> 8, tid & 0xff, 0, 0, len >> 8, len & 0xff, unit, ...pdu];
}

function unitFor(r: Rand): number {
  return r() < 0.85 ? UNIT : pick(r, [0, 255, 2, 17, 247, int(r, 0, 255)]);
}

type Ending = "clean" | "drop" | "incomplete";

/** One batch of bytes for a connection, with its generator's intent. */
function makeBatch(r: Rand, tid: () => number): number[] {
  const bytes: number[] = [];
  const n = int(r, 1, 6);
  for (let i = 0; i < n; i++) {
    const kind = r();
    if (kind < 0.7) {
      bytes.push(...frame(tid(), unitFor(r), requestPdu(r)));
    } else if (kind < 0.88) {
      // Mutated: flip PDU bytes, grow or shrink it, keep the header honest.
      const pdu = requestPdu(r);
      for (let k = int(r, 1, 3); k > 0; k--) {
        pdu[int(r, 0, pdu.length - 1)] = int(r, 0, 255);
      }
      if (r() < 0.3) {
        pdu.push(...Array.from({ length: int(r, 1, 8) }, () => int(r, 0, 255)));
      }
      if (r() < 0.3 && pdu.length > 1) pdu.length = int(r, 1, pdu.length - 1);
      bytes.push(...frame(tid(), unitFor(r), pdu.slice(0, 253)));
    } else if (kind < 0.93) {
      // Impossible header: ends the batch.
      const t = tid();
      const which = int(r, 0, 3);
      const len = which === 0 ? 0 : which === 1 ? 1 : which === 2
        ? pick(r, [
          255,
          256,
          259,
          260,
          261,
          0x8000,
          0xffff,
          int(r, 255, 0xffff),
        ])
        : 6;
      const pid = which === 3
        ? pick(r, [1, 2, 0x0100, 0x8000, 0xffff, int(r, 1, 0xffff)])
        : 0;
      bytes.push(
        t >> 8,
        t & 0xff,
        pid >> 8,
        pid & 0xff,
        len >> 8,
        len & 0xff,
        UNIT,
        3,
        0,
        0,
        0,
        1,
      );
      return bytes;
    } else if (kind < 0.97) {
      // Truncated frame, then (the caller) hangs up.
      const f = frame(tid(), UNIT, requestPdu(r));
      bytes.push(...f.slice(0, int(r, 1, f.length - 1)));
      return bytes;
    } else {
      // Raw garbage.
      bytes.push(
        ...Array.from({ length: int(r, 1, 40) }, () => int(r, 0, 255)),
      );
      return bytes;
    }
  }
  return bytes;
}

interface Req {
  tid: number;
  unit: number;
  pdu: number[];
}

/** Independent framing oracle, straight from the Modbus TCP spec. */
function frameOracle(bytes: number[]): { reqs: Req[]; ending: Ending } {
  const reqs: Req[] = [];
  let at = 0;
  for (;;) {
    const left = bytes.length - at;
    if (left === 0) return { reqs, ending: "clean" };
    if (left < 4) return { reqs, ending: "incomplete" };
    if (((bytes[at + 2] << 8) | bytes[at + 3]) !== 0) {
      return { reqs, ending: "drop" };
    }
    if (left < 6) return { reqs, ending: "incomplete" };
    const len = (bytes[at + 4] << 8) | bytes[at + 5];
    if (len < 2 || len > 254) return { reqs, ending: "drop" };
    if (left < 6 + len) return { reqs, ending: "incomplete" };
    reqs.push({
      tid: (bytes[at] << 8) | bytes[at + 1],
      unit: bytes[at + 6],
      pdu: bytes.slice(at + 7, at + 6 + len),
    });
    at += 6 + len;
  }
}

/** Independent answer oracle: the exception code, or null for success. */
function expectedException(unit: number, p: number[]): number | null {
  if (unit !== UNIT && unit !== 0 && unit !== 255) return 0x0b;
  const w = (i: number) => (p[i] << 8) | p[i + 1];
  switch (p[0]) {
    case 3:
    case 4: {
      if (p.length !== 5) return 3;
      if (w(3) < 1 || w(3) > 125) return 3;
      return w(1) + w(3) > REGISTER_SPACE ? 2 : null;
    }
    case 6: {
      if (p.length !== 5) return 3;
      if (w(1) >= REGISTER_SPACE || w(1) !== 7) return 2;
      return w(3) > 5000 ? 3 : null;
    }
    case 16: {
      if (p.length < 6) return 3;
      const qty = w(3);
      if (qty < 1 || qty > 123 || p[5] !== 2 * qty || p.length !== 6 + p[5]) {
        return 3;
      }
      if (w(1) + qty > REGISTER_SPACE) return 2;
      if (w(1) !== 7 || qty !== 1) return 2;
      return w(6) > 5000 ? 3 : null;
    }
    default:
      return 1;
  }
}

function checkResponse(req: Req, res: Resp, ctx: string): void {
  assert.equal(res.tid, req.tid, `${ctx}: transaction id`);
  assert.equal(res.pid, 0, `${ctx}: protocol id`);
  assert.equal(res.unit, req.unit, `${ctx}: unit id echoed`);
  const fc = req.pdu[0];
  const exc = expectedException(req.unit, req.pdu);
  if (exc !== null) {
    assert.deepEqual(res.pdu, [(fc | 0x80) & 0xff, exc], `${ctx}: exception`);
    return;
  }
  if (fc === 3 || fc === 4) {
    const qty = (req.pdu[3] << 8) | req.pdu[4];
    assert.equal(res.pdu[0], fc, `${ctx}: fc`);
    assert.equal(res.pdu[1], 2 * qty, `${ctx}: byte count`);
    assert.equal(res.pdu.length, 2 + 2 * qty, `${ctx}: length`);
    const start = (req.pdu[1] << 8) | req.pdu[2];
    if (start === 0) {
      assert.equal((res.pdu[2] << 8) | res.pdu[3], DEVICE_ID, `${ctx}: id`);
    }
  } else {
    assert.deepEqual(res.pdu, req.pdu.slice(0, 5), `${ctx}: write echo`);
  }
}

interface Resp {
  tid: number;
  pid: number;
  unit: number;
  pdu: number[];
}

/** A raw loopback connection that parses responses as they arrive. */
class RawConn {
  readonly sock: net.Socket;
  readonly responses: Resp[] = [];
  closed = false;
  #buf = Buffer.alloc(0);
  #wake: (() => void) | null = null;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.setNoDelay(true);
    sock.on("data", (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      while (this.#buf.length >= 6) {
        const len = this.#buf.readUInt16BE(4);
        if (this.#buf.length < 6 + len) break;
        this.responses.push({
          tid: this.#buf.readUInt16BE(0),
          pid: this.#buf.readUInt16BE(2),
          unit: this.#buf[6],
          pdu: [...this.#buf.subarray(7, 6 + len)],
        });
        this.#buf = this.#buf.subarray(6 + len);
      }
      this.#wake?.();
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      this.closed = true;
      this.#wake?.();
    });
  }

  static open(port: number): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("error", reject);
      s.once("connect", () => {
        s.off("error", reject);
        resolve(new RawConn(s));
      });
    });
  }

  /** Resolves once `cond()` holds; rejects after `ms`. */
  until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#wake = null;
        reject(new Error(`timed out waiting for ${what}`));
      }, ms);
      this.#wake = () => {
        if (cond()) {
          clearTimeout(timer);
          this.#wake = null;
          resolve();
        }
      };
    });
  }

  async writeSplit(r: Rand, bytes: number[]): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      const n = r() < 0.6 ? bytes.length - at : int(r, 1, bytes.length - at);
      this.sock.write(Uint8Array.from(bytes.slice(at, at + n)));
      at += n;
      if (r() < 0.05) await new Promise((res) => setTimeout(res, 1));
    }
  }

  async destroy(): Promise<void> {
    if (!this.closed) {
      this.sock.destroy();
      await this.until(() => this.closed, "own close");
    }
  }
}

Deno.test({
  name:
    `fuzz: ${TOTAL_FRAMES} frames on ${CONNECTIONS} connections (seed ${SEED})`,
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const lines: string[] = [];
    const sim = await startSimulator({
      host: "127.0.0.1",
      port: await freePort(),
      log: (l) => lines.push(l),
    });
    const port = sim.ports[0];
    const stats = { frames: 0, answered: 0, drops: 0, hangups: 0, batches: 0 };
    let fuzzing = true;
    const t0 = performance.now();

    // The well-behaved poller.
    const good = new Modbus.default();
    await good.connectTCP("127.0.0.1", { port });
    good.setID(UNIT);
    good.setTimeout(1000);
    let polls = 0;
    const poller = (async () => {
      while (fuzzing) {
        const r = await good.readHoldingRegisters(0, 10);
        assert.equal(r.data[0], DEVICE_ID);
        assert.equal(r.data.length, 10);
        polls++;
        await new Promise((res) => setTimeout(res, 2));
      }
    })();

    async function worker(w: number): Promise<void> {
      const r = seededRandom(SEED * 31 + w);
      let t = 0;
      const nextTid = () => (t = (t + 1) & 0xffff);
      let conn = await RawConn.open(port);
      try {
        while (stats.frames < TOTAL_FRAMES) {
          const batch = makeBatch(r, nextTid);
          const { reqs, ending } = frameOracle(batch);
          const ctx = `seed ${SEED} worker ${w} batch ${stats.batches}`;
          const seen = conn.responses.length;
          stats.batches++;
          stats.frames += reqs.length + (ending === "clean" ? 0 : 1);
          await conn.writeSplit(r, batch);
          await conn.until(
            () => conn.responses.length >= seen + reqs.length || conn.closed,
            `${ctx}: ${reqs.length} responses`,
          );
          assert.equal(
            conn.responses.length - seen,
            reqs.length,
            `${ctx}: responses before ${conn.closed ? "close" : "timeout"}`,
          );
          reqs.forEach((q, i) =>
            checkResponse(q, conn.responses[seen + i], `${ctx} req ${i}`)
          );
          stats.answered += reqs.length;
          if (ending === "clean") {
            assert.ok(!conn.closed, `${ctx}: server closed a clean stream`);
            continue;
          }
          if (ending === "drop") {
            await conn.until(() => conn.closed, `${ctx}: server drop`, 500);
            stats.drops++;
          } else {
            // Incomplete frame: the server must wait, and close when we do.
            assert.ok(!conn.closed, `${ctx}: closed on a partial frame`);
            conn.sock.end();
            await conn.until(() => conn.closed, `${ctx}: close after hangup`);
            stats.hangups++;
          }
          assert.equal(conn.responses.length, seen + reqs.length, `${ctx}`);
          conn = await RawConn.open(port);
        }
      } finally {
        await conn.destroy();
      }
    }

    let after: number[] = [];
    try {
      await Promise.all(
        Array.from({ length: CONNECTIONS }, (_, w) => worker(w)),
      );
    } finally {
      fuzzing = false;
      try {
        await poller;
        // The good client still gets fresh, correct answers after all that.
        after = (await good.readHoldingRegisters(0, 10)).data;
      } finally {
        good.destroy(() => {});
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    await sim.close();
    assert.equal(after[0], DEVICE_ID);
    assert.equal(after.length, 10);
    console.log(
      `fuzz seed ${SEED}: ${stats.frames} frames, ${stats.answered} answered, ` +
        `${stats.drops} drops, ${stats.hangups} hang-ups, ${polls} good polls, ` +
        `${seconds.toFixed(1)} s`,
    );
    assert.ok(stats.frames >= TOTAL_FRAMES);
    assert.ok(stats.drops > 0 && stats.hangups > 0);
    assert.ok(polls >= 20, `good client polled ${polls} times`);
    assert.ok(seconds < 30, `took ${seconds} s`);
    assert.ok(lines.some((l) => /dropped: MBAP length/.test(l)));
    assert.ok(lines.some((l) => /dropped: MBAP protocol id/.test(l)));
  },
});
