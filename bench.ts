/**
 * Benchmarks (`deno task bench`), each next to a floor measured in the same
 * run, printed as a markdown table:
 *
 * 1. Modbus round trip of the poller's client (ModbusLink)
 *    against the simulator, vs a raw TCP echo and a raw MBAP exchange.
 * 2. Fleet: N simulated devices x 10 registers at 1 Hz for D s, one poller
 *    child process (its CPU and RSS read from /proc/<pid>), simulators in
 *    separate child processes (their CPU reported so a bottleneck shows).
 * 3. End to end: register read -> MQTT subscriber through Mosquitto, vs
 *    Mosquitto's own publish -> subscriber round trip.
 * 4. Alarm rule evaluations per second; payload encode cost per message.
 * 5. HMI bundle sizes (if static/build/ exists) and, in headless Chromium,
 *    the trend chart's update time with a full 10-minute window.
 * 6. Soak (not in the default set, ~3 min): `soak.ts` with its defaults;
 *    poller RSS, heap and fds over time under faults and broker outages.
 *
 * Settings (env or flag, see `--help`): BENCH_DEVICES / --bench-devices
 * (default 1000), BENCH_SECONDS / --bench-seconds (60), BENCH_SIM_PROCS /
 * --bench-sim-procs (one per 250 devices), BENCH_ONLY / --bench-only (1..6,
 * default 1..5).
 *
 * @example
 * ```sh
 * deno task bench --bench-devices 200 --bench-seconds 20
 * ```
 */
import net from "node:net";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import { startSimulator } from "./sim.ts";
import { ModbusLink } from "./modbus_link.ts";
import { startFleet } from "./fleet.ts";
import { parseDevicesFile } from "./devices.ts";
import {
  type ConfigOf,
  intOption,
  parseConfig,
  runMain,
  stringOption,
} from "./cli.ts";
import { POLL_OPTIONS } from "./settings.ts";
import { evaluateAlarm, INITIAL_ALARM_STATE } from "./alarm.ts";
import { buildTelemetry } from "./contract.ts";
import { encodeMessage } from "./outbox.ts";
import { startBroker } from "./broker.ts";
import { benchSoakRows } from "./soak.ts";
import { History } from "./history.ts";
import { MOSQUITTO } from "./tests/_support.ts";
import { startMosquitto } from "./tests/_mosquitto.ts";

const REGISTERS_PER_POLL = 10;
const BENCH_VALUES = {
  status_bits: 1,
  power_w: 3000,
  voltage_v: 230.1,
  current_a: 13.04,
  temp_c: 55.3,
  soc_pct: 72.4,
  setpoint_w: 3000,
};
const NEURON = { devices: 500, tags: 30, cores: 1.24 };
const CLK_TCK = 100;

type Row = [string, string, string, string];
const rows: Row[] = [];
const notes: string[] = [];
function row(bench: string, metric: string, value: string, floor: string) {
  rows.push([bench, metric, value, floor]);
  console.error(`  ${bench} | ${metric} | ${value} | ${floor}`);
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}
const sortNum = (a: number[]) => [...a].sort((x, y) => x - y);
const f = (n: number, d = 1) => Number.isFinite(n) ? n.toFixed(d) : "n/a";

// ---- 1. Modbus round trip ------------------------------------------------

async function echoServer() {
  const socks = new Set<net.Socket>();
  const srv = net.createServer({ noDelay: true }, (s) => {
    socks.add(s);
    s.on("data", (d) => s.write(d));
    s.on("error", () => {});
    s.on("close", () => socks.delete(s));
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        srv.close(() => r());
      }),
  };
}

/** Sequential request/response over a plain socket: `n` timings in ms. */
async function rawRoundTrips(
  port: number,
  request: Uint8Array,
  replyBytes: number,
  n: number,
): Promise<number[]> {
  const sock = net.connect({ port, host: "127.0.0.1", noDelay: true });
  await new Promise<void>((r, j) => {
    sock.once("connect", r);
    sock.once("error", j);
  });
  const out: number[] = [];
  let got = 0;
  let done: () => void = () => {};
  sock.on("data", (d) => {
    got += d.length;
    if (got >= replyBytes) {
      got = 0;
      done();
    }
  });
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise<void>((r) => {
      done = r;
      sock.write(request);
    });
    out.push(performance.now() - t0);
  }
  sock.destroy();
  return out;
}

