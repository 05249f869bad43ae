/**
 * Modbus fault matrix: the real poller against a scripted, misbehaving
 * Modbus TCP peer on loopback (real FC03 answers when healthy). For every
 * fault: no crash, no unhandled rejection, bad quality with a specific
 * `error` on MQTT, growing backoff, and recovery within one backoff step
 * once the fault clears. Plus fd and heap stay flat over 100 fault cycles.
 */
import assert from "node:assert/strict";
import { startBroker } from "../broker.ts";
import { type Poller, type PollOutcome, startPoller } from "../poll.ts";
import { parseConfig } from "../cli.ts";
import { POLL_OPTIONS } from "../settings.ts";
import { ADDR } from "../registers.ts";
import { ModbusLink } from "../modbus_link.ts";
import { Recorder } from "./_mqtt.ts";
import { FaultyDevice, type Mode } from "./_faulty_device.ts";
import { assertPortFree, freePort } from "./_support.ts";

/** Fails the test on any unhandled rejection while it is installed. */
function rejectionGuard() {
  const seen: unknown[] = [];
  const onRejection = (e: PromiseRejectionEvent) => {
    e.preventDefault();
    seen.push(e.reason);
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  return {
    check() {
      globalThis.removeEventListener("unhandledrejection", onRejection);
      assert.deepEqual(seen, [], "no unhandled rejection");
    },
  };
}

/** Awaits poll outcomes as they happen (no sleeping). */
class Outcomes {
  readonly all: PollOutcome[] = [];
  #waiters: { pred: (o: PollOutcome) => boolean; resolve: () => void }[] = [];
  push = (o: PollOutcome) => {
    this.all.push(o);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.pred(o)) return true;
      w.resolve();
      return false;
    });
  };
  /** Resolves with the first outcome from index `from` matching `pred`. */
  async next(
    what: string,
    pred: (o: PollOutcome) => boolean,
    from = 0,
    timeoutMs = 10_000,
  ): Promise<PollOutcome> {
    const find = () => this.all.slice(from).find(pred);
    if (!find()) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          this.#waiters.push({ pred, resolve });
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `timed out waiting for ${what}; outcomes: ${
                    JSON.stringify(this.all.slice(-5))
                  }`,
                ),
              ),
            timeoutMs,
          );
        }),
      ]).finally(() => clearTimeout(timer));
    }
    return find()!;
  }
}

const TIMEOUT_MS = 150;
const INTERVAL_MS = 100;

interface Rig {
  device: FaultyDevice;
  port: number;
  sub: Recorder;
  poller: Poller;
  outcomes: Outcomes;
  logs: string[];
}

/** Broker, subscriber, poller (and the device unless `deviceUp` is false). */
async function withRig(
  opts: { deviceUp?: boolean; env?: Record<string, string> },
  fn: (r: Rig) => Promise<void>,
): Promise<void> {
  const guard = rejectionGuard();
  const port = await freePort();
  const device = opts.deviceUp === false
    ? new FaultyDevice(port)
    : await FaultyDevice.start(port);
  const mqttPort = await freePort();
  const broker = await startBroker({
    host: "127.0.0.1",
    tcpPort: mqttPort,
    log: () => {},
  });
  const url = `mqtt://127.0.0.1:${mqttPort}`;
  const sub = await Recorder.connect(url, "demo/#");
  const outcomes = new Outcomes();
  const logs: string[] = [];
  let poller: Poller | null = null;
  try {
    poller = await startPoller(
      parseConfig(POLL_OPTIONS, [], {
        MODBUS_PORT: String(port),
        MQTT_URL: url,
        POLL_INTERVAL_MS: String(INTERVAL_MS),
        BACKOFF_BASE_MS: String(INTERVAL_MS),
        MODBUS_TIMEOUT_MS: String(TIMEOUT_MS),
        MODBUS_RETRIES: "1",
        BACKOFF_MAX_MS: "800",
        ...opts.env,
      }),
      { log: (l) => logs.push(l), random: () => 0.5, onOutcome: outcomes.push },
    );
    await fn({ device, port, sub, poller, outcomes, logs });
  } finally {
    await poller?.stop();
    await sub.close();
    await broker.close();
    await device.close();
  }
  guard.check();
  await assertPortFree(port);
}

