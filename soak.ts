/**
 * Bounded soak test (`deno task soak`, benchmark 6 of `deno task bench`):
 * the real poller runs in a child process (`--v8-flags=--expose-gc`, so its
 * RSS, heap and file descriptors are its own) against a scripted Modbus
 * device that alternates healthy periods with injected faults, rotating
 * device killed and restarted / hung / garbage frames / wrong transaction
 * id / exception replies, while the embedded aedes broker is stopped and
 * restarted on the same port every SOAK_BROKER_EVERY_S. A subscriber counts
 * telemetry and checks `seq` has no gaps.
 *
 * Every SOAK_SAMPLE_S the child forces a GC and samples VmRSS
 * (/proc/self/status), heap used and open fds (/proc/self/fd). The report
 * (markdown, stdout) has one row per 30 s and a summary: start / end / max,
 * slope per minute of a linear fit over the second half, faults, polls,
 * seq gaps and a verdict: flat when the end (median of the last 3 samples)
 * is within 10 % plus a small absolute slack of the median of the first
 * minute after warm-up. The last stderr line is `soak: result {json}`.
 * Exit code 1 if seq has gaps, a fault was not recovered from, the child
 * did not finish cleanly, or the verdict is not flat.
 *
 * @example
 * ```sh
 * deno task soak --soak-seconds 300 --soak-fault-every-s 5
 * ```
 */
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import {
  ConfigError,
  type ConfigOf,
  intOption,
  numberOption,
  parseConfig,
  runMain,
} from "./cli.ts";
import { POLL_OPTIONS } from "./settings.ts";
import { type Broker, startBroker } from "./broker.ts";
import { topicsFor } from "./contract.ts";
import { startPoller } from "./poll.ts";
import { FaultyDevice, type Mode } from "./tests/_faulty_device.ts";
import { freePort } from "./tests/_support.ts";

export const SOAK_OPTIONS = {
  seconds: intOption("SOAK_SECONDS", "soak duration, s", 180, 10, 86_400),
  faultEveryS: numberOption(
    "SOAK_FAULT_EVERY_S",
    "inject a device fault every this many seconds",
    10,
    1,
    3600,
  ),
  faultLengthS: numberOption(
    "SOAK_FAULT_LENGTH_S",
    "how long each device fault lasts, s (less than SOAK_FAULT_EVERY_S)",
    3,
    0.2,
    3600,
  ),
  brokerEveryS: numberOption(
    "SOAK_BROKER_EVERY_S",
    "stop and restart the MQTT broker every this many seconds",
    60,
    2,
    86_400,
  ),
  sampleS: numberOption(
    "SOAK_SAMPLE_S",
    "sample RSS / heap / fds every this many seconds",
    5,
    0.2,
    600,
  ),
  warmupS: numberOption(
    "SOAK_WARMUP_S",
    "warm-up before the baseline minute, s",
    20,
    0,
    3600,
  ),
  intervalMs: intOption(
    "SOAK_POLL_INTERVAL_MS",
    "poll period of the poller under test, ms",
    100,
    50,
    60_000,
  ),
  modbusPort: intOption(
    "SOAK_MODBUS_PORT",
    "port of the scripted device (0 = a free one)",
    0,
    0,
    65535,
  ),
  mqttPort: intOption(
    "SOAK_MQTT_PORT",
    "port of the embedded broker (0 = a free one)",
    0,
    0,
    65535,
  ),
};
export type SoakConfig = ConfigOf<typeof SOAK_OPTIONS>;

const FAULTS = ["kill", "hung", "garbage", "wrong-tid", "exception"] as const;
type Fault = typeof FAULTS[number];
const TIMEOUT_MS = 200;
const BACKOFF_MAX_MS = 4000;

interface Sample {
  /** Child clock, ms since the epoch. */
  at: number;
  rssKb: number;
  heapUsed: number;
  fds: number;
  good: number;
  bad: number;
}

