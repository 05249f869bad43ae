/**
 * Child process of the "100 fault cycles" test: run with
 * `deno run -A --v8-flags=--expose-gc tests/_fault_cycles.ts CYCLES`.
 * Runs the real poller against a FaultyDevice whose every other request
 * fails (rotating faults), forces a GC after each cycle, samples open file
 * descriptors and heap, and prints one JSON line with the samples.
 */
import { startBroker } from "../broker.ts";
import { type PollOutcome, startPoller } from "../poll.ts";
import { parseConfig } from "../cli.ts";
import { POLL_OPTIONS } from "../settings.ts";
import { FaultyDevice, type Mode } from "./_faulty_device.ts";
import { freePort } from "./_support.ts";

const cycles = Number(Deno.args[0] ?? 100);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");

const faults: Mode[] = [
  "reset",
  "garbage",
  "exception",
  "wrong-tid",
  "close",
  "short",
  "truncated",
  "hung",
  "slow",
];
const port = await freePort();
const device = await FaultyDevice.start(port);
// Slower than the timeout: a timeout, then a late reply the link must skip.
device.slowMs = 90;
const mqttPort = await freePort();
const broker = await startBroker({
  host: "127.0.0.1",
  tcpPort: mqttPort,
  log: () => {},
});

let bad = 0;
let good = 0;
const errors = new Set<string>();
let cycleDone: (() => void) | null = null;
const onOutcome = (o: PollOutcome) => {
  if (!o.ok) {
    bad++;
    errors.add(o.error);
  } else if (bad > good) {
    good++;
    cycleDone?.();
  }
};
const poller = await startPoller(
  parseConfig(POLL_OPTIONS, [], {
    MODBUS_PORT: String(port),
    MQTT_URL: `mqtt://127.0.0.1:${mqttPort}`,
    POLL_INTERVAL_MS: "50",
    BACKOFF_BASE_MS: "50",
    MODBUS_TIMEOUT_MS: "60",
    MODBUS_RETRIES: "0",
    BACKOFF_MAX_MS: "100",
  }),
  { log: () => {}, random: () => 0.5, onOutcome },
);
// Odd requests fail, even ones succeed: one failed poll, a backoff step and
// one good poll per cycle.
device.script = (n) =>
  n % 2 === 1 ? faults[((n - 1) / 2) % faults.length] : "healthy";

const fds: number[] = [];
const heap: number[] = [];
const countFds = () => [...Deno.readDirSync("/proc/self/fd")].length;
while (good < cycles) {
  await new Promise<void>((r) => cycleDone = r);
  gc();
  fds.push(countFds());
  heap.push(Deno.memoryUsage().heapUsed);
}
await poller.stop();
await broker.close();
await device.close();
console.log(JSON.stringify({
  cycles: good,
  bad,
  errors: [...errors],
  fds,
  heap,
  delivered: poller.publisher.outbox.length === 0,
}));
