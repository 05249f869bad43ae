/**
 * A fleet poller: many devices, one process, one MQTT connection. Each
 * device runs `startDevicePoller` (its own schedule, connection, retries,
 * backoff and alarm state) and publishes on `{prefix}/{name}/telemetry`,
 * `/alarms` and `/status`; they share one Publisher.
 *
 * Status: MQTT allows one will per connection, so the poller process has its
 * own retained birth/will status on `{prefix}/_pollers/{poller}/status`.
 * Each device's retained `{prefix}/{name}/status` says "online" (with the
 * same session number and `"poller": name`) on every (re)connect of the
 * poller, and "offline" when the poller stops cleanly. If the poller dies,
 * its will turns the poller status offline; a consumer treats a device as
 * offline when the poller named in its status is offline or its session is
 * older than the poller's.
 *
 * Start times are staggered evenly over each device's interval so 1000
 * devices at 1 Hz make a steady 1000 requests/s, not a burst each second.
 *
 * Concurrency bound: at most `maxInFlight` Modbus requests (connect + read)
 * are outstanding at once across the fleet (a semaphore, default 256). A
 * slot is taken only around one request, never across a retry wait or a
 * backoff, and every request is bounded by the timeout (ModbusLink), so a
 * hung device holds at most one slot for at most ~2 x timeout per try (the
 * connect and the read each bounded) and frees it while it backs off. Healthy
 * devices need about N x round-trip / interval slots (1000 devices x ~1 ms /
 * 1 s: about 1), so they can only wait if more than `maxInFlight - 1`
 * devices hang at the same moment, and even then for at most one timeout.
 * The bound exists to cap sockets-in-flight and memory on a connect storm
 * (all devices reconnecting after a network outage), not to pace polling.
 *
 * The semaphore reaches each device loop through `PollerDeps.limit`, which
 * wraps every Modbus request of that device.
 *
 * @example
 * ```ts
 * const { devices } = parseDevicesFile(await Deno.readTextFile(path));
 * const fleet = startFleet(cfg, devices, { pollerName: "site-a" });
 * await fleet.stop();
 * ```
 */
import { buildStatus, parseStatus, topicsFor } from "./contract.ts";
import {
  type DevicePoller,
  makePublisher,
  policyOf,
  type PollConfig,
  type PollerDeps,
  type PollOutcome,
  startDevicePoller,
} from "./device_poller.ts";
import { alarmParamsError } from "./alarm.ts";
import { ConfigError } from "./cli.ts";
import {
  type DeviceSpec,
  parseDevicesFile,
  pollerNameFromPath,
} from "./devices.ts";
import type { Publisher } from "./publisher.ts";

export const DEFAULT_MAX_IN_FLIGHT = 256;

/** A counting semaphore that runs tasks under a bound on concurrency. */
export class Gate {
  readonly limit: number;
  #inFlight = 0;
  #waiters: (() => void)[] = [];
  /** Highest concurrency seen, for tests and the benchmark. */
  maxInFlight = 0;
  /** Tasks that had to wait for a slot. */
  waited = 0;

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError("gate limit must be a positive integer");
    }
    this.limit = limit;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#inFlight >= this.limit) {
      this.waited++;
      await new Promise<void>((r) => this.#waiters.push(r));
    } else {
      this.#inFlight++;
    }
    this.maxInFlight = Math.max(this.maxInFlight, this.#inFlight);
    try {
      return await task();
    } finally {
      const next = this.#waiters.shift();
      // Hand the slot straight to the next waiter (count stays the same).
      if (next) next();
      else this.#inFlight--;
    }
  }
}

export interface FleetDeps extends Omit<PollerDeps, "onOutcome"> {
  /** Names this poller's own status topic; default "fleet". */
  pollerName?: string;
  /** Bound on concurrent Modbus requests; default DEFAULT_MAX_IN_FLIGHT. */
  maxInFlight?: number;
  /** Spread device start times over their interval; default true. */
  stagger?: boolean;
  /** Called after every poll of every device. */
  onOutcome?: (device: string, o: PollOutcome) => void;
}

/** One device of the fleet; `poller` is null until its staggered start. */
export interface FleetDevice {
  readonly spec: DeviceSpec;
  readonly target: DevicePoller["target"];
  readonly outcomes: readonly PollOutcome[];
  readonly poller: DevicePoller | null;
  stop(): Promise<void>;
}

export interface Fleet {
  readonly devices: FleetDevice[];
  readonly publisher: Publisher;
  readonly gate: Gate;
  /** Topic of this poller process's retained birth/will status. */
  readonly statusTopic: string;
  /** Stops every device, marks them offline, then closes MQTT. */
  stop(): Promise<void>;
}

