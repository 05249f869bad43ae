/**
 * Every setting of every entry point, in one place, so `--help`, `start.ts`
 * and the README's configuration table cannot drift apart.
 */
import {
  boolOption,
  intOption,
  numberOption,
  type Option,
  stringOption,
  urlOption,
} from "./cli.ts";
import { DEFAULT_TOPIC_PREFIX, isTopicSafe } from "./contract.ts";
import { DEFAULT_ALARM_PARAMS } from "./alarm.ts";

const hostCheck = (s: string) =>
  /^[A-Za-z0-9.:_-]+$/.test(s) ? null : "expected a host name or IP address";

export const MODBUS_PORT = intOption(
  "MODBUS_PORT",
  "Modbus TCP port",
  5020,
  1,
  65535,
);
export const MODBUS_UNIT_ID = intOption(
  "MODBUS_UNIT_ID",
  "Modbus unit id",
  1,
  0,
  255,
);

export const SIM_OPTIONS = {
  modbusHost: stringOption(
    "MODBUS_HOST",
    "simulator listen address",
    "0.0.0.0",
    hostCheck,
  ),
  modbusPort: MODBUS_PORT,
  unitId: MODBUS_UNIT_ID,
  tauS: numberOption(
    "SIM_TAU_S",
    "temperature time constant, seconds",
    10,
    0.1,
    3600,
  ),
  noise: numberOption(
    "SIM_NOISE",
    "measurement noise scale, 0 = deterministic",
    1,
    0,
    10,
  ),
  stepMs: intOption("SIM_STEP_MS", "physics step, ms", 100, 10, 10_000),
  devices: {
    ...intOption(
      "SIM_DEVICES",
      "simulated devices; device i on MODBUS_PORT + i, id 1001 + i",
      1,
      1,
      10_000,
    ),
    alias: "devices",
  },
} satisfies Record<string, Option<unknown>>;

export const MQTT_URL = urlOption(
  "MQTT_URL",
  "MQTT broker URL (mqtt:// or mqtts://)",
  "mqtt://localhost:1883",
  ["mqtt:", "mqtts:"],
);
const WS_URL = urlOption(
  "MQTT_WS_URL",
  "MQTT over WebSocket URL the browser uses (ws:// or wss://; no credentials in it)",
  "ws://localhost:9001",
  ["ws:", "wss:"],
);
/** The page and /api/health show this URL, so it may not carry credentials. */
export const MQTT_WS_URL: Option<string> = {
  ...WS_URL,
  parse(raw) {
    const v = WS_URL.parse(raw);
    const u = new URL(v);
    if (u.username || u.password) {
      throw new Error(
        "expected no credentials in the URL (every browser gets it): put credentials in MQTT_WS_USERNAME/MQTT_WS_PASSWORD_FILE",
      );
    }
    return v;
  },
};
export const TOPIC_PREFIX = stringOption(
  "TOPIC_PREFIX",
  "MQTT topic prefix",
  DEFAULT_TOPIC_PREFIX,
  (s) => isTopicSafe(s) ? null : "expected letters, digits, _ . - and /",
);
export const MQTT_USERNAME = stringOption(
  "MQTT_USERNAME",
  "MQTT user name (empty = anonymous)",
  "",
);
export const MQTT_PASSWORD = stringOption(
  "MQTT_PASSWORD",
  "MQTT password",
  "",
  undefined,
  true,
);

export const MQTT_PASSWORD_FILE = stringOption(
  "MQTT_PASSWORD_FILE",
  "file holding the MQTT password (wins over MQTT_PASSWORD)",
  "",
);
export const MQTT_CA_FILE = stringOption(
  "MQTT_CA_FILE",
  "PEM CA certificate(s) to trust for mqtts:// and wss://",
  "",
);
export const MQTT_BUFFER_SIZE = intOption(
  "MQTT_BUFFER_SIZE",
  "telemetry messages kept per device while the broker is away (oldest dropped first)",
  3600,
  1,
  10_000_000,
);
export const MQTT_BUFFER_MAX_MB = intOption(
  "MQTT_BUFFER_MAX_MB",
  "MiB of buffered messages (topic + payload) for the whole poller process; oldest telemetry dropped first, alarms and events kept even beyond it",
  64,
  1,
  1_000_000,
);
export const MQTT_BUFFER_DIR = stringOption(
  "MQTT_BUFFER_DIR",
  "directory of a durable outbox (outbox.db): unsent messages, seq and alarm state survive a restart (empty = memory only)",
  "",
);

