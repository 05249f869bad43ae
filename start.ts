/**
 * Everything in one command: simulator, embedded MQTT broker (TCP and
 * WebSocket), poller and HMI. Ctrl-C stops them all, poller first so its
 * offline status still reaches the broker.
 *
 * It takes the union of the components' settings, with the same names and
 * meanings as when each runs alone:
 * - `--external-broker` (EXTERNAL_BROKER=1) uses the broker at MQTT_URL and
 *   MQTT_WS_URL instead of starting the embedded one;
 * - `--sim-devices N` simulates N devices (ports MODBUS_PORT + i) and polls
 *   them as a fleet named `inv-1` .. `inv-N` (see /fleet in the HMI);
 * - `--devices-file F` polls the devices of F instead (the simulator still
 *   serves its SIM_DEVICES on MODBUS_PORT...).
 *
 * @example
 * ```ts
 * const stack = await startStack(parseConfig(START_SPEC, [], Deno.env.toObject()), console.error);
 * await stack.stop();
 * ```
 */
import { ConfigError, type ConfigOf, type Option, runMain } from "./cli.ts";
import {
  BROKER_OPTIONS,
  HMI_OPTIONS,
  POLL_OPTIONS,
  SIM_OPTIONS,
  START_OPTIONS,
} from "./settings.ts";
import { startSimulator } from "./sim.ts";
import { brokerOptionsFromConfig, startBroker } from "./broker.ts";
import { startPoller } from "./poll.ts";
import { startFleet, startFleetFromFile } from "./fleet.ts";
import type { DeviceSpec } from "./devices.ts";
import { startHmi } from "./hmi.ts";
import { loadMqttSecrets } from "./mqtt_secrets.ts";

type Spec = Record<string, Option<unknown>>;

/**
 * Merge component specs; a key two components share must be the very same
 * setting (same variable), or the union would silently change a meaning.
 */
function union<T extends Spec[]>(...specs: T): Spec {
  const out: Spec = {};
  for (const spec of specs) {
    for (const [key, opt] of Object.entries(spec)) {
      if (out[key] && out[key].env !== opt.env) {
        throw new Error(`start: ${key} means ${out[key].env} and ${opt.env}`);
      }
      out[key] = opt;
    }
  }
  return out;
}

// MODBUS_HOST is the simulator's listen address here; the poller reaches it
// over loopback. SIM_DEVICES is `simDevices` (the poller has no `devices`).
const { modbusHost: simHost, devices: simDevices, ...SIM_REST } = SIM_OPTIONS;
const { modbusHost: _pollHost, ...POLL_REST } = POLL_OPTIONS;

/** Every setting of every component, under the same names as alone. */
export const START_SPEC = union(
  START_OPTIONS,
  { simHost, simDevices },
  SIM_REST,
  POLL_REST,
  BROKER_OPTIONS,
  HMI_OPTIONS,
) as
  & typeof START_OPTIONS
  & { simHost: typeof simHost; simDevices: typeof simDevices }
  & typeof SIM_REST
  & typeof POLL_REST
  & typeof BROKER_OPTIONS
  & typeof HMI_OPTIONS;

export type StartConfig = ConfigOf<typeof START_SPEC>;

/** The settings of one component, taken from the union. */
function pick<S extends Spec>(spec: S, cfg: StartConfig): ConfigOf<S> {
  const c = cfg as unknown as Record<string, unknown>;
  return Object.fromEntries(
    Object.keys(spec).map((k) => [k, c[k]]),
  ) as ConfigOf<
    S
  >;
}

export interface Stack {
  hmiPort: number;
  /** Where the operator starts: the device page, or the fleet overview. */
  hmiPath: string;
  stop(): Promise<void>;
}

/**
 * Start simulator, broker (unless external), poller or fleet, and HMI.
 * Configuration errors are ConfigErrors thrown before anything starts.
 */