/** Start polling every device; returns at once (devices start staggered). */
export function startFleet(
  cfg: PollConfig,
  specs: DeviceSpec[],
  deps: FleetDeps = {},
): Fleet {
  const log = deps.log ?? ((l: string) => console.error(l));
  const now = deps.now ?? Date.now;
  const policy = policyOf(cfg);
  const why = alarmParamsError(policy.alarm);
  if (why) throw new ConfigError(why);
  const pollerName = deps.pollerName ?? "fleet";
  const statusTopic = `${cfg.topicPrefix}/_pollers/${pollerName}/status`;
  // MQTT_BUFFER_SIZE is per device: every device keeps the same hour of
  // history through an outage, whatever the fleet size.
  const buffered = {
    ...cfg,
    mqttBufferSize: cfg.mqttBufferSize * specs.length,
  };
  const publisher = makePublisher(buffered, statusTopic, {
    log,
    now: deps.now,
    random: deps.random,
  });
  const gate = new Gate(deps.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);

  const stagger = deps.stagger ?? true;
  let stopped = false;
  const startTimers = new Set<ReturnType<typeof setTimeout>>();

  const devices: FleetDevice[] = specs.map((spec, i) => {
    const topics = topicsFor(cfg.topicPrefix, spec.name);
    const target = {
      name: spec.name,
      host: spec.host,
      port: spec.port,
      unitId: spec.unitId,
      intervalMs: spec.intervalMs,
      map: spec.map,
    };
    let inner: DevicePoller | null = null;
    const begin = () => {
      if (stopped) return;
      inner = startDevicePoller(target, policy, topics, publisher, {
        log,
        now: deps.now,
        random: deps.random,
        limit: (request) => gate.run(request),
        onOutcome: deps.onOutcome
          ? (o) => deps.onOutcome!(spec.name, o)
          : undefined,
      });
    };
    const offset = stagger
      ? Math.floor((i * spec.intervalMs) / specs.length)
      : 0;
    if (offset === 0) begin();
    else {
      const t = setTimeout(() => {
        startTimers.delete(t);
        begin();
      }, offset);
      startTimers.add(t);
    }
    return {
      spec,
      target,
      get outcomes() {
        return inner?.outcomes ?? [];
      },
      get poller() {
        return inner;
      },
      async stop() {
        await inner?.stop();
      },
    };
  });

  function deviceStatus(state: "online" | "offline") {
    for (const d of devices) {
      publisher.send(
        "event",
        topicsFor(cfg.topicPrefix, d.spec.name).status,
        { ...buildStatus(state, now(), publisher.session), poller: pollerName },
        true,
      );
    }
  }

  // Device births follow each poller birth: our own retained "online"
  // comes back to us after every (re)connect, with the new session.
  let bornSession = -1;
  publisher.subscribe(statusTopic, (_topic, payload) => {
    const s = parseStatus(payload);
    if (
      stopped || !s.ok || s.value.state !== "online" ||
      s.value.session !== publisher.session || bornSession === s.value.session
    ) return;
    bornSession = s.value.session;
    deviceStatus("online");
  });
  publisher.start();
  log(
    `fleet ${pollerName}: ${specs.length} devices -> ${cfg.topicPrefix}/{name}/telemetry (at most ${gate.limit} requests in flight)`,
  );

  let stopping: Promise<void> | null = null;
  return {
    devices,
    publisher,
    gate,
    statusTopic,
    stop() {
      stopping ??= (async () => {
        stopped = true;
        for (const t of startTimers) clearTimeout(t);
        startTimers.clear();
        await Promise.all(devices.map((d) => d.stop()));
        if (publisher.connected) deviceStatus("offline");
        await publisher.stop(Math.max(1000, Math.min(5000, specs.length * 5)));
      })();
      return stopping;
    },
  };
}

/** `DEVICES_FILE` mode of poll.ts: read and validate the file, then start. */
export async function startFleetFromFile(
  cfg: PollConfig,
  deps: FleetDeps = {},
): Promise<Fleet> {
  const path = cfg.devicesFile;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ConfigError(
      `DEVICES_FILE: cannot read ${path} (${(e as Error).message})`,
    );
  }
  let file;
  try {
    file = parseDevicesFile(text, {
      unitId: cfg.unitId,
      intervalMs: cfg.intervalMs,
    });
  } catch (e) {
    throw new ConfigError(`DEVICES_FILE ${path}: ${(e as Error).message}`);
  }
  return startFleet(cfg, file.devices, {
    pollerName: file.poller ?? pollerNameFromPath(path),
    ...deps,
  });
}