async function benchModbus(n = 3000): Promise<void> {
  const sim = await startSimulator({
    host: "127.0.0.1",
    port: 0,
    noise: 0,
    log: () => {},
  });
  const echo = await echoServer();
  try {
    // Floor: 12 bytes out, 12 bytes back, no protocol.
    const req = Uint8Array.of(0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10);
    await rawRoundTrips(echo.port, req, 12, 300);
    const echoT = sortNum(await rawRoundTrips(echo.port, req, 12, n));
    // The same FC03 request as raw bytes to the simulator (server cost only).
    await rawRoundTrips(sim.ports[0], req, 9 + 20, 300);
    const rawT = sortNum(await rawRoundTrips(sim.ports[0], req, 9 + 20, n));
    // The poller's client.
    const link = new ModbusLink({
      host: "127.0.0.1",
      port: sim.ports[0],
      unitId: 1,
      timeoutMs: 1000,
    });
    for (let i = 0; i < 300; i++) await link.readHolding(0, 10);
    const linkT: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await link.readHolding(0, 10);
      linkT.push(performance.now() - t0);
    }
    link.destroy();
    linkT.sort((a, b) => a - b);
    const us = (ms: number) => `${f(ms * 1000, 0)} µs`;
    row(
      "1 Modbus RTT",
      `ModbusLink FC03 x10 p50 / p99 (n=${n})`,
      `${us(pct(linkT, 0.5))} / ${us(pct(linkT, 0.99))}`,
      `TCP echo ${us(pct(echoT, 0.5))} / ${us(pct(echoT, 0.99))}`,
    );
    row(
      "1 Modbus RTT",
      "raw FC03 bytes to the simulator p50 / p99",
      `${us(pct(rawT, 0.5))} / ${us(pct(rawT, 0.99))}`,
      `TCP echo ${us(pct(echoT, 0.5))} / ${us(pct(echoT, 0.99))}`,
    );
  } finally {
    await echo.close();
    await sim.close();
  }
}

// ---- 2. Fleet -------------------------------------------------------------

interface ProcStat {
  ticks: number;
  rssKb: number;
}

/**
 * utime + stime (ticks) and RSS of a process. Deno asks for --allow-all to
 * read /proc/<pid> directly, so `cat` (run permission) reads it.
 */
async function procStat(pid: number): Promise<ProcStat> {
  const out = await new Deno.Command("cat", {
    args: [`/proc/${pid}/stat`, `/proc/${pid}/status`],
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const stat = text.slice(0, text.indexOf("\n"));
  // Fields after the ")" of the command name; utime is 14, stime 15 (1-based).
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(rest[11]) + Number(rest[12]);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(text)?.[1] ?? NaN);
  return { ticks, rssKb };
}

/**
 * The runtime flags `deno task poll` runs the poller with (deno.json), so
 * the fleet benchmark measures the poller as deployed.
 */
const POLL_TASK_FLAGS: string[] = (() => {
  const json = JSON.parse(
    Deno.readTextFileSync(new URL("./deno.json", import.meta.url)),
  ) as { tasks: Record<string, string> };
  return json.tasks.poll.split(/\s+/).filter((a) =>
    a.startsWith("--v8-flags=")
  );
})();

/** A child `deno run bench.ts --role ...` with its stdout lines. */
class Child {
  readonly proc: Deno.ChildProcess;
  readonly lines: string[] = [];
  #waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  readonly done: Promise<void>;
  stderr = "";

  constructor(
    args: string[],
    env: Record<string, string> = {},
    runtimeFlags: string[] = [],
  ) {
    const proc = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-P",
        ...runtimeFlags,
        new URL(import.meta.url).pathname,
        ...args,
      ],
      env,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    this.proc = proc;
    const dec = new TextDecoder();
    const out = (async () => {
      let buf = "";
      for await (const c of proc.stdout) {
        buf += dec.decode(c, { stream: true });
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const l = buf.slice(0, i);
          buf = buf.slice(i + 1);
          this.lines.push(l);
          this.#waiters = this.#waiters.filter((w) => {
            if (!w.re.test(l)) return true;
            w.resolve(l);
            return false;
          });
        }
      }
    })();
    const err = (async () => {
      for await (const c of proc.stderr) {
        this.stderr = (this.stderr + dec.decode(c)).slice(-4000);
      }
    })();
    this.done = Promise.all([out, err]).then(() => {});
  }

  get pid(): number {
    return this.proc.pid;
  }

  waitLine(re: RegExp, timeoutMs: number): Promise<string> {
    const seen = this.lines.find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `child ${this.pid}: no ${re} in ${timeoutMs} ms\n${
                this.stderr.slice(-1500)
              }`,
            ),
          ),
        timeoutMs,
      );
      this.proc.status.then((s) => {
        if (!this.lines.some((l) => re.test(l))) {
          clearTimeout(timer);
          reject(
            new Error(
              `child ${this.pid} exited (${s.code}) before ${re}\n${
                this.stderr.slice(-1500)
              }`,
            ),
          );
        }
      });
      this.#waiters.push({
        re,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }

  async stop(): Promise<void> {
    try {
      this.proc.kill("SIGTERM");
    } catch { /* gone */ }
    await this.proc.status;
    await this.done;
  }
}

