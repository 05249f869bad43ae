import assert from "node:assert/strict";
import Modbus from "modbus-serial";
import { type Simulator, startSimulator } from "../sim.ts";
import { assertPortFree, freePort, freePortRun, waitFor } from "./_support.ts";
import { ADDR, DEVICE_ID, fromRaw, REGISTER_MAP } from "../registers.ts";

type Client = InstanceType<typeof Modbus.default>;

/** A simulator on a free loopback port whose log lines are kept. */
async function sim(
  extra: Partial<Parameters<typeof startSimulator>[0]> = {},
): Promise<{ sim: Simulator; lines: string[] }> {
  const lines: string[] = [];
  const s = await startSimulator({
    host: "127.0.0.1",
    port: await freePort(),
    noise: 0,
    log: (l) => lines.push(l),
    ...extra,
  });
  return { sim: s, lines };
}

async function connect(port: number, unitId = 1): Promise<Client> {
  const c = new Modbus.default();
  await c.connectTCP("127.0.0.1", { port });
  c.setID(unitId);
  c.setTimeout(1000);
  return c;
}

/** Close a client and wait until the server has seen it go. */
async function disconnect(c: Client, lines: string[]): Promise<void> {
  const before = lines.filter((l) => l.includes("disconnected")).length;
  c.destroy(() => {});
  await waitFor(
    "server to see the disconnect",
    () => lines.filter((l) => l.includes("disconnected")).length > before,
  );
}

/** The modbus exception code a request fails with. */
async function exceptionOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    const code = (e as { modbusCode?: number }).modbusCode;
    assert.ok(code !== undefined, `not a Modbus exception: ${e}`);
    return code;
  }
  assert.fail("request succeeded, expected an exception");
}

Deno.test("FC03 0..9 returns the boot state; FC04 mirrors it", async () => {
  const { sim: s, lines } = await sim();
  const c = await connect(s.ports[0]);
  try {
    const r = await c.readHoldingRegisters(0, 10);
    // id, running, 3000 W, 230.0 V, 13.04 A, 55.0 C, 72.0 %, setpoint 3000
    assert.deepEqual(r.data, [1001, 1, 3000, 2300, 1304, 550, 720, 3000, 0, 0]);
    const i = await c.readInputRegisters(0, 10);
    assert.deepEqual(i.data, r.data);
    const all = await c.readHoldingRegisters(0, 20);
    assert.deepEqual(all.data.slice(10), new Array(10).fill(0));
    const tail = await c.readInputRegisters(19, 1);
    assert.deepEqual(tail.data, [0]);
  } finally {
    await disconnect(c, lines);
    await s.close();
  }
  assert.ok(lines.some((l) => /listening on 127\.0\.0\.1:\d+/.test(l)));
  assert.equal(lines.filter((l) => l.includes(" connected")).length, 1);
  assert.equal(lines.filter((l) => l.includes("disconnected")).length, 1);
  assert.match(lines.find((l) => l.includes("disconnected"))!, /4 requests/);
});

Deno.test("FC06 and FC16 write the setpoint; physics follows", async () => {
  const { sim: s, lines } = await sim({ tauS: 0.2, stepMs: 20 });
  const c = await connect(s.ports[0]);
  try {
    const w = await c.writeRegister(ADDR.setpoint, 4000);
    assert.deepEqual(w, { address: 7, value: 4000 });
    assert.deepEqual((await c.readHoldingRegisters(7, 1)).data, [4000]);
    const temp = REGISTER_MAP[ADDR.temp];
    await waitFor("temperature to reach 65 C", async () => {
      const words = (await c.readHoldingRegisters(0, 10)).data;
      return Math.abs(fromRaw(temp, words[ADDR.temp]) - 65) <= 0.3 &&
        Math.abs(words[ADDR.power] - 4000) <= 30;
    });
    const m = await c.writeRegisters(ADDR.setpoint, [3000]);
    assert.deepEqual(m, { address: 7, length: 1 });
    assert.deepEqual((await c.readInputRegisters(7, 1)).data, [3000]);
    await waitFor("temperature back to 55 C", async () => {
      const words = (await c.readHoldingRegisters(0, 10)).data;
      return Math.abs(fromRaw(temp, words[ADDR.temp]) - 55) <= 0.3;
    });
    await c.writeRegister(ADDR.setpoint, 0);
    await c.writeRegister(ADDR.setpoint, 5000);
    assert.deepEqual((await c.readHoldingRegisters(7, 1)).data, [5000]);
  } finally {
    await disconnect(c, lines);
    await s.close();
  }
});