export const POLL_OPTIONS = {
  modbusHost: stringOption(
    "MODBUS_HOST",
    "device host",
    "127.0.0.1",
    hostCheck,
  ),
  modbusPort: MODBUS_PORT,
  unitId: MODBUS_UNIT_ID,
  intervalMs: intOption(
    "POLL_INTERVAL_MS",
    "poll period, ms",
    1000,
    50,
    3_600_000,
  ),
  timeoutMs: intOption(
    "MODBUS_TIMEOUT_MS",
    "timeout of one Modbus request, ms",
    1000,
    10,
    60_000,
  ),
  retries: intOption(
    "MODBUS_RETRIES",
    "extra tries per poll before it counts as failed",
    2,
    0,
    10,
  ),
  backoffBaseMs: intOption(
    "BACKOFF_BASE_MS",
    "first backoff after a failed poll, ms; doubles per failure (never shorter than the poll interval)",
    1000,
    10,
    3_600_000,
  ),
  backoffMaxMs: intOption(
    "BACKOFF_MAX_MS",
    "longest backoff after failures, ms",
    30_000,
    100,
    3_600_000,
  ),
  mqttUrl: MQTT_URL,
  mqttUsername: MQTT_USERNAME,
  mqttPassword: MQTT_PASSWORD,
  mqttPasswordFile: MQTT_PASSWORD_FILE,
  mqttCaFile: MQTT_CA_FILE,
  mqttBufferSize: MQTT_BUFFER_SIZE,
  mqttBufferMaxMb: MQTT_BUFFER_MAX_MB,
  mqttBufferDir: MQTT_BUFFER_DIR,
  topicPrefix: TOPIC_PREFIX,
  raiseAboveC: numberOption(
    "ALARM_RAISE_C",
    "temp_high raises above this, C",
    DEFAULT_ALARM_PARAMS.raiseAboveC,
    -50,
    200,
  ),
  raiseDelayMs: intOption(
    "ALARM_RAISE_DELAY_MS",
    "temp_high raises after this long above, ms",
    DEFAULT_ALARM_PARAMS.raiseDelayMs,
    0,
    3_600_000,
  ),
  clearBelowC: numberOption(
    "ALARM_CLEAR_C",
    "temp_high clears below this, C",
    DEFAULT_ALARM_PARAMS.clearBelowC,
    -50,
    200,
  ),
  clearDelayMs: intOption(
    "ALARM_CLEAR_DELAY_MS",
    "temp_high clears after this long below, ms",
    DEFAULT_ALARM_PARAMS.clearDelayMs,
    0,
    3_600_000,
  ),
  devicesFile: stringOption(
    "DEVICES_FILE",
    "JSON devices file for a fleet (empty = the one device above)",
    "",
  ),
} satisfies Record<string, Option<unknown>>;

export const BROKER_OPTIONS = {
  mqttUrl: MQTT_URL,
  mqttWsUrl: MQTT_WS_URL,
  brokerHost: stringOption(
    "BROKER_HOST",
    "embedded broker listen address",
    "0.0.0.0",
    hostCheck,
  ),
  brokerTlsCertFile: stringOption(
    "BROKER_TLS_CERT_FILE",
    "embedded broker: PEM server certificate (chain) for mqtts:// and wss://",
    "",
  ),
  brokerTlsKeyFile: stringOption(
    "BROKER_TLS_KEY_FILE",
    "embedded broker: PEM private key of BROKER_TLS_CERT_FILE",
    "",
  ),
} satisfies Record<string, Option<unknown>>;

export const HMI_PORT = intOption("HMI_PORT", "HMI HTTP port", 8000, 1, 65535);

export const START_OPTIONS = {
  externalBroker: boolOption(
    "EXTERNAL_BROKER",
    "use the broker at MQTT_URL/MQTT_WS_URL instead of starting the embedded one",
  ),
} satisfies Record<string, Option<unknown>>;

export const HMI_OPTIONS = {
  hmiHost: stringOption(
    "HMI_HOST",
    "HMI listen address",
    "0.0.0.0",
    hostCheck,
  ),
  hmiPort: HMI_PORT,
  mqttWsUrl: MQTT_WS_URL,
  topicPrefix: TOPIC_PREFIX,
  intervalMs: POLL_OPTIONS.intervalMs,
  raiseAboveC: POLL_OPTIONS.raiseAboveC,
  clearBelowC: POLL_OPTIONS.clearBelowC,
  mqttUrl: MQTT_URL,
  mqttUsername: MQTT_USERNAME,
  mqttPassword: MQTT_PASSWORD,
  mqttPasswordFile: MQTT_PASSWORD_FILE,
  mqttCaFile: MQTT_CA_FILE,
  dataDir: stringOption(
    "DATA_DIR",
    "directory of the HMI's history database (history.db)",
    "./data",
  ),
  historyMaxMb: intOption(
    "HISTORY_MAX_MB",
    "bound on the history database, MB; past it the devices with the most rows lose their oldest telemetry first",
    1024,
    1,
    1_000_000,
  ),
  mqttWsUsername: stringOption(
    "MQTT_WS_USERNAME",
    "MQTT user the browser logs in as (least privilege: read + commands; empty = anonymous)",
    "",
  ),
  mqttWsPassword: stringOption(
    "MQTT_WS_PASSWORD",
    "password of MQTT_WS_USERNAME",
    "",
    undefined,
    true,
  ),
  mqttWsPasswordFile: stringOption(
    "MQTT_WS_PASSWORD_FILE",
    "file holding the password of MQTT_WS_USERNAME (wins over MQTT_WS_PASSWORD)",
    "",
  ),
  hmiAuthFile: stringOption(
    "HMI_AUTH_FILE",
    "file of user:password lines; HTTP Basic auth for the HMI (empty = open HMI)",
    "",
  ),
} satisfies Record<string, Option<unknown>>;