async function startSims(
  total: number,
  procs: number,
): Promise<{ base: number; sims: Child[] }> {
  for (let attempt = 0; attempt < 4; attempt++) {
    // Below the Linux ephemeral range (32768+), so client ports never collide.
    const base = 10_000 + Math.floor(Math.random() * (22_000 - total));
    const per = Math.ceil(total / procs);
    const sims: Child[] = [];
    try {
      for (let p = 0, start = 0; start < total; p++, start += per) {
        sims.push(
          new Child([
            "--role",
            "sim",
            "--port",
            String(base + start),
            "--devices",
            String(Math.min(per, total - start)),
          ]),
        );
      }
      await Promise.all(sims.map((s) => s.waitLine(/^ready/, 60_000)));
      return { base, sims };
    } catch (e) {
      await Promise.all(sims.map((s) => s.stop()));
      notes.push(
        `simulator start failed at base ${base}, retrying: ${
          (e as Error).message.split("\n")[0]
        }`,
      );
    }
  }
  throw new Error("could not start the simulators");
}

interface PollerStats {
  windowMs: number;
  polls: number;
  okPolls: number;
  failed: number;
  missed: number;
  latenessP50: number;
  latenessP99: number;
  latenessMax: number;
  rssMb: number;
  gateMax: number;
  errors: Record<string, number>;
}