/**
 * Fault on: bad outcomes with `error`, published as bad quality, backoff
 * growing. Fault off: good again within one backoff step.
 */
async function faultThenRecover(
  r: Rig,
  error: string,
  on: () => void | Promise<void>,
  off: () => void | Promise<void>,
): Promise<void> {
  const from = r.outcomes.all.length;
  await on();
  const firstBad = r.outcomes.all.length;
  await r.outcomes.next("bad #1", (o) => !o.ok, firstBad);
  // Three failed polls in a row, all with this error and growing backoff.
  await r.outcomes.next(
    "3 bad",
    () => r.outcomes.all.slice(from).filter((o) => !o.ok).length >= 3,
    from,
  );
  const bad = r.outcomes.all.slice(from).filter((o) => !o.ok);
  for (const o of bad) {
    assert.equal(!o.ok && o.error, error, JSON.stringify(o));
  }
  const delays = bad.map((o) => (o.ok ? 0 : o.nextDelayMs));
  assert.deepEqual(delays.slice(0, 3), [100, 200, 400], "backoff doubles");

  // Published as bad quality with that error.
  const msg = await r.sub.waitFor(
    "bad telemetry on MQTT",
    (m) => m.json.quality === "bad" && m.json.error === error,
  );
  assert.equal(msg.json.values, null);
  assert.equal(msg.json.device_id, 1001, "last known device id");

  const clearedAt = Date.now();
  const mark = r.outcomes.all.length;
  await off();
  const good = await r.outcomes.next("recovery", (o) => o.ok, mark);
  const afterClear = r.outcomes.all.slice(mark);
  const badAfter = afterClear.slice(0, afterClear.indexOf(good));
  // At most the poll already in flight fails; the next one is good.
  assert.ok(badAfter.length <= 1, JSON.stringify(afterClear));
  const step = Math.max(
    ...r.outcomes.all.slice(from, mark + badAfter.length)
      .map((o) => (o.ok ? 0 : o.nextDelayMs)),
  );
  const took = good.tsMs - clearedAt;
  // One backoff step, plus a poll in flight (2 tries x timeout), plus slack.
  assert.ok(
    took <= step + 2 * TIMEOUT_MS + 300,
    `recovered after ${took} ms, backoff step ${step} ms`,
  );
  assert.ok(r.logs.some((l) => /recovered/.test(l)), r.logs.join("\n"));
  // The schedule is back to normal: another good poll one interval later.
  const again = await r.outcomes.next(
    "steady",
    (o) => o.ok && o.tsMs > good.tsMs,
    mark,
  );
  assert.ok(again.tsMs - good.tsMs < INTERVAL_MS + 150);
}

Deno.test("each poll is one FC03 of registers 0..9 (the read plan of the built-in map)", async () => {
  await withRig({}, async (r) => {
    await r.outcomes.next(
      "3 good polls",
      () => r.outcomes.all.filter((o) => o.ok).length >= 3,
    );
    assert.ok(r.device.reads.length >= 3);
    assert.deepEqual(new Set(r.device.functionCodes), new Set([3]));
    for (const read of r.device.reads) {
      assert.deepEqual(read, { start: 0, count: 10 });
    }
  });
});

