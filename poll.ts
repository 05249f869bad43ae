/**
 * The poller entry point (`deno task poll`): one device from the settings, or
 * a fleet from DEVICES_FILE. Reads the device over Modbus TCP on a fixed
 * schedule and publishes telemetry with quality, alarm events and retained
 * online status to MQTT (see device_poller.ts for the loop itself).
 *
 * @example
 * ```ts
 * const poller = await startPoller(cfg);
 * await poller.stop();
 * ```
 */
import { ConfigError, runMain, stopOnSignals } from "./cli.ts";
import { POLL_OPTIONS } from "./settings.ts";
import { topicsFor } from "./contract.ts";
import { alarmParamsError } from "./alarm.ts";
import type { Publisher } from "./publisher.ts";
import {
  alarmParamsOf,
  makePublisher,
  policyOf,
  type PollConfig,
  type PollerDeps,
  type PollOutcome,
  startDevicePoller,
} from "./device_poller.ts";
import { startFleetFromFile } from "./fleet.ts";

export type { PollConfig, PollOutcome };

export interface Poller {
  /** Stops polling, publishes offline status and closes both connections. */
  stop(): Promise<void>;
  /** Recent outcomes, newest last (bounded), for tests and diagnostics. */
  readonly outcomes: readonly PollOutcome[];
  readonly publisher: Publisher;
}

/** Start the single-device poller of PollConfig; resolves once running. */
export async function startPoller(
  cfg: PollConfig,
  deps: PollerDeps = {},
): Promise<Poller> {
  const log = deps.log ?? ((l: string) => console.error(l));
  const alarm = alarmParamsOf(cfg);
  const why = alarmParamsError(alarm);
  if (why) throw new ConfigError(why);
  const topics = topicsFor(cfg.topicPrefix);
  const publisher = makePublisher(cfg, topics.status, deps);
  publisher.start();
  await publisher.firstAttempt(FIRST_CONNECT_WAIT_MS);
  const device = startDevicePoller(
    {
      name: null,
      host: cfg.modbusHost,
      port: cfg.modbusPort,
      unitId: cfg.unitId,
      intervalMs: cfg.intervalMs,
    },
    policyOf(cfg),
    topics,
    publisher,
    { ...deps, log },
  );
  log(
    `poll: ${cfg.modbusHost}:${cfg.modbusPort} unit ${cfg.unitId} every ${cfg.intervalMs} ms -> ${topics.telemetry}`,
  );
  return {
    outcomes: device.outcomes,
    publisher,
    async stop() {
      await device.stop();
      await publisher.stop();
    },
  };
}

/** How long a starting poller waits for its broker before polling anyway. */
export const FIRST_CONNECT_WAIT_MS = 2000;

if (import.meta.main) {
  await runMain(
    "poll",
    "poll a Modbus TCP device and publish telemetry and alarms to MQTT",
    POLL_OPTIONS,
    async (cfg) => {
      if (cfg.devicesFile) {
        const fleet = await startFleetFromFile(cfg);
        stopOnSignals(() => fleet.stop());
        return;
      }
      const poller = await startPoller(cfg);
      stopOnSignals(() => poller.stop());
    },
  );
}