interface Metric {
  start: number;
  baseline: number;
  end: number;
  max: number;
  slopePerMin: number;
  limit: number;
  flat: boolean;
}

export interface SoakResult {
  seconds: number;
  samples: number;
  rssMb: Metric;
  heapMb: Metric;
  fds: Metric;
  faults: number;
  faultsByKind: Record<string, number>;
  recovered: number;
  maxRecoveryMs: number;
  brokerOutages: number;
  brokerDownMs: number[];
  pollsGood: number;
  pollsBad: number;
  telemetryReceived: number;
  replayed: number;
  lastSeq: number;
  seqGaps: number;
  droppedByPoller: number;
  unsentAtStop: number;
  childExit: number | null;
  verdict: "flat" | "NOT FLAT" | "n/a (run too short)";
  /** Why the soak failed; empty when ok. */
  failures: string[];
  ok: boolean;
}

// ---- child: the poller under test -----------------------------------------

async function rolePoller(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      role: { type: "string" },
      "modbus-port": { type: "string" },
      "mqtt-url": { type: "string" },
      "interval-ms": { type: "string" },
      "sample-ms": { type: "string" },
    },
  });
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --v8-flags=--expose-gc");
  const out = (l: string) => console.log(l);
  let good = 0;
  let bad = 0;
  let failing = false;
  const poller = await startPoller(
    parseConfig(POLL_OPTIONS, [], {
      MODBUS_PORT: values["modbus-port"],
      MQTT_URL: values["mqtt-url"],
      TOPIC_PREFIX: "soak",
      POLL_INTERVAL_MS: values["interval-ms"],
      BACKOFF_BASE_MS: values["interval-ms"],
      MODBUS_TIMEOUT_MS: String(TIMEOUT_MS),
      MODBUS_RETRIES: "0",
      BACKOFF_MAX_MS: String(BACKOFF_MAX_MS),
    }),
    {
      log: (l) => console.error(l),
      onOutcome: (o) => {
        if (!o.ok) {
          bad++;
          failing = true;
        } else {
          good++;
          if (failing) out(`recovered ${Date.now()}`);
          failing = false;
        }
      },
    },
  );
  const sample = () => {
    gc();
    const status = Deno.readTextFileSync("/proc/self/status");
    const s: Sample = {
      at: Date.now(),
      rssKb: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN),
      heapUsed: Deno.memoryUsage().heapUsed,
      fds: [...Deno.readDirSync("/proc/self/fd")].length,
      good,
      bad,
    };
    out(`sample ${JSON.stringify(s)}`);
  };
  sample();
  out("ready");
  const timer = setInterval(sample, Number(values["sample-ms"]));
  const stop = async () => {
    Deno.removeSignalListener("SIGTERM", stop);
    clearInterval(timer);
    await poller.stop();
    out(
      `final ${
        JSON.stringify({
          good,
          bad,
          unsent: poller.publisher.outbox.length,
          dropped: poller.publisher.outbox.dropped,
        })
      }`,
    );
    // No Deno.exit: the process ends by itself only if nothing leaked.
  };
  Deno.addSignalListener("SIGTERM", stop);
}

// ---- parent: device, broker, subscriber, schedule, report ----------------

/** A child process whose stdout and stderr lines are kept with arrival time. */
class ChildProc {
  readonly proc: Deno.ChildProcess;
  readonly out: { at: number; line: string }[] = [];
  readonly err: { at: number; line: string }[] = [];
  readonly done: Promise<void>;

  constructor(args: string[]) {
    this.proc = new Deno.Command(Deno.execPath(), {
      args,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.done = Promise.all([
      ChildProc.#lines(this.proc.stdout, this.out),
      ChildProc.#lines(this.proc.stderr, this.err),
    ]).then(() => {});
  }

  static async #lines(
    s: ReadableStream<Uint8Array>,
    into: { at: number; line: string }[],
  ): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    for await (const c of s) {
      buf += dec.decode(c, { stream: true });
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        into.push({ at: Date.now(), line: buf.slice(0, i) });
        buf = buf.slice(i + 1);
      }
    }
    if (buf) into.push({ at: Date.now(), line: buf });
  }
}