Deno.test("logs one line per state change: silent while good, one per backoff step up to the cap, one on recovery; the next outage starts again at the base", async () => {
  await withRig({}, async (r) => {
    await r.outcomes.next(
      "5 good polls",
      () => r.outcomes.all.filter((o) => o.ok).length >= 5,
    );
    assert.deepEqual(
      r.logs.filter((l) => l.startsWith("modbus:")),
      ["modbus: connected to 127.0.0.1:" + r.port],
      "good polls log nothing after the connect",
    );
    const logsBefore = r.logs.length;
    const from = r.outcomes.all.length;
    r.device.mode = "exception";
    // Steps 100, 200, 400, 800 (the cap), then three more at the cap.
    await r.outcomes.next(
      "7 bad",
      () => r.outcomes.all.slice(from).filter((o) => !o.ok).length >= 7,
      from,
    );
    const delays = r.outcomes.all.slice(from).filter((o) => !o.ok)
      .map((o) => (o.ok ? 0 : o.nextDelayMs));
    assert.deepEqual(delays.slice(0, 7), [100, 200, 400, 800, 800, 800, 800]);
    const failedLines = r.logs.slice(logsBefore).filter((l) =>
      / failed \(/.test(l)
    );
    assert.deepEqual(
      failedLines.map((l) => l.replace(/.*backing off /, "")),
      ["100 ms", "200 ms", "400 ms", "800 ms (at the cap)"],
      failedLines.join("\n"),
    );
    const mark = r.outcomes.all.length;
    r.device.mode = "healthy";
    await r.outcomes.next("recovery", (o) => o.ok, mark);
    assert.equal(
      r.logs.slice(logsBefore).filter((l) => /recovered/.test(l)).length,
      1,
    );
    // Backoff was reset by the good read: a new outage starts at 100 ms.
    const second = r.outcomes.all.length;
    r.device.mode = "wrong-tid";
    await r.outcomes.next(
      "2 bad",
      () => r.outcomes.all.slice(second).filter((o) => !o.ok).length >= 2,
      second,
    );
    assert.deepEqual(
      r.outcomes.all.slice(second).filter((o) => !o.ok).slice(0, 2)
        .map((o) => (o.ok ? 0 : o.nextDelayMs)),
      [100, 200],
    );
    r.device.mode = "healthy";
  });
});

Deno.test("stopping the poller while a request is in flight publishes no bad quality and logs no failure", async () => {
  await withRig({}, async (r) => {
    await r.outcomes.next("first good poll", (o) => o.ok);
    r.device.mode = "hung";
    const inFlight = Promise.withResolvers<void>();
    r.device.onRequest = () => inFlight.resolve();
    await inFlight.promise;
    const published = r.sub.messages.length;
    await r.poller.stop();
    const after = r.sub.messages.slice(published)
      .filter((m) => m.topic === "demo/telemetry");
    assert.deepEqual(after, [], "no telemetry from the interrupted poll");
    assert.ok(!r.logs.some((l) => / failed \(/.test(l)), r.logs.join("\n"));
    assert.ok(r.outcomes.all.every((o) => o.ok), "no failed outcome recorded");
  });
});

/** Publish a setpoint command on the rig's broker and await its one answer. */
async function setpointVia(r: Rig, id: string, value: number) {
  await r.sub.client.publishAsync(
    "demo/cmd/setpoint",
    JSON.stringify({ id, value, ts: new Date().toISOString() }),
    { qos: 1 },
  );
  return (await r.sub.waitFor(
    `result ${id}`,
    (m) => m.topic === "demo/cmd/setpoint/result" && m.json.id === id,
    5000,
  )).json;
}

Deno.test("setpoint behind a hung poll: answered as not written at the deadline, and never written afterwards", async () => {
  // A long timeout: the hung poll holds the connection past the 1.8 s deadline.
  await withRig({ env: { MODBUS_TIMEOUT_MS: "3000" } }, async (r) => {
    await r.outcomes.next("first good poll", (o) => o.ok);
    await r.sub.waitFor("poller connected", () => r.poller.publisher.connected);
    r.device.mode = "hung";
    const pollSent = Promise.withResolvers<void>();
    r.device.onRequest = (_n, fc) => fc === 3 && pollSent.resolve();
    await pollSent.promise;
    const t0 = Date.now();
    const res = await setpointVia(r, "behind-hung", 4321);
    assert.ok(Date.now() - t0 < 2000, `answered in ${Date.now() - t0} ms`);
    assert.equal(res.ok, false);
    assert.equal(res.error, "timeout (not written)");
    // Let the hung read time out and the device answer again: still no write.
    r.device.mode = "healthy";
    const mark = r.outcomes.all.length;
    await r.outcomes.next("good poll after the hang", (o) => o.ok, mark);
    assert.ok(!r.device.functionCodes.includes(6), "FC06 never sent");
    assert.equal(r.device.setpoint, 2500);
  });
});

Deno.test("setpoint to a slow device: a write sent but unconfirmed at the deadline says so", async () => {
  await withRig({ env: { MODBUS_TIMEOUT_MS: "1500" } }, async (r) => {
    await r.outcomes.next("first good poll", (o) => o.ok);
    await r.sub.waitFor("poller connected", () => r.poller.publisher.connected);
    r.device.slowMs = 1900;
    r.device.script = (
      n,
    ) => (r.device.functionCodes[n - 1] === 6 ? "slow" : "healthy");
    const res = await setpointVia(r, "slow-write", 4321);
    assert.equal(res.ok, false);
    assert.equal(
      res.error,
      "timeout (write sent, not confirmed: device state unknown)",
    );
    assert.ok(r.device.functionCodes.includes(6), "the write was sent");
  });
});

Deno.test("two setpoint commands back to back: each written and read back in turn, both ok", async () => {
  await withRig({}, async (r) => {
    await r.outcomes.next("first good poll", (o) => o.ok);
    await r.sub.waitFor("poller connected", () => r.poller.publisher.connected);
    r.device.slowMs = 40;
    r.device.mode = "slow";
    const [a, b] = await Promise.all([
      setpointVia(r, "first", 2000),
      setpointVia(r, "second", 2600),
    ]);
    assert.deepEqual([a.ok, a.value, b.ok, b.value], [true, 2000, true, 2600]);
    assert.equal(r.device.setpoint, 2600);
    r.device.mode = "healthy";
  });
});

const MATRIX: { name: string; mode: Mode; error: string }[] = [
  { name: "hung (accepts, never answers)", mode: "hung", error: "timeout" },
  {
    name: "wrong transaction id",
    mode: "wrong-tid",
    error: "bad response (transaction id mismatch)",
  },
  {
    name: "truncated frame",
    mode: "truncated",
    error: "bad response (truncated frame)",
  },
  {
    name: "garbage (not Modbus)",
    mode: "garbage",
    error: "bad response (not Modbus TCP)",
  },
  {
    name: "well-framed reply of the wrong size",
    mode: "short",
    error: "bad response (byte count mismatch)",
  },
  {
    name: "reply from another unit id",
    mode: "wrong-unit",
    error: "bad response (unit id mismatch)",
  },
  {
    name: "Modbus exception response",
    mode: "exception",
    error: "modbus exception 4 (server device failure)",
  },
  {
    name: "connection reset mid-request",
    mode: "reset",
    error: "connection reset",
  },
  {
    name: "connection closed mid-request",
    mode: "close",
    error: "connection closed",
  },
];

for (const c of MATRIX) {
  Deno.test(`fault: ${c.name} -> "${c.error}", backoff, recovery`, async () => {
    await withRig({}, async (r) => {
      await r.outcomes.next("first good poll", (o) => o.ok);
      await faultThenRecover(
        r,
        c.error,
        () => {
          r.device.mode = c.mode;
        },
        () => {
          r.device.mode = "healthy";
        },
      );
    });
  });
}

Deno.test(`fault: slow device (answers after the timeout) -> "timeout"; late replies never taken`, async () => {
  await withRig({}, async (r) => {
    await r.outcomes.next("first good poll", (o) => o.ok);
    r.device.slowMs = TIMEOUT_MS + 60;
    await faultThenRecover(
      r,
      "timeout",
      () => {
        r.device.mode = "slow";
      },
      () => {
        r.device.mode = "healthy";
      },
    );
    // Every good telemetry after recovery carries its own request's data:
    // power_w counts requests, so a late (stale) reply would show as a
    // value lower than one already published.
    const powers = r.sub.on("demo/telemetry")
      .filter((m) => m.json.quality === "good")
      .map((m) => (m.json.values as { power_w: number }).power_w);
    assert.deepEqual(powers, [...powers].sort((a, b) => a - b));
  });
});

Deno.test(`fault: device down at start -> "connection refused"; comes up -> recovery`, async () => {
  await withRig({ deviceUp: false }, async (r) => {
    const bad = await r.outcomes.next("bad", (o) => !o.ok);
    assert.equal(!bad.ok && bad.error, "connection refused");
    await r.outcomes.next(
      "3 bad",
      () => r.outcomes.all.filter((o) => !o.ok).length >= 3,
    );
    const delays = r.outcomes.all.map((o) => (o.ok ? 0 : o.nextDelayMs));
    assert.deepEqual(delays.slice(0, 3), [100, 200, 400]);
    const msg = await r.sub.waitFor(
      "bad telemetry",
      (m) => m.json.quality === "bad",
    );
    assert.equal(msg.json.error, "connection refused");
    assert.equal(msg.json.device_id, null, "never read a device id");
    const clearedAt = Date.now();
    const mark = r.outcomes.all.length;
    await r.device.listen();
    const good = await r.outcomes.next("recovery", (o) => o.ok, mark);
    const step = Math.max(
      ...r.outcomes.all.map((o) => (o.ok ? 0 : o.nextDelayMs)),
    );
    assert.ok(good.tsMs - clearedAt <= step + 300, `${good.tsMs - clearedAt}`);
  });
});

Deno.test(`fault: device killed mid-run -> "connection refused"; restarted -> recovery`, async () => {
  await withRig({}, async (r) => {
    await r.outcomes.next("first good poll", (o) => o.ok);
    await faultThenRecover(
      r,
      "connection refused",
      () => r.device.kill(),
      () => r.device.listen(),
    );
  });
});

/** The simulator as its own process, so it can be stopped and killed for real. */
async function simProcess(port: number): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-P",
      new URL("../sim.ts", import.meta.url).pathname,
      "--modbus-host",
      "127.0.0.1",
      "--modbus-port",
      String(port),
    ],
    env: { NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  // It logs "sim: listening on ..." once the port is bound.
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!/sim: listening on/.test(seen)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`simulator exited: ${seen}`);
    seen += value;
  }
  // Keep draining its log so it never blocks on a full pipe.
  (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  return child;
}

