/**
 * Interop with Debian's mbpoll (libmodbus). mbpoll numbers references from 1
 * by default (reference 8 = PDU address 7, the setpoint); `-0` switches to
 * 0-based PDU addresses.
 */
import assert from "node:assert/strict";
import { startSimulator } from "../sim.ts";
import { freePort, needs, which } from "./_support.ts";

const MBPOLL = which("mbpoll");

interface Poll {
  code: number;
  out: string;
  err: string;
  /** `[ref]: value` pairs printed by a read. */
  values: Map<number, number>;
}

async function mbpoll(port: number, args: string[]): Promise<Poll> {
  const o = await new Deno.Command(MBPOLL!, {
    args: ["-1", "-o", "2", "-p", String(port), ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(10_000),
  }).output();
  const out = new TextDecoder().decode(o.stdout);
  const values = new Map<number, number>();
  for (const m of out.matchAll(/^\[(\d+)\]:\s+(-?\d+)/gm)) {
    values.set(Number(m[1]), Number(m[2]));
  }
  return { code: o.code, out, err: new TextDecoder().decode(o.stderr), values };
}

const opts = { ignore: needs("mbpoll", MBPOLL), sanitizeResources: true };

Deno.test({
  name: "mbpoll reads registers 1-based and 0-based, FC03 and FC04",
  ...opts,
  fn: async () => {
    const sim = await startSimulator({
      host: "127.0.0.1",
      port: await freePort(),
      noise: 0,
      log: () => {},
    });
    try {
      const port = sim.ports[0];
      const r = await mbpoll(port, ["-r", "1", "-c", "10", "127.0.0.1"]);
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(
        [...r.values.entries()],
        [1001, 1, 3000, 2300, 1304, 550, 720, 3000, 0, 0].map((v, i) => [
          i + 1,
          v,
        ]),
      );
      const z = await mbpoll(port, ["-0", "-r", "0", "-c", "20", "127.0.0.1"]);
      assert.equal(z.code, 0, z.err);
      assert.equal(z.values.get(0), 1001);
      assert.equal(z.values.get(7), 3000);
      assert.equal(z.values.get(19), 0);
      const inp = await mbpoll(port, [
        "-0",
        "-t",
        "3",
        "-r",
        "0",
        "-c",
        "8",
        "127.0.0.1",
      ]);
      assert.equal(inp.code, 0, inp.err);
      assert.equal(inp.values.get(0), 1001);
      assert.equal(inp.values.get(5), 550);
    } finally {
      await sim.close();
    }
  },
});

Deno.test({
  name: "mbpoll writes the setpoint and sees the exceptions",
  ...opts,
  fn: async () => {
    const sim = await startSimulator({
      host: "127.0.0.1",
      port: await freePort(),
      noise: 0,
      log: () => {},
    });
    try {
      const port = sim.ports[0];
      // Reference 8 (1-based) is the setpoint: one value is FC06.
      const w = await mbpoll(port, ["-r", "8", "127.0.0.1", "4000"]);
      assert.equal(w.code, 0, w.err);
      assert.match(w.out, /Written 1 references/);
      const back = await mbpoll(port, ["-0", "-r", "7", "127.0.0.1"]);
      assert.equal(back.values.get(7), 4000);

      const addr = await mbpoll(port, ["-r", "20", "-c", "2", "127.0.0.1"]);
      assert.notEqual(addr.code, 0);
      assert.match(addr.err, /Illegal data address/);

      const range = await mbpoll(port, ["-r", "8", "127.0.0.1", "6000"]);
      assert.notEqual(range.code, 0);
      assert.match(range.err, /Illegal data value/);

      // Two values are FC16 over 7..8: 8 is read-only, nothing written.
      const multi = await mbpoll(port, ["-r", "8", "127.0.0.1", "100", "0"]);
      assert.notEqual(multi.code, 0);
      assert.match(multi.err, /Illegal data address/);

      const ro = await mbpoll(port, ["-0", "-r", "5", "127.0.0.1", "1"]);
      assert.match(ro.err, /Illegal data address/);

      // -t 0 reads coils (FC01), a function the device does not have.
      const fc = await mbpoll(port, ["-t", "0", "-r", "1", "127.0.0.1"]);
      assert.notEqual(fc.code, 0);
      assert.match(fc.err, /Illegal function/);

      const unit = await mbpoll(port, ["-a", "5", "127.0.0.1"]);
      assert.notEqual(unit.code, 0);
      assert.match(unit.err, /Target device failed to respond/);

      const still = await mbpoll(port, ["-0", "-r", "7", "127.0.0.1"]);
      assert.equal(still.values.get(7), 4000, "refused writes changed nothing");
    } finally {
      await sim.close();
    }
  },
});