async function benchFleet(
  devices: number,
  seconds: number,
  simProcs: number,
  brokerUrl: string,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bench-fleet-" });
  const { base, sims } = await startSims(devices, simProcs);
  let poller: Child | null = null;
  try {
    const file = `${dir}/devices.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        poller: "bench",
        devices: Array.from({ length: devices }, (_, i) => ({
          name: `inv-${i}`,
          host: "127.0.0.1",
          port: base + i,
          unit_id: 1,
          interval_ms: 1000,
        })),
      }),
    );
    const warmup = Math.max(5, Math.ceil(devices / 200));
    poller = new Child(
      [
        "--role",
        "poller",
        "--file",
        file,
        "--mqtt",
        brokerUrl,
        "--warmup",
        String(warmup),
        "--seconds",
        String(seconds),
      ],
      {},
      POLL_TASK_FLAGS,
    );
    await poller.waitLine(/^window-start/, 60_000);
    const p0 = await procStat(poller.pid);
    const s0 = await Promise.all(sims.map((s) => procStat(s.pid)));
    const t0 = performance.now();
    await poller.waitLine(/^window-end/, (seconds + 30) * 1000);
    const p1 = await procStat(poller.pid);
    const s1 = await Promise.all(sims.map((s) => procStat(s.pid)));
    const wallS = (performance.now() - t0) / 1000;
    const statsLine = await poller.waitLine(/^stats /, 10_000);
    const st = JSON.parse(statsLine.slice(6)) as PollerStats;
    const cpu = (p1.ticks - p0.ticks) / CLK_TCK / wallS;
    const simCpu = s1.map((s, i) => (s.ticks - s0[i].ticks) / CLK_TCK / wallS);
    const pointsPerS = st.okPolls * REGISTERS_PER_POLL / (st.windowMs / 1000);
    const neuronPts = NEURON.devices * NEURON.tags / NEURON.cores;
    const label =
      `2 Fleet ${devices} dev x ${REGISTERS_PER_POLL} reg @1 Hz, ${seconds} s`;
    row(label, "poller CPU (share of one core)", f(cpu, 3), "target < 0.5");
    row(
      label,
      "poller RSS (end of window)",
      `${f(p1.rssKb / 1024)} MB`,
      "target < 200 MB",
    );
    row(
      label,
      "polls ok / failed / missed ticks",
      `${st.okPolls} / ${st.failed} / ${st.missed}`,
      `expected ${devices * Math.floor(st.windowMs / 1000)}; target 0 missed`,
    );
    row(
      label,
      "poll-start lateness p50 / p99 / max",
      `${f(st.latenessP50)} / ${f(st.latenessP99)} / ${f(st.latenessMax)} ms`,
      "target p99 < 50 ms",
    );
    row(
      label,
      "points/s per core (poller)",
      `${f(pointsPerS / cpu, 0)} (${f(pointsPerS, 0)} points/s on ${
        f(cpu, 3)
      } core)`,
      `Neuron published: ${
        f(neuronPts, 0)
      } (500 dev x 30 tags @1 s on ~1.24 cores)`,
    );
    row(
      label,
      `simulator CPU (${sims.length} processes)`,
      simCpu.map((c) => f(c, 3)).join(" + ") +
        ` = ${f(simCpu.reduce((a, b) => a + b, 0), 3)} core`,
      "2 shared cores on this machine",
    );
    row(
      label,
      "max concurrent Modbus requests seen",
      String(st.gateMax),
      "bound 256",
    );
    if (Object.keys(st.errors).length) {
      notes.push(`fleet poll errors: ${JSON.stringify(st.errors)}`);
    }
    if (simCpu.some((c) => c > 0.8)) {
      notes.push(
        `a simulator process used > 0.8 core: it may be the bottleneck; rerun with more --sim-procs`,
      );
    }
  } finally {
    await poller?.stop();
    await Promise.all(sims.map((s) => s.stop()));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Child: serve `--devices` simulated devices from `--port`. */
async function roleSim(port: number, devices: number): Promise<void> {
  const sim = await startSimulator({
    host: "127.0.0.1",
    port,
    devices,
    log: () => {},
  });
  console.log("ready");
  const stop = async () => {
    await sim.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}

/** Child: the fleet poller under test, reporting its own schedule stats. */
async function rolePoller(
  file: string,
  mqttUrl: string,
  warmupS: number,
  seconds: number,
): Promise<void> {
  const { devices } = parseDevicesFile(await Deno.readTextFile(file));
  const cfg = parseConfig(POLL_OPTIONS, [], {
    MQTT_URL: mqttUrl,
    TOPIC_PREFIX: "bench",
  });
  const intervalMs = devices[0].intervalMs;
  // Poll-start times, measured where the request is issued (inside the
  // fleet's concurrency gate, so waiting for a slot counts as lateness).
  const anchor = new WeakMap<object, number>();
  const lastTick = new WeakMap<object, number>();
  let windowStart = Infinity;
  let windowEnd = Infinity;
  const lateness: number[] = [];
  let missed = 0;
  let polls = 0;
  const proto = ModbusLink.prototype;
  const read = proto.readHolding;
  proto.readHolding = function (this: ModbusLink, s: number, c: number) {
    const t = performance.now();
    let a = anchor.get(this);
    if (a === undefined) anchor.set(this, a = t);
    const k = Math.round((t - a) / intervalMs);
    if (t >= windowStart && t < windowEnd) {
      polls++;
      lateness.push(Math.max(0, t - (a + k * intervalMs)));
      const prev = lastTick.get(this);
      if (prev !== undefined && k - prev > 1) missed += k - prev - 1;
    }
    lastTick.set(this, k);
    return read.call(this, s, c);
  };
  let ok = 0;
  let failed = 0;
  const errors: Record<string, number> = {};
  const fleet = startFleet(cfg, devices, {
    pollerName: "bench",
    log: () => {},
    onOutcome: (_name, o) => {
      const t = performance.now();
      if (t < windowStart || t >= windowEnd) return;
      if (o.ok) ok++;
      else {
        failed++;
        errors[o.error] = (errors[o.error] ?? 0) + 1;
      }
    },
  });
  console.log("ready");
  await new Promise((r) => setTimeout(r, warmupS * 1000));
  windowStart = performance.now();
  console.log(`window-start`);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  windowEnd = performance.now();
  console.log(`window-end`);
  const l = sortNum(lateness);
  const stats: PollerStats = {
    windowMs: windowEnd - windowStart,
    polls,
    okPolls: ok,
    failed,
    missed,
    latenessP50: pct(l, 0.5),
    latenessP99: pct(l, 0.99),
    latenessMax: l.at(-1) ?? NaN,
    rssMb: Deno.memoryUsage().rss / 2 ** 20,
    gateMax: fleet.gate.maxInFlight,
    errors,
  };
  console.log(`stats ${JSON.stringify(stats)}`);
  // Keep running (so the parent can read /proc) until told to stop.
  const stop = async () => {
    await fleet.stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}

// ---- 3. End to end through Mosquitto ---------------------------------------

async function benchEndToEnd(brokerUrl: string, brokerName: string) {
  // Floor: the broker's own publish -> subscriber time, QoS 1, one at a time.
  const sub = await mqtt.connectAsync(brokerUrl, {
    clientId: `bsub-${Date.now()}`,
  });
  const pub = await mqtt.connectAsync(brokerUrl, {
    clientId: `bpub-${Date.now()}`,
  });
  const floor: number[] = [];
  try {
    await sub.subscribeAsync("benchfloor/#", { qos: 1 });
    let got: () => void = () => {};
    sub.on("message", (t) => {
      if (t.startsWith("benchfloor/")) got();
    });
    for (let i = 0; i < 1100; i++) {
      const t0 = performance.now();
      await new Promise<void>((r) => {
        got = r;
        pub.publish(
          "benchfloor/x",
          JSON.stringify({ i, pad: "x".repeat(150) }),
          {
            qos: 1,
          },
        );
      });
      if (i >= 100) floor.push(performance.now() - t0);
    }
  } finally {
    await pub.endAsync(true);
  }
  // Poller: 10 devices at 100 ms in this process; latency = receive time -
  // the moment the poller handed the message to MQTT (right after the
  // register read returned and was scaled), both on performance.now().
  const sim = await startSimulator({
    host: "127.0.0.1",
    port: 0,
    devices: 10,
    log: () => {},
  });
  const e2e: number[] = [];
  const sentAt = new Map<string, number>();
  const cfg = parseConfig(POLL_OPTIONS, [], {
    MQTT_URL: brokerUrl,
    TOPIC_PREFIX: "benche2e",
  });
  let done: () => void = () => {};
  const enough = new Promise<void>((r) => done = r);
  sub.on("message", (topic, payload) => {
    if (!topic.startsWith("benche2e/") || !topic.endsWith("/telemetry")) return;
    const at = performance.now();
    const m = JSON.parse(payload.toString());
    const t0 = sentAt.get(`${topic}#${m.seq}`);
    if (m.quality !== "good" || m.replayed || t0 === undefined) return;
    sentAt.delete(`${topic}#${m.seq}`);
    e2e.push(at - t0);
    if (e2e.length >= 1000) done();
  });
  await sub.subscribeAsync("benche2e/#", { qos: 1 });
  const fleet = startFleet(
    cfg,
    sim.ports.map((port, i) => ({
      name: `d${i}`,
      host: "127.0.0.1",
      port,
      unitId: 1,
      intervalMs: 100,
      map: "inverter" as const,
    })),
    { log: () => {}, pollerName: "benche2e" },
  );
  const send = fleet.publisher.send.bind(fleet.publisher);
  fleet.publisher.send = (kind, topic, body, retain) => {
    if (kind === "telemetry") {
      sentAt.set(`${topic}#${body.seq}`, performance.now());
    }
    send(kind, topic, body, retain);
  };
  try {
    await Promise.race([enough, new Promise((r) => setTimeout(r, 30_000))]);
  } finally {
    await fleet.stop();
    await sub.endAsync(true);
    await sim.close();
  }
  const e = sortNum(e2e.slice(50));
  const fl = sortNum(floor);
  row(
    `3 End to end via ${brokerName}`,
    `register read -> subscriber p50 / p99 (n=${e.length})`,
    `${f(pct(e, 0.5), 2)} / ${f(pct(e, 0.99), 2)} ms`,
    `broker publish -> subscriber ${f(pct(fl, 0.5), 2)} / ${
      f(pct(fl, 0.99), 2)
    } ms`,
  );
}