Deno.test("real process faults: simulator frozen with SIGSTOP -> timeout, SIGCONT -> recovery; SIGKILL -> refused, restarted -> recovery", async () => {
  const port = await freePort();
  let sim = await simProcess(port);
  const mqttPort = await freePort();
  const broker = await startBroker({
    host: "127.0.0.1",
    tcpPort: mqttPort,
    log: () => {},
  });
  const outcomes = new Outcomes();
  const guard = rejectionGuard();
  let poller: Poller | null = null;
  try {
    poller = await startPoller(
      parseConfig(POLL_OPTIONS, [], {
        MODBUS_PORT: String(port),
        MQTT_URL: `mqtt://127.0.0.1:${mqttPort}`,
        POLL_INTERVAL_MS: "100",
        BACKOFF_BASE_MS: "100",
        MODBUS_TIMEOUT_MS: "200",
        MODBUS_RETRIES: "1",
        BACKOFF_MAX_MS: "400",
      }),
      { log: () => {}, random: () => 0.5, onOutcome: outcomes.push },
    );
    await outcomes.next("good", (o) => o.ok);

    let mark = outcomes.all.length;
    sim.kill("SIGSTOP");
    const frozen = await outcomes.next("bad while frozen", (o) => !o.ok, mark);
    assert.equal(!frozen.ok && frozen.error, "timeout");
    mark = outcomes.all.length;
    let cleared = Date.now();
    sim.kill("SIGCONT");
    let good = await outcomes.next("recovery after SIGCONT", (o) => o.ok, mark);
    // One capped backoff step (400) + a poll in flight (2 x 200) + slack.
    assert.ok(
      good.tsMs - cleared < 400 + 400 + 400,
      `${good.tsMs - cleared} ms`,
    );

    mark = outcomes.all.length;
    sim.kill("SIGKILL");
    await sim.status;
    const dead = await outcomes.next("bad after SIGKILL", (o) => !o.ok, mark);
    assert.match(
      !dead.ok ? dead.error : "",
      /^connection (reset|refused|closed)$/,
    );
    await outcomes.next(
      "refused",
      (o) => !o.ok && o.error === "connection refused",
      mark,
    );
    mark = outcomes.all.length;
    sim = await simProcess(port);
    cleared = Date.now(); // listening again
    good = await outcomes.next("recovery after restart", (o) => o.ok, mark);
    assert.ok(
      good.tsMs - cleared < 400 + 400 + 400,
      `${good.tsMs - cleared} ms`,
    );
  } finally {
    await poller?.stop();
    await broker.close();
    try {
      sim.kill("SIGKILL");
    } catch { /* gone */ }
    await sim.status;
  }
  guard.check();
  await assertPortFree(port);
});