Deno.test("standard exceptions, and refused writes change nothing", async () => {
  const { sim: s, lines } = await sim();
  const c = await connect(s.ports[0]);
  try {
    const before = (await c.readHoldingRegisters(0, 20)).data;
    // Reads outside 0..19.
    assert.equal(await exceptionOf(c.readHoldingRegisters(19, 2)), 2);
    assert.equal(await exceptionOf(c.readHoldingRegisters(20, 1)), 2);
    assert.equal(await exceptionOf(c.readInputRegisters(100, 5)), 2);
    // Quantity 0 and > 125.
    assert.equal(await exceptionOf(c.readHoldingRegisters(0, 0)), 3);
    assert.equal(await exceptionOf(c.readHoldingRegisters(0, 126)), 3);
    assert.equal(await exceptionOf(c.readInputRegisters(0, 126)), 3);
    assert.equal(await exceptionOf(c.readHoldingRegisters(0, 125)), 2);
    // Read-only registers.
    for (let a = 0; a < 20; a++) {
      if (a === ADDR.setpoint) continue;
      assert.equal(await exceptionOf(c.writeRegister(a, 1)), 2, `FC06 ${a}`);
    }
    assert.equal(await exceptionOf(c.writeRegister(20, 1)), 2);
    assert.equal(await exceptionOf(c.writeRegisters(6, [1, 100])), 2);
    assert.equal(await exceptionOf(c.writeRegisters(7, [100, 0])), 2);
    // Setpoint out of range.
    assert.equal(await exceptionOf(c.writeRegister(7, 5001)), 3);
    assert.equal(await exceptionOf(c.writeRegister(7, 65535)), 3);
    assert.equal(await exceptionOf(c.writeRegisters(7, [9000])), 3);
    // Unknown function codes.
    assert.equal(await exceptionOf(c.readCoils(0, 1)), 1);
    assert.equal(await exceptionOf(c.writeCoil(0, true)), 1);
    assert.equal(await exceptionOf(c.readDiscreteInputs(0, 1)), 1);
    const after = (await c.readHoldingRegisters(0, 20)).data;
    assert.deepEqual(after, before, "nothing changed");
  } finally {
    await disconnect(c, lines);
    await s.close();
  }
});

Deno.test("unit ids: 1, 0 and 255 answered; others exception 0x0B", async () => {
  const { sim: s, lines } = await sim({ unitId: 1 });
  const c = await connect(s.ports[0]);
  try {
    for (const id of [1, 0, 255]) {
      c.setID(id);
      assert.equal((await c.readHoldingRegisters(0, 1)).data[0], DEVICE_ID);
    }
    for (const id of [2, 17, 247]) {
      c.setID(id);
      assert.equal(await exceptionOf(c.readHoldingRegisters(0, 1)), 0x0b);
    }
  } finally {
    await disconnect(c, lines);
    await s.close();
  }
});

Deno.test("many concurrent clients", async () => {
  const { sim: s, lines } = await sim();
  const clients = await Promise.all(
    Array.from({ length: 20 }, () => connect(s.ports[0])),
  );
  try {
    const results = await Promise.all(clients.map(async (c, i) => {
      for (let k = 0; k < 25; k++) {
        const r = await c.readHoldingRegisters(0, 10);
        assert.equal(r.data[0], DEVICE_ID);
        if (i === 0 && k === 10) await c.writeRegister(7, 2500);
      }
      return (await c.readHoldingRegisters(7, 1)).data[0];
    }));
    assert.equal(results[0], 2500);
    assert.equal(lines.filter((l) => l.includes(" connected")).length, 20);
    assert.ok(lines.some((l) => l.includes("(20 open)")));
  } finally {
    for (const c of clients) c.destroy(() => {});
    await waitFor(
      "all disconnects",
      () => lines.filter((l) => l.includes("disconnected")).length === 20,
    );
    await s.close();
  }
});