const sleep = (ms: number) =>
  new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

async function waitUntil(
  what: string,
  check: () => boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** Run the soak; returns the result and the markdown report. */
export async function runSoak(
  cfg: SoakConfig,
  log: (l: string) => void = (l) => console.error(l),
): Promise<{ result: SoakResult; report: string }> {
  if (cfg.faultLengthS >= cfg.faultEveryS) {
    throw new ConfigError(
      `SOAK_FAULT_LENGTH_S (${cfg.faultLengthS}) must be less than SOAK_FAULT_EVERY_S (${cfg.faultEveryS})`,
    );
  }
  if (cfg.warmupS >= cfg.seconds) {
    throw new ConfigError(
      `SOAK_WARMUP_S (${cfg.warmupS}) must be less than SOAK_SECONDS (${cfg.seconds})`,
    );
  }
  const modbusPort = cfg.modbusPort || await freePort();
  const mqttPort = cfg.mqttPort || await freePort();
  const mqttUrl = `mqtt://127.0.0.1:${mqttPort}`;
  const topic = topicsFor("soak").telemetry;

  const device = await FaultyDevice.start(modbusPort);
  let broker: Broker | null = await startBroker({
    host: "127.0.0.1",
    tcpPort: mqttPort,
    log: () => {},
  });

  // Subscriber: persistent session, QoS 1, quick reconnect (aedes keeps no
  // sessions across its restart; mqtt.js resubscribes).
  const seen = new Set<number>();
  let received = 0;
  let replayed = 0;
  const sub = await mqtt.connectAsync(mqttUrl, {
    clientId: `soak-sub-${crypto.randomUUID().slice(0, 8)}`,
    clean: false,
    reconnectPeriod: 100,
    connectTimeout: 5000,
  });
  sub.on("error", () => {});
  sub.on("message", (_t, payload) => {
    try {
      const m = JSON.parse(payload.toString());
      received++;
      if (m.replayed === true) replayed++;
      if (typeof m.seq === "number") seen.add(m.seq);
    } catch { /* counted as a gap if it mattered */ }
  });
  await sub.subscribeAsync(topic, { qos: 1 });

  const child = new ChildProc([
    "run",
    "-A",
    "--v8-flags=--expose-gc",
    new URL(import.meta.url).pathname,
    "--role",
    "poller",
    "--modbus-port",
    String(modbusPort),
    "--mqtt-url",
    mqttUrl,
    "--interval-ms",
    String(cfg.intervalMs),
    "--sample-ms",
    String(Math.round(cfg.sampleS * 1000)),
  ]);
  const faults: { kind: Fault; start: number; end: number }[] = [];
  const outages: { start: number; end: number }[] = [];
  let childExit: number | null = null;
  let t0 = 0;
  try {
    await waitUntil(
      "the poller child to start",
      () => child.out.some((l) => l.line === "ready"),
      30_000,
    );
    t0 = Date.now();
    const endAt = t0 + cfg.seconds * 1000;
    log(
      `soak: ${cfg.seconds} s, fault every ${cfg.faultEveryS} s for ${cfg.faultLengthS} s, broker outage every ${cfg.brokerEveryS} s, poller pid ${child.proc.pid}`,
    );

    const faultLoop = (async () => {
      for (let k = 1;; k++) {
        const start = k * cfg.faultEveryS;
        if (start + cfg.faultEveryS > cfg.seconds) break;
        await sleep(t0 + start * 1000 - Date.now());
        const kind = FAULTS[(k - 1) % FAULTS.length];
        const f = { kind, start: Date.now(), end: 0 };
        if (kind === "kill") await device.kill();
        else device.mode = kind as Mode;
        await sleep(f.start + cfg.faultLengthS * 1000 - Date.now());
        if (kind === "kill") await device.listen();
        else device.mode = "healthy";
        f.end = Date.now();
        faults.push(f);
      }
    })();

    const brokerLoop = (async () => {
      for (let j = 1;; j++) {
        const at = j * cfg.brokerEveryS + cfg.faultEveryS / 2;
        if (at + 5 > cfg.seconds) break;
        await sleep(t0 + at * 1000 - Date.now());
        const mark = child.err.length;
        const start = Date.now();
        await broker?.close();
        broker = null;
        // Back right after the poller's second failed try: its next one is
        // a full backoff step (~2 s) away, so the subscriber resubscribes
        // first (aedes forgets sessions) and nothing replayed is lost.
        await waitUntil(
          "the poller to notice the broker outage",
          () =>
            child.err.slice(mark).some((l) =>
              /mqtt: reconnect failed; next try in/.test(l.line)
            ),
          15_000,
        ).catch((e) => log(`soak: ${(e as Error).message}`));
        broker = await startBroker({
          host: "127.0.0.1",
          tcpPort: mqttPort,
          log: () => {},
        });
        outages.push({ start, end: Date.now() });
      }
    })();

    await Promise.all([faultLoop, brokerLoop]);
    await sleep(endAt - Date.now());
  } finally {
    try {
      child.proc.kill("SIGTERM");
    } catch { /* gone */ }
    const timer = setTimeout(() => {
      log("soak: the poller child did not exit within 10 s; killing it");
      try {
        child.proc.kill("SIGKILL");
      } catch { /* gone */ }
    }, 10_000);
    const status = await child.proc.status;
    clearTimeout(timer);
    await child.done;
    childExit = status.signal ? null : status.code;
  }

  const final = JSON.parse(
    child.out.find((l) => l.line.startsWith("final "))?.line.slice(6) ??
      '{"good":0,"bad":0,"unsent":-1,"dropped":-1}',
  ) as { good: number; bad: number; unsent: number; dropped: number };
  // Messages published while stopping may still be on their way.
  const lastSeq = () => Math.max(final.good + final.bad, ...seen);
  await waitUntil(
    "the last telemetry",
    () => seen.size >= lastSeq(),
    3000,
  ).catch(() => {});
  await sub.endAsync(true);
  await broker?.close();
  await device.close();

  // ---- analysis ----
  const samples = child.out.filter((l) => l.line.startsWith("sample "))
    .map((l) => JSON.parse(l.line.slice(7)) as Sample);
  const ts = samples.map((s) => (s.at - t0) / 1000);
  const recoveries = child.out.filter((l) => l.line.startsWith("recovered "))
    .map((l) => Number(l.line.slice(10)));
  let recovered = 0;
  let maxRecoveryMs = 0;
  faults.forEach((f, i) => {
    const until = faults[i + 1]?.start ?? Infinity;
    const r = recoveries.find((at) => at >= f.start && at < until);
    if (r === undefined) {
      log(`soak: no recovery after fault ${i + 1} (${f.kind})`);
      return;
    }
    recovered++;
    maxRecoveryMs = Math.max(maxRecoveryMs, r - f.end);
  });
  let gaps = 0;
  for (let s = 1; s <= lastSeq(); s++) if (!seen.has(s)) gaps++;

  const judgeable = cfg.seconds >= cfg.warmupS + 90;
  const baseFrom = cfg.warmupS;
  const baseTo = Math.min(
    cfg.warmupS + 60,
    cfg.warmupS + (cfg.seconds - cfg.warmupS) / 2,
  );
  const metric = (
    get: (s: Sample) => number,
    rel: number,
    slack: number,
  ): Metric => {
    const ys = samples.map(get);
    const base = ys.filter((_, i) => ts[i] >= baseFrom && ts[i] <= baseTo);
    const half = ts.findIndex((t) => t >= ts.at(-1)! / 2);
    const baseline = median(base);
    const end = median(ys.slice(-3));
    const limit = baseline * (1 + rel) + slack;
    return {
      start: ys[0],
      baseline,
      end,
      max: Math.max(...ys),
      slopePerMin: slope(ts.slice(half), ys.slice(half)) * 60,
      limit,
      flat: end <= limit,
    };
  };
  const rssMb = metric((s) => s.rssKb / 1024, 0.1, 5);
  const heapMb = metric((s) => s.heapUsed / 2 ** 20, 0.1, 1);
  const fds = metric((s) => s.fds, 0.1, 2);
  const flat = rssMb.flat && heapMb.flat && fds.flat;
  const verdict = !judgeable
    ? "n/a (run too short)"
    : flat
    ? "flat"
    : "NOT FLAT";
  const faultsByKind: Record<string, number> = {};
  for (const f of faults) {
    faultsByKind[f.kind] = (faultsByKind[f.kind] ?? 0) + 1;
  }
  const failures = [
    ...(gaps ? [`${gaps} seq gaps`] : []),
    ...(faults.length ? [] : ["no fault injected"]),
    ...(recovered < faults.length
      ? [`${faults.length - recovered} faults not recovered from`]
      : []),
    ...(childExit === 0 ? [] : [`poller child exit ${childExit ?? "killed"}`]),
    ...(final.unsent === 0 ? [] : [`${final.unsent} messages unsent at stop`]),
    ...(verdict === "NOT FLAT" ? ["RSS, heap or fds not flat"] : []),
  ];
  const result: SoakResult = {
    seconds: cfg.seconds,
    samples: samples.length,
    rssMb,
    heapMb,
    fds,
    faults: faults.length,
    faultsByKind,
    recovered,
    maxRecoveryMs,
    brokerOutages: outages.length,
    brokerDownMs: outages.map((o) => o.end - o.start),
    pollsGood: final.good,
    pollsBad: final.bad,
    telemetryReceived: received,
    replayed,
    lastSeq: lastSeq(),
    seqGaps: gaps,
    droppedByPoller: final.dropped,
    unsentAtStop: final.unsent,
    childExit,
    verdict,
    failures,
    ok: failures.length === 0,
  };
  return { result, report: report(cfg, result, samples, ts, faults, outages) };
}

function report(
  cfg: SoakConfig,
  r: SoakResult,
  samples: Sample[],
  ts: number[],
  faults: { start: number }[],
  outages: { start: number }[],
): string {
  const f = (n: number, d = 1) => Number.isFinite(n) ? n.toFixed(d) : "n/a";
  const picked: number[] = [];
  let next = 0;
  ts.forEach((t, i) => {
    if (t >= next - cfg.sampleS / 2) {
      picked.push(i);
      next = (Math.floor(Math.max(0, t) / 30) + 1) * 30;
    }
  });
  if (samples.length && picked.at(-1) !== samples.length - 1) {
    picked.push(samples.length - 1);
  }
  const lines = [
    `## Soak (${cfg.seconds} s, device fault every ${cfg.faultEveryS} s for ${cfg.faultLengthS} s, broker outage every ${cfg.brokerEveryS} s, poll every ${cfg.intervalMs} ms, Deno ${Deno.version.deno})`,
    "",
    "| t (s) | RSS (MB) | heap used after GC (MB) | open fds | polls good / bad | faults so far | broker outages so far |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...picked.map((i) => {
      const s = samples[i];
      const at = s.at;
      return `| ${f(Math.max(0, ts[i]), 0)} | ${f(s.rssKb / 1024)} | ${
        f(s.heapUsed / 2 ** 20, 2)
      } | ${s.fds} | ${s.good} / ${s.bad} | ${
        faults.filter((x) => x.start <= at).length
      } | ${outages.filter((x) => x.start <= at).length} |`;
    }),
    "",
    "| Metric | start | baseline (median, first minute after warm-up) | end (median of last 3) | max | slope, 2nd half (per min) | flat if end <= |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...([
      ["RSS (MB)", r.rssMb, 1],
      ["heap used after GC (MB)", r.heapMb, 2],
      ["open fds", r.fds, 0],
    ] as const).map(([name, m, d]) =>
      `| ${name} | ${f(m.start, d)} | ${f(m.baseline, d)} | ${f(m.end, d)} | ${
        f(m.max, d)
      } | ${m.slopePerMin >= 0 ? "+" : ""}${f(m.slopePerMin, d + 2)} | ${
        f(m.limit, Math.max(d, 1))
      } |`
    ),
    "",
    `- faults injected: ${r.faults} (${
      Object.entries(r.faultsByKind).map(([k, n]) => `${k} ${n}`).join(", ")
    }); recovered from ${r.recovered}, at most ${
      f(r.maxRecoveryMs / 1000, 2)
    } s after the fault cleared`,
    `- broker outages: ${r.brokerOutages} (down ${
      r.brokerDownMs.map((ms) => f(ms / 1000, 1)).join(", ")
    } s)`,
    `- polls: ${r.pollsGood} good / ${r.pollsBad} bad; telemetry received ${r.telemetryReceived} (${r.replayed} replayed), seq 1..${r.lastSeq}, gaps: ${r.seqGaps}; dropped by the poller ${r.droppedByPoller}, unsent at stop ${r.unsentAtStop}`,
    `- poller child exit code: ${r.childExit ?? "killed"}`,
    `- verdict: **${r.verdict}** (RSS +10 % + 5 MB, heap +10 % + 1 MB, fds +10 % + 2 over the baseline)${
      r.ok ? "" : `; soak FAILED: ${r.failures.join(", ")}`
    }`,
  ];
  return lines.join("\n");
}

