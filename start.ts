/**
 * Everything in one command: simulator, embedded MQTT broker (TCP and
 * WebSocket), poller and HMI. Ctrl-C stops them all, poller first so its
 * offline status still reaches the broker.
 *
 * `--external-broker` (EXTERNAL_BROKER=1) uses the broker at MQTT_URL and
 * MQTT_WS_URL instead of starting the embedded one.
 */
import { runMain } from "./cli.ts";
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
import { startHmi } from "./hmi.ts";

// MODBUS_HOST means "listen address" here (the simulator's); the poller
// reaches it over loopback.
const { modbusHost: _pollHost, ...POLL_REST } = POLL_OPTIONS;

/** Each component's settings under its own key; same env names as alone. */
export const START_SPEC = {
  ...START_OPTIONS,
  // The simulator listens where the poller reads.
  simHost: SIM_OPTIONS.modbusHost,
  tauS: SIM_OPTIONS.tauS,
  noise: SIM_OPTIONS.noise,
  stepMs: SIM_OPTIONS.stepMs,
  ...POLL_REST,
  mqttWsUrl: BROKER_OPTIONS.mqttWsUrl,
  brokerHost: BROKER_OPTIONS.brokerHost,
  brokerTlsCertFile: BROKER_OPTIONS.brokerTlsCertFile,
  brokerTlsKeyFile: BROKER_OPTIONS.brokerTlsKeyFile,
  hmiHost: HMI_OPTIONS.hmiHost,
  hmiPort: HMI_OPTIONS.hmiPort,
  dataDir: HMI_OPTIONS.dataDir,
};

if (import.meta.main) {
  await runMain(
    "start",
    "simulator + embedded broker + poller + HMI in one process",
    START_SPEC,
    async (cfg) => {
      const log = (l: string) => console.error(l);
      const stack: { name: string; stop: () => Promise<void> }[] = [];
      let stopping = false;
      const stopAll = async (code: number) => {
        if (stopping) return;
        stopping = true;
        // Reverse start order: HMI, poller (publishes offline), broker, sim.
        for (const c of stack.reverse()) {
          await c.stop().catch((e) =>
            log(`start: stopping ${c.name}: ${e.message}`)
          );
        }
        Deno.exit(code);
      };
      // Broker configuration errors (TLS files) exit 2 before anything starts.
      const brokerOpts = cfg.externalBroker
        ? null
        : brokerOptionsFromConfig(cfg, log);
      Deno.addSignalListener("SIGINT", () => stopAll(0));
      Deno.addSignalListener("SIGTERM", () => stopAll(0));
      try {
        const sim = await startSimulator({
          host: cfg.simHost,
          port: cfg.modbusPort,
          unitId: cfg.unitId,
          tauS: cfg.tauS,
          noise: cfg.noise,
          stepMs: cfg.stepMs,
          log,
        });
        stack.push({ name: "simulator", stop: () => sim.close() });
        if (brokerOpts) {
          const broker = await startBroker(brokerOpts);
          stack.push({ name: "broker", stop: () => broker.close() });
        }
        const poller = await startPoller(
          { ...cfg, modbusHost: pollHostFor(cfg.simHost) },
          { log },
        );
        stack.push({ name: "poller", stop: () => poller.stop() });
        const hmi = await startHmi({
          hmiHost: cfg.hmiHost,
          hmiPort: cfg.hmiPort,
          mqttWsUrl: cfg.mqttWsUrl,
          topicPrefix: cfg.topicPrefix,
          intervalMs: cfg.intervalMs,
          raiseAboveC: cfg.raiseAboveC,
          clearBelowC: cfg.clearBelowC,
          mqttUrl: cfg.mqttUrl,
          mqttUsername: cfg.mqttUsername,
          mqttPassword: cfg.mqttPassword,
          mqttPasswordFile: cfg.mqttPasswordFile,
          mqttCaFile: cfg.mqttCaFile,
          dataDir: cfg.dataDir,
        }, log);
        stack.push({ name: "hmi", stop: () => hmi.close() });
        log(
          `start: open http://localhost:${hmi.port}/ (Ctrl-C stops everything)`,
        );
      } catch (e) {
        log(`start: ${(e as Error).message}`);
        await stopAll(1);
      }
    },
  );
}

/** The poller reaches a simulator bound to all interfaces over loopback. */
function pollHostFor(simHost: string): string {
  return simHost === "0.0.0.0" || simHost === "::" ? "127.0.0.1" : simHost;
}