Deno.test("devices: N serves independent devices on consecutive ports", async () => {
  const base = await freePortRun(3);
  const { sim: s, lines } = await sim({ port: base, devices: 3 });
  assert.deepEqual(s.ports, [base, base + 1, base + 2]);
  const clients = await Promise.all(s.ports.map((p) => connect(p)));
  try {
    const ids = await Promise.all(
      clients.map(async (c) => (await c.readHoldingRegisters(0, 1)).data[0]),
    );
    assert.deepEqual(ids, [1001, 1002, 1003]);
    await clients[1].writeRegister(7, 1234);
    const sps = await Promise.all(
      clients.map(async (c) => (await c.readHoldingRegisters(7, 1)).data[0]),
    );
    assert.deepEqual(sps, [3000, 1234, 3000]);
  } finally {
    for (const c of clients) c.destroy(() => {});
    await waitFor(
      "all disconnects",
      () => lines.filter((l) => l.includes("disconnected")).length === 3,
    );
    await s.close();
  }
  for (const p of s.ports) await assertPortFree(p);
});

Deno.test("port 0 picks free ports per device", async () => {
  const s = await startSimulator({
    host: "127.0.0.1",
    port: 0,
    devices: 2,
    log: () => {},
  });
  try {
    assert.equal(s.ports.length, 2);
    assert.notEqual(s.ports[0], s.ports[1]);
    assert.ok(s.ports.every((p) => p > 0));
  } finally {
    await s.close();
  }
});

Deno.test("close() drops clients, frees the port, is idempotent", async () => {
  const { sim: s, lines } = await sim();
  const port = s.ports[0];
  const c = await connect(port);
  let closed = false;
  // deno-lint-ignore no-explicit-any
  ((c as any)._port as { on(e: string, f: () => void): void }).on(
    "close",
    () => closed = true,
  );
  await c.readHoldingRegisters(0, 1);
  await s.close();
  await s.close();
  await waitFor("client to see the close", () => closed);
  assert.ok(!c.isOpen);
  c.destroy(() => {});
  await assertPortFree(port);
  assert.ok(lines.some((l) => l.includes("disconnected")));
});

Deno.test("a busy port is a startup error, nothing left open", async () => {
  const { sim: first } = await sim();
  try {
    await assert.rejects(
      startSimulator({
        host: "127.0.0.1",
        port: first.ports[0],
        log: () => {},
      }),
      /EADDRINUSE|in use/i,
    );
  } finally {
    await first.close();
  }
});

Deno.test("invalid options are rejected", async () => {
  await assert.rejects(startSimulator({ port: 70000 }), RangeError);
  await assert.rejects(startSimulator({ port: 0, unitId: 300 }), RangeError);
  await assert.rejects(startSimulator({ port: 0, devices: 0 }), RangeError);
  await assert.rejects(startSimulator({ port: 65535, devices: 2 }), RangeError);
});

Deno.test("sim.ts --help and invalid config (exit 2, one line)", async () => {
  const run = (args: string[], env: Record<string, string> = {}) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-P", "sim.ts", ...args],
      cwd: new URL("..", import.meta.url),
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(new TextDecoder().decode(help.stdout), /MODBUS_PORT/);
  const bad = await run([], { MODBUS_PORT: "nope" });
  assert.equal(bad.code, 2);
  const err = new TextDecoder().decode(bad.stderr).split("\n")
    .filter((l) => l && !l.includes("Warning") && !l.includes("experimental"));
  assert.equal(err.length, 1, err.join("\n"));
  assert.match(err[0], /^sim: MODBUS_PORT/);
});