// ---- 4. CPU cost of the rule and the payload ------------------------------

function benchCpu(): void {
  const n = 2_000_000;
  let s = INITIAL_ALARM_STATE;
  let events = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    // A slow sawtooth around the thresholds so every branch is taken.
    const v = 50 + (i % 2000) / 100;
    const r = evaluateAlarm(s, { tsMs: i * 100, value: v });
    s = r.state;
    if (r.event) events++;
  }
  const dt = (performance.now() - t0) / 1000;
  row(
    "4 Alarm rule",
    "evaluations per second (one core)",
    `${f(n / dt / 1e6, 2)} M/s (${events} transitions)`,
    `1000 devices at 1 Hz need 1 k/s`,
  );
  const values = BENCH_VALUES;
  const m = 200_000;
  let bytes = 0;
  const t1 = performance.now();
  for (let i = 0; i < m; i++) {
    const body = buildTelemetry({
      tsMs: 1_700_000_000_000 + i,
      deviceId: 1001,
      seq: i,
      values,
    });
    bytes += encodeMessage({
      kind: "telemetry",
      topic: "x",
      body: { ...body },
      replayed: false,
    }).length;
  }
  const per = (performance.now() - t1) / m * 1000;
  // Floor: JSON.stringify of the same prebuilt object.
  const prebuilt = buildTelemetry({ tsMs: 0, deviceId: 1001, seq: 1, values });
  const t2 = performance.now();
  for (let i = 0; i < m; i++) bytes += JSON.stringify(prebuilt).length;
  const floor = (performance.now() - t2) / m * 1000;
  row(
    "4 Payload",
    "build + encode one telemetry message",
    `${f(per, 2)} µs (${Math.round(bytes / (2 * m))} bytes)`,
    `JSON.stringify alone ${f(floor, 2)} µs`,
  );
}