export async function startStack(
  cfg: StartConfig,
  log: (line: string) => void,
): Promise<Stack> {
  // Fail on configuration before starting anything (exit code 2).
  const brokerOpts = cfg.externalBroker
    ? null
    : brokerOptionsFromConfig(cfg, log);
  try {
    loadMqttSecrets({
      password: cfg.mqttPassword,
      passwordFile: cfg.mqttPasswordFile,
      caFile: cfg.mqttCaFile,
    });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (cfg.modbusPort + cfg.simDevices - 1 > 65535) {
    throw new ConfigError(
      `SIM_DEVICES: ports ${cfg.modbusPort}..${
        cfg.modbusPort + cfg.simDevices - 1
      } exceed 65535`,
    );
  }
  const stack: { name: string; stop: () => Promise<void> }[] = [];
  const stop = async () => {
    // Reverse start order: HMI, poller (publishes offline), broker, sim.
    for (const c of stack.splice(0).reverse()) {
      await c.stop().catch((e) =>
        log(`start: stopping ${c.name}: ${(e as Error).message}`)
      );
    }
  };
  try {
    const sim = await startSimulator({
      host: cfg.simHost,
      port: cfg.modbusPort,
      unitId: cfg.unitId,
      tauS: cfg.tauS,
      noise: cfg.noise,
      stepMs: cfg.stepMs,
      devices: cfg.simDevices,
      log,
    });
    stack.push({ name: "simulator", stop: () => sim.close() });
    if (brokerOpts) {
      const broker = await startBroker(brokerOpts);
      stack.push({ name: "broker", stop: () => broker.close() });
    }
    const pollCfg = {
      ...pick(POLL_OPTIONS, cfg),
      modbusHost: pollHostFor(cfg.simHost),
    };
    let hmiPath = "/";
    if (cfg.devicesFile) {
      const fleet = await startFleetFromFile(pollCfg, { log });
      stack.push({ name: "fleet poller", stop: () => fleet.stop() });
      hmiPath = "/fleet";
    } else if (cfg.simDevices > 1) {
      const specs: DeviceSpec[] = sim.ports.map((port, i) => ({
        name: `inv-${i + 1}`,
        host: pollCfg.modbusHost,
        port,
        unitId: cfg.unitId,
        intervalMs: cfg.intervalMs,
        map: "inverter",
      }));
      const fleet = startFleet(pollCfg, specs, { log, pollerName: "start" });
      stack.push({ name: "fleet poller", stop: () => fleet.stop() });
      hmiPath = "/fleet";
    } else {
      const poller = await startPoller(pollCfg, { log });
      stack.push({ name: "poller", stop: () => poller.stop() });
    }
    const hmi = await startHmi(pick(HMI_OPTIONS, cfg), log);
    stack.push({ name: "hmi", stop: () => hmi.close() });
    return { hmiPort: hmi.port, hmiPath, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** The poller reaches a simulator bound to all interfaces over loopback. */
function pollHostFor(simHost: string): string {
  return simHost === "0.0.0.0" || simHost === "::" ? "127.0.0.1" : simHost;
}

if (import.meta.main) {
  await runMain(
    "start",
    "simulator + embedded broker + poller + HMI in one process",
    START_SPEC,
    async (cfg) => {
      const log = (l: string) => console.error(l);
      let stack: Stack | null = null;
      let stopping = false;
      const onSignal = async () => {
        // A second Ctrl-C while stopping exits at once.
        if (stopping) Deno.exit(1);
        stopping = true;
        await stack?.stop();
        Deno.exit(0);
      };
      Deno.addSignalListener("SIGINT", onSignal);
      Deno.addSignalListener("SIGTERM", onSignal);
      stack = await startStack(cfg, log);
      log(
        `start: open http://localhost:${stack.hmiPort}${stack.hmiPath} (Ctrl-C stops everything)`,
      );
    },
  );
}
