/**
 * Modbus TCP device simulator: one (or N) battery inverters whose registers
 * follow registers.ts, with the physics of sim_model.ts stepped in real time.
 *
 * Run: `deno task sim` (settings: `deno task sim --help`). Library use (tests,
 * start.ts):
 *
 * @example
 * ```ts
 * const sim = await startSimulator({ host: "127.0.0.1", port: 5020 });
 * // ... poll 127.0.0.1:5020, unit 1 ...
 * await sim.close();
 * ```
 *
 * Protocol behaviour (unit ids, exceptions, dropped connections) is described
 * in modbus_server.ts. Each device has its own port, physics and device id
 * (1001 + index); all share one physics timer.
 */
import { runMain, stopOnSignals } from "./cli.ts";
import { SIM_OPTIONS } from "./settings.ts";
import { DEVICE_ID, REGISTER_SPACE } from "./registers.ts";
import {
  applyWrite,
  checkWrite,
  initialState,
  modelParams,
  registerWords,
  type SimState,
  stepModel,
} from "./sim_model.ts";
import {
  listenModbusTcp,
  type ModbusTcpServer,
  type RegisterBank,
} from "./modbus_server.ts";

export interface SimOptions {
  /** Listen address; default 0.0.0.0. */
  host?: string;
  /** Port of the first device (device i listens on port + i); 0 = any free. */
  port: number;
  /** Unit id served (also 0 and 255); default 1. Others get exception 0x0B. */
  unitId?: number;
  /** Temperature time constant, s; default 10. */
  tauS?: number;
  /** Noise scale, 0 = deterministic; default 1. */
  noise?: number;
  /** Physics step, ms; default 100. */
  stepMs?: number;
  /** Number of independent devices; default 1. */
  devices?: number;
  /** Log sink, one line per event; default console.error. */
  log?: (line: string) => void;
}

export interface Simulator {
  /** The port of each device, in device order. */
  ports: number[];
  /** Close every server, client socket and the physics timer. */
  close(): Promise<void>;
}

/** One simulated device: physics state plus its register bank. */
class Device implements RegisterBank {
  readonly size = REGISTER_SPACE;
  #state: SimState;
  #words: number[];

  constructor(
    readonly deviceId: number,
    readonly params: ReturnType<typeof modelParams>,
  ) {
    this.#state = initialState(params);
    this.#words = registerWords(this.#state, deviceId);
  }

  step(dtS: number): void {
    this.#state = stepModel(this.#state, dtS, this.params, Math.random);
    this.#words = registerWords(this.#state, this.deviceId);
  }

  read(start: number, count: number): ArrayLike<number> {
    return this.#words.slice(start, start + count);
  }

  checkWrite(start: number, values: readonly number[]): number {
    return checkWrite(start, values);
  }

  write(start: number, values: readonly number[]): void {
    this.#state = applyWrite(this.#state, start, values);
    this.#words = registerWords(this.#state, this.deviceId);
  }
}

function intIn(what: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${what} must be an integer in ${min}..${max}`);
  }
  return v;
}

/** Start the simulator; resolves once every device is listening. */
export async function startSimulator(opts: SimOptions): Promise<Simulator> {
  const host = opts.host ?? SIM_OPTIONS.modbusHost.default ?? "0.0.0.0";
  const unitId = intIn("unitId", opts.unitId ?? 1, 0, 255);
  const count = intIn("devices", opts.devices ?? 1, 1, 10_000);
  const stepMs = intIn("stepMs", opts.stepMs ?? 100, 1, 3_600_000);
  intIn("port", opts.port, 0, 65535);
  if (opts.port > 0 && opts.port + count - 1 > 65535) {
    throw new RangeError(
      `ports ${opts.port}..${opts.port + count - 1} exceed 65535`,
    );
  }
  const log = opts.log ?? ((l: string) => console.error(l));
  const params = modelParams({
    tauS: opts.tauS ?? 10,
    noise: opts.noise ?? 1,
  });

  const devices: Device[] = [];
  const servers: ModbusTcpServer[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const dev = new Device(DEVICE_ID + i, params);
      devices.push(dev);
      servers.push(
        await listenModbusTcp({
          host,
          port: opts.port === 0 ? 0 : opts.port + i,
          unitId,
          bank: dev,
          name: `sim device ${dev.deviceId}`,
          log,
        }),
      );
    }
  } catch (e) {
    await Promise.all(servers.map((s) => s.close()));
    throw e;
  }

  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    // Real elapsed time, so a stalled event loop does not slow the physics;
    // capped so a suspended laptop does not jump hours.
    const dtS = Math.min((now - last) / 1000, 60);
    last = now;
    for (const d of devices) d.step(dtS);
  }, stepMs);

  const ports = servers.map((s) => s.port);
  const range = ports.length === 1
    ? `${host}:${ports[0]}`
    : `${host}:${ports[0]}..${ports[ports.length - 1]}`;
  log(
    `sim: listening on ${range}, unit ${unitId}, ${count} device(s) from id ${DEVICE_ID}`,
  );

  let closing: Promise<void> | null = null;
  return {
    ports,
    close() {
      closing ??= (async () => {
        clearInterval(timer);
        await Promise.all(servers.map((s) => s.close()));
      })();
      return closing;
    },
  };
}

if (import.meta.main) {
  await runMain(
    "sim",
    "Modbus TCP device simulator",
    SIM_OPTIONS,
    async (cfg) => {
      const sim = await startSimulator({
        host: cfg.modbusHost,
        port: cfg.modbusPort,
        unitId: cfg.unitId,
        tauS: cfg.tauS,
        noise: cfg.noise,
        stepMs: cfg.stepMs,
        devices: cfg.devices,
      });
      stopOnSignals(() => sim.close());
    },
  );
}