// ---- 7. HMI history at its size cap ----------------------------------------

/**
 * The HMI records a 1000-device fleet into a database `mb` MB large, past
 * its cap (1.6 x the rows that fit): the longest single write is the pause
 * eviction puts on the server; the floor is a write below the cap.
 */
async function benchHistory(mb: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bench-history-" });
  let now = Date.UTC(2026, 0, 1);
  const h = new History({
    path: `${dir}/history.db`,
    maxBytes: mb * 2 ** 20,
    pruneEveryMs: 0,
    now: () => now,
  });
  try {
    const devices = 1000;
    const total = Math.ceil(mb * 2 ** 20 / 285 * 1.6);
    const below: number[] = [];
    let longest = 0;
    let atCap = false;
    const values = { ...BENCH_VALUES };
    const t0 = performance.now();
    for (let i = 0; i < total; i++) {
      const d = i % devices;
      if (d === 0) now += 1000;
      const t = buildTelemetry({
        tsMs: now,
        deviceId: 1001 + d,
        seq: i,
        values,
      });
      const a = performance.now();
      h.recordTelemetry(t, `inv-${d + 1}`);
      const dt = performance.now() - a;
      if (atCap) longest = Math.max(longest, dt);
      else if (i % 100 === 0) {
        below.push(dt);
        atCap = h.usedBytes() >= h.maxBytes;
      }
    }
    const perMsg = (performance.now() - t0) / total * 1000;
    row(
      "7 History at the cap",
      `longest write, ${devices} devices, ${mb} MB cap, ${
        f(total / 1e6, 2)
      } M rows`,
      `${f(longest, 1)} ms (${f(perMsg, 0)} µs per message overall)`,
      `a write below the cap p50 ${f(pct(sortNum(below), 0.5) * 1000, 0)} µs`,
    );
  } finally {
    h.close();
    await Deno.remove(dir, { recursive: true });
  }
}