Deno.test("link: a late reply to a timed-out request is skipped, not taken as the next answer", async () => {
  const guard = rejectionGuard();
  const port = await freePort();
  const device = await FaultyDevice.start(port);
  const link = new ModbusLink({
    host: "127.0.0.1",
    port,
    unitId: 1,
    timeoutMs: 100,
  });
  try {
    device.slowMs = 150;
    device.script = (n) => (n === 1 ? "slow" : "healthy");
    await assert.rejects(link.readHolding(0, 10), /timeout/);
    assert.ok(link.isOpen, "a plain timeout keeps the connection");
    // Request 2 is answered at once; request 1's answer arrives while 3 waits.
    assert.equal((await link.readHolding(0, 10))[ADDR.power], 2);
    device.script = (n) => (n === 3 ? "slow" : "healthy");
    device.slowMs = 30;
    const w3 = await link.readHolding(0, 10);
    assert.equal(w3[ADDR.power], 3);
    // Two more, to be sure the stream is still framed correctly.
    assert.equal((await link.readHolding(0, 10))[ADDR.power], 4);
    assert.equal(device.requests, 4);
  } finally {
    link.destroy();
    await device.close();
  }
  guard.check();
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

Deno.test("100 fault cycles: open file descriptors and heap stay flat", async () => {
  // A child with --expose-gc, so heap samples are taken after a full GC and
  // /proc/self/fd is readable (needs --allow-all).
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("./_fault_cycles.ts", import.meta.url).pathname,
      "100",
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const r = JSON.parse(new TextDecoder().decode(out.stdout).trim()) as {
    cycles: number;
    bad: number;
    errors: string[];
    fds: number[];
    heap: number[];
    delivered: boolean;
  };
  assert.equal(r.cycles, 100);
  assert.ok(r.delivered, "every message reached the broker before the stop");
  const early = {
    fd: median(r.fds.slice(5, 25)),
    heap: median(r.heap.slice(5, 25)),
  };
  const late = { fd: median(r.fds.slice(80)), heap: median(r.heap.slice(80)) };
  console.log(
    `fault cycles: ${r.cycles} (${r.bad} failed polls); fds median ${early.fd} -> ${late.fd} (min ${
      Math.min(...r.fds)
    }, max ${Math.max(...r.fds)}); heapUsed after GC median ${
      (early.heap / 1e6).toFixed(2)
    } -> ${(late.heap / 1e6).toFixed(2)} MB; errors: ${r.errors.join(" | ")}`,
  );
  assert.ok(late.fd <= early.fd + 1, `fds ${early.fd} -> ${late.fd}`);
  assert.ok(
    Math.max(...r.fds) <= early.fd + 4,
    `fd peak ${Math.max(...r.fds)}`,
  );
  // Generous: 1 MB of growth over 75 cycles would be >13 kB per cycle.
  assert.ok(
    late.heap <= early.heap + 1e6,
    `heap ${early.heap} -> ${late.heap}`,
  );
  for (const e of r.errors) {
    assert.match(
      e,
      /^(timeout|connection (reset|closed)|bad response \(.+\)|modbus exception 4 \(server device failure\))$/,
    );
  }
});