/** Benchmark 6 for bench.ts: run the default soak in a child, as table rows. */
export async function benchSoakRows(): Promise<
  [string, string, string, string][]
> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P", new URL(import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  const line = err.split("\n").find((l) => l.startsWith("soak: result "));
  if (!line) {
    return [[
      "6 Soak",
      "soak run",
      `failed (exit ${out.code})`,
      err.slice(-200),
    ]];
  }
  const r = JSON.parse(line.slice(13)) as SoakResult;
  const label = `6 Soak ${r.seconds} s, faults + broker outages`;
  const f = (n: number, d = 1) => n.toFixed(d);
  const m = (x: Metric, d: number, unit: string) =>
    `${f(x.start, d)} / ${f(x.end, d)} / ${f(x.max, d)}${unit}, slope ${
      x.slopePerMin >= 0 ? "+" : ""
    }${f(x.slopePerMin, d + 2)}${unit}/min`;
  return [
    [label, "poller RSS start / end / max", m(r.rssMb, 1, " MB"), "flat"],
    [label, "heap after GC start / end / max", m(r.heapMb, 2, " MB"), "flat"],
    [label, "open fds start / end / max", m(r.fds, 0, ""), "flat"],
    [
      label,
      "faults injected / recovered; broker outages",
      `${r.faults} / ${r.recovered} (max ${
        f(r.maxRecoveryMs / 1000, 2)
      } s to recover); ${r.brokerOutages}`,
      "all recovered",
    ],
    [
      label,
      "polls good / bad; seq gaps",
      `${r.pollsGood} / ${r.pollsBad}; ${r.seqGaps}`,
      "0 gaps",
    ],
    [label, "verdict", r.verdict, "flat"],
  ];
}

if (import.meta.main) {
  if (Deno.args.some((a) => a.startsWith("--role"))) await rolePoller();
  else {
    await runMain(
      "soak",
      "bounded soak test: poller RSS / heap / fds over time under faults",
      SOAK_OPTIONS,
      async (cfg) => {
        const { result, report: text } = await runSoak(cfg);
        console.log(text);
        console.error(`soak: result ${JSON.stringify(result)}`);
        if (!result.ok) Deno.exitCode = 1;
      },
    );
  }
}