// ---- 5. HMI bundle ---------------------------------------------------------

async function benchBundle(): Promise<void> {
  const dir = new URL("./static/build/", import.meta.url).pathname;
  let files: Deno.DirEntry[];
  try {
    // Precompressed .gz copies are the same bundles: not counted twice.
    files = [...Deno.readDirSync(dir)].filter((e) =>
      e.isFile && !e.name.endsWith(".gz")
    );
  } catch {
    row("5 HMI bundle", "static/build/", "not built; skipped", "-");
    return;
  }
  let raw = 0;
  let gz = 0;
  for (const e of files) {
    const data = await Deno.readFile(dir + e.name);
    const z = new Uint8Array(
      await new Response(
        new Blob([data]).stream().pipeThrough(new CompressionStream("gzip")),
      ).arrayBuffer(),
    );
    raw += data.length;
    gz += z.length;
    row(
      "5 HMI bundle",
      e.name,
      `${f(data.length / 1024)} KiB (gzip ${f(z.length / 1024)} KiB)`,
      "-",
    );
  }
  row(
    "5 HMI bundle",
    `total (${files.length} files)`,
    `${f(raw / 1024)} KiB (gzip ${f(gz / 1024)} KiB)`,
    "-",
  );
  await benchChart(dir, files.map((e) => e.name));
}

/**
 * The trend chart's update time (both charts, 3 series, 900x300 canvases)
 * with a full 10-minute window, in headless Chromium: the built chart
 * chunk served from a loopback server, timed by the same code as
 * tests/browser_fleet_test.ts. Floor: the same update with empty series.
 */
async function benchChart(dir: string, names: string[]): Promise<void> {
  const { which } = await import("./tests/_support.ts");
  const chunk = names.find((n) => /^hmi_chart-[A-Z0-9]+\.js$/.test(n));
  const skip = !which("chromium")
    ? "chromium not installed"
    : chunk
    ? ""
    : "no chart chunk built";
  if (skip) {
    row("5 HMI chart", "trend chart update", `skipped: ${skip}`, "-");
    return;
  }
  const { launchChromium, measureChartUpdates } = await import(
    "./tests/_browser.ts"
  );
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const name = new URL(req.url).pathname.replace(/^\/build\//, "");
      if (names.includes(name)) {
        return new Response(await Deno.readFile(dir + name), {
          headers: { "content-type": "text/javascript" },
        });
      }
      return new Response("<!DOCTYPE html><title>chart</title><body></body>", {
        headers: { "content-type": "text/html" },
      });
    },
  );
  const profile = await Deno.makeTempDir({ prefix: "bench-chromium-" });
  try {
    const browser = await launchChromium(profile);
    try {
      const page = await browser.newPage();
      await page.setViewport({ width: 1280, height: 900 });
      const base = `http://127.0.0.1:${server.addr.port}`;
      await page.goto(`${base}/`);
      const [floor, ...t] = await measureChartUpdates(
        page,
        `${base}/build/${chunk}`,
        [0, 600, 2400],
        300,
      );
      for (const m of t) {
        row(
          "5 HMI chart",
          `trend update, full 10-min window, ${m.points} points/series (${m.updates} updates) p50 / p99`,
          `${f(m.p50, 2)} / ${f(m.p99, 2)} ms`,
          `empty chart ${f(floor.p50, 2)} / ${
            f(floor.p99, 2)
          } ms; frame 16.7 ms`,
        );
      }
    } finally {
      await browser.close();
    }
  } finally {
    await server.shutdown();
    await Deno.remove(profile, { recursive: true });
  }
}

// ---- main -------------------------------------------------------------------

/** User-facing settings; child processes use the internal --role flags. */
const BENCH_OPTIONS = {
  devices: intOption(
    "BENCH_DEVICES",
    "simulated devices in the fleet benchmark",
    1000,
    1,
    10_000,
  ),
  seconds: intOption(
    "BENCH_SECONDS",
    "fleet benchmark duration, s",
    60,
    1,
    3600,
  ),
  simProcs: intOption(
    "BENCH_SIM_PROCS",
    "simulator processes (0 = one per 250 devices)",
    0,
    0,
    64,
  ),
  only: stringOption(
    "BENCH_ONLY",
    "comma-separated benchmarks to run (1..7; 6 is the soak, 7 the HMI history at its cap)",
    "1,2,3,4,5",
    (v) =>
      /^[1-7](,[1-7])*$/.test(v)
        ? null
        : "expected numbers 1..7 separated by commas",
  ),
  historyMb: intOption(
    "BENCH_HISTORY_MB",
    "size cap of the history benchmark's database, MB (7)",
    64,
    1,
    4096,
  ),
};

/** Internal entry for the child processes the fleet benchmark starts. */
function childRole(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      role: { type: "string" },
      port: { type: "string" },
      devices: { type: "string" },
      seconds: { type: "string" },
      file: { type: "string" },
      mqtt: { type: "string" },
      warmup: { type: "string" },
    },
  });
  if (values.role === "sim") {
    return roleSim(Number(values.port), Number(values.devices));
  }
  return rolePoller(
    values.file!,
    values.mqtt!,
    Number(values.warmup),
    Number(values.seconds),
  );
}

async function main(cfg: ConfigOf<typeof BENCH_OPTIONS>): Promise<void> {
  const { devices, seconds } = cfg;
  const simProcs = cfg.simProcs || Math.max(1, Math.ceil(devices / 250));
  const values = { only: cfg.only };
  const only = new Set((values.only ?? "1,2,3,4,5").split(","));
  const started = new Date();
  console.error(
    `bench: ${started.toISOString()}, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`,
  );

  let broker: { url: string; name: string; stop(): Promise<void> };
  if (MOSQUITTO) {
    const m = await startMosquitto({ withWebSocket: false });
    broker = {
      url: `mqtt://127.0.0.1:${m.tcpPort}`,
      name: "Mosquitto",
      stop: () => m.stop(),
    };
  } else {
    const port = 18830 + Math.floor(Math.random() * 1000);
    const b = await startBroker({
      host: "127.0.0.1",
      tcpPort: port,
      log: () => {},
    });
    broker = {
      url: `mqtt://127.0.0.1:${port}`,
      name: "embedded aedes",
      stop: () => b.close(),
    };
    notes.push(
      "Mosquitto not found: benchmarks 2 and 3 used the embedded aedes broker",
    );
  }
  try {
    if (only.has("1")) await benchModbus();
    if (only.has("4")) benchCpu();
    if (only.has("5")) await benchBundle();
    if (only.has("3")) await benchEndToEnd(broker.url, broker.name);
    if (only.has("2")) await benchFleet(devices, seconds, simProcs, broker.url);
    if (only.has("6")) { for (const r of await benchSoakRows()) row(...r); }
    if (only.has("7")) await benchHistory(cfg.historyMb);
  } finally {
    await broker.stop();
  }
  const out = [
    `## Benchmarks (${
      started.toISOString().slice(0, 10)
    }, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}, ${Deno.build.os}/${Deno.build.arch})`,
    "",
    "| Benchmark | Metric | Result | Floor / reference |",
    "| --- | --- | --- | --- |",
    ...rows.map((r) => `| ${r.join(" | ")} |`),
    ...(notes.length ? ["", ...notes.map((n) => `- ${n}`)] : []),
  ];
  console.log(out.join("\n"));
}

if (import.meta.main) {
  if (Deno.args.some((a) => a.startsWith("--role"))) await childRole();
  else {
    await runMain(
      "bench",
      "benchmarks against floors measured in the same run",
      BENCH_OPTIONS,
      main,
    );
  }
}
