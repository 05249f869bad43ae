/**
 * One device's poll loop: its own drift-free schedule, Modbus connection,
 * retries, exponential backoff, scaling, quality, alarm rule and ISA-18.2
 * acknowledgement state, and its operator commands; publishing through a
 * Publisher that may be shared by many devices (a fleet).
 *
 * Failure policy: each poll makes up to 1 + retries tries, each bounded by
 * the timeout. When all fail it publishes bad quality with the reason, drops
 * the connection and backs off exponentially (with jitter, capped); the first
 * good read returns to the normal schedule.
 *
 * @example
 * ```ts
 * const device = startDevicePoller(target, policyOf(cfg), topicsFor("demo"), publisher);
 * await device.stop();
 * ```
 */
import { ConfigError, type ConfigOf } from "./cli.ts";
import { POLL_OPTIONS } from "./settings.ts";
import {
  buildAlarmEvent,
  buildBadTelemetry,
  buildTelemetry,
  isoTs,
  type Topics,
} from "./contract.ts";
import {
  ADDR,
  REGISTER_MAPS,
  type RegisterMapName,
  scaleRegisters,
} from "./registers.ts";
import { planReads } from "./read_plan.ts";
import {
  buildCommandResult,
  COMMAND_ANSWER_MS,
  RecentIds,
  validateAckCommand,
  validateSetpointCommand,
} from "./commands.ts";
import {
  type AlarmRecord,
  initialAlarmRecord,
  isActive,
  onAck,
  onCleared,
  onRaised,
  restoreAlarmRecord,
} from "./alarm_states.ts";
import {
  alarmMessage,
  type AlarmParams,
  type AlarmState,
  evaluateAlarm,
  INITIAL_ALARM_STATE,
} from "./alarm.ts";
import { backoffDelayMs, type BackoffParams, nextTickMs } from "./schedule.ts";
import {
  describeModbusError,
  ModbusError,
  ModbusLink,
  NoReplyError,
  NotSentError,
} from "./modbus_link.ts";
import { Publisher } from "./publisher.ts";
import { loadMqttSecrets } from "./mqtt_secrets.ts";

export type PollConfig = ConfigOf<typeof POLL_OPTIONS>;

/** Outcome of one poll, for tests and metrics. */
export type PollOutcome =
  | { ok: true; tsMs: number; tries: number }
  | { ok: false; tsMs: number; error: string; nextDelayMs: number };

export interface PollerDeps {
  log?: (line: string) => void;
  now?: () => number;
  random?: () => number;
  /** Called after every poll (tests await outcomes instead of sleeping). */
  onOutcome?: (o: PollOutcome) => void;
  /**
   * Runs each Modbus request; a fleet passes a semaphore here to bound
   * requests in flight across devices. Default: run at once.
   */
  limit?: <T>(request: () => Promise<T>) => Promise<T>;
}

/** Sleep that `wake()` can cut short (for a prompt stop). */
class Sleeper {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #resolve: (() => void) | null = null;
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#resolve = resolve;
      this.#timer = setTimeout(() => {
        this.#resolve = null;
        resolve();
      }, Math.max(0, ms));
    });
  }
  wake(): void {
    clearTimeout(this.#timer);
    this.#resolve?.();
    this.#resolve = null;
  }
}

export function alarmParamsOf(cfg: PollConfig): AlarmParams {
  return {
    raiseAboveC: cfg.raiseAboveC,
    raiseDelayMs: cfg.raiseDelayMs,
    clearBelowC: cfg.clearBelowC,
    clearDelayMs: cfg.clearDelayMs,
  };
}

/** Where one device is and how often to read it. */
export interface DeviceTarget {
  /** Fleet name (topic level), or null for the single-device topics. */
  name: string | null;
  host: string;
  port: number;
  unitId: number;
  intervalMs: number;
  /** Register map (default: the built-in inverter map). */
  map?: RegisterMapName;
}

/** How hard to try, shared by every device of a poller. */
export interface PollPolicy {
  timeoutMs: number;
  retries: number;
  /** First backoff step; the delay is never shorter than the poll interval. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  alarm: AlarmParams;
}

export interface DevicePoller {
  readonly target: DeviceTarget;
  readonly outcomes: readonly PollOutcome[];
  /** Current ISA-18.2 state of temp_high. */
  readonly alarmRecord: AlarmRecord;
  stop(): Promise<void>;
}

/** Alarm names this device type has (acks for others are refused). */
export const ALARM_NAMES = ["temp_high"] as const;

/**
 * Poll one device on its own schedule, connection and backoff, publishing
 * through a shared Publisher. A hung device only ever delays itself.
 */
export function startDevicePoller(
  target: DeviceTarget,
  policy: PollPolicy,
  topics: Topics,
  publisher: Publisher,
  deps: PollerDeps = {},
): DevicePoller {
  const log = deps.log ?? ((l: string) => console.error(l));
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const limit = deps.limit ?? (<T>(request: () => Promise<T>) => request());
  const alarmParams = policy.alarm;
  const backoff: BackoffParams = {
    baseMs: policy.backoffBaseMs,
    maxMs: policy.backoffMaxMs,
    jitter: 0.1,
  };
  const registerMap = REGISTER_MAPS[target.map ?? "inverter"];
  // Every register of the map (they all exist on the device, so a block may
  // span the unpublished ones): the inverter map is one FC03 of 0..9.
  const plan = planReads(registerMap.map((r) => r.address));
  const who = target.name ?? `${target.host}:${target.port}`;
  const where = `${target.host}:${target.port}`;

  const link = new ModbusLink({
    host: target.host,
    port: target.port,
    unitId: target.unitId,
    timeoutMs: policy.timeoutMs,
  });

  const outcomes: PollOutcome[] = [];
  const sleeper = new Sleeper();
  let stopped = false;
  let seq = publisher.lastSeq(topics.telemetry);
  let deviceId: number | null = null;
  // A durable outbox keeps the alarm state this device last announced: a
  // restart continues from it, so an alarm nobody has acknowledged is not
  // forgotten, and one still active clears (not re-raises) by the rule.
  const restored = restoreAlarmRecord(
    publisher.lastRetained(topics.alarmsState),
    "temp_high",
  );
  let alarmRec: AlarmRecord = restored ?? initialAlarmRecord("temp_high");
  let alarm: AlarmState = isActive(alarmRec.state)
    ? { active: true, pendingSinceMs: null }
    : INITIAL_ALARM_STATE;
  if (restored && restored.state !== "normal") {
    log(
      `alarm: ${who} temp_high continues as ${restored.state} (raised ${restored.raised_ts}) from the durable outbox`,
    );
  }
  const recentCommands = new RecentIds();
  let commandQueue: Promise<unknown> = Promise.resolve();
  /** Nominal (unjittered) backoff step last logged, so the cap is logged once. */
  let loggedStepMs = 0;
  let failures = 0;
  let lastError = "";
  let everConnected = false;

  function record(o: PollOutcome): void {
    outcomes.push(o);
    if (outcomes.length > 100) outcomes.shift();
    deps.onOutcome?.(o);
  }

  function runAlarm(tsMs: number, value: number | null): void {
    const r = evaluateAlarm(alarm, { tsMs, value }, alarmParams);
    alarm = r.state;
    if (!r.event) return;
    const message = alarmMessage(r.event, alarmParams);
    log(`alarm: ${who} temp_high ${r.event.state}: ${message}`);
    alarmRec = r.event.state === "raised"
      ? onRaised(alarmRec, r.event)
      : onCleared(alarmRec, r.event);
    publisher.send("alarm", topics.alarms, {
      ...buildAlarmEvent({
        tsMs: r.event.tsMs,
        deviceId,
        alarm: "temp_high",
        state: r.event.state,
        value: r.event.value,
        message,
      }),
    });
    publishAlarmState(r.event.tsMs);
  }

  /** Retained, so a freshly opened HMI shows the right alarms at once. */
  function publishAlarmState(tsMs: number): void {
    publisher.send("event", topics.alarmsState, {
      ts: isoTs(tsMs),
      device_id: deviceId,
      alarms: [alarmRec],
    }, true);
  }

  function answer(
    topic: string,
    r: Parameters<typeof buildCommandResult>[0],
  ): void {
    publisher.send("event", topic, { ...buildCommandResult(r) });
  }

  /**
   * Write the setpoint (FC06) and read it back, within the answer deadline
   * counted from the command's arrival. One command at a time per device, so
   * two commands never interleave as write, write, read-back, read-back. At
   * the deadline a write not yet sent is never sent; a write sent but not
   * confirmed is reported as such (the device may hold the new value).
   */
  function writeSetpoint(value: number): Promise<string | null> {
    const deadline = AbortSignal.timeout(COMMAND_ANSWER_MS - 200);
    const run = async (): Promise<string | null> => {
      let written = false;
      try {
        const opts = { signal: deadline };
        await limit(() => link.writeRegister(ADDR.setpoint, value, opts));
        written = true;
        const [back] = await limit(() =>
          link.readHolding(ADDR.setpoint, 1, opts)
        );
        return back === value
          ? null
          : `read-back mismatch (device holds ${back})`;
      } catch (e) {
        if (e instanceof NotSentError) return "timeout (not written)";
        const reason = e instanceof NoReplyError
          ? "timeout"
          : describeModbusError(e);
        if (written) return `written, read-back failed (${reason})`;
        // Sent but unanswered: the device may hold the new value.
        return e instanceof ModbusError && e.sent
          ? `${reason} (write sent, not confirmed: device state unknown)`
          : reason;
      }
    };
    const result = commandQueue.then(run, run);
    commandQueue = result.catch(() => {});
    return result;
  }

  async function onSetpointCommand(payload: Uint8Array): Promise<void> {
    const v = validateSetpointCommand(payload, now());
    const id = v.ok ? v.cmd.id : v.id;
    if (id !== null && !recentCommands.firstTime(id)) {
      log(`cmd: ${who} setpoint ${id} is a redelivery; answered already`);
      return;
    }
    if (!v.ok) {
      log(`cmd: ${who} setpoint ${id ?? "(no id)"} refused: ${v.error}`);
      answer(topics.cmdSetpointResult, {
        id,
        tsMs: now(),
        ok: false,
        error: v.error,
      });
      return;
    }
    const error = await writeSetpoint(v.cmd.value);
    if (error) {
      log(`cmd: ${who} setpoint ${v.cmd.value} W (${id}) failed: ${error}`);
      answer(topics.cmdSetpointResult, { id, tsMs: now(), ok: false, error });
    } else {
      log(
        `cmd: ${who} setpoint ${v.cmd.value} W (${id}) written and read back`,
      );
      answer(topics.cmdSetpointResult, {
        id,
        tsMs: now(),
        ok: true,
        value: v.cmd.value,
      });
    }
  }

  function onAckCommand(payload: Uint8Array): void {
    const v = validateAckCommand(payload, ALARM_NAMES);
    const id = v.ok ? v.cmd.id : v.id;
    if (id !== null && !recentCommands.firstTime(id)) return;
    const tsMs = now();
    if (!v.ok) {
      log(`cmd: ${who} ack ${id ?? "(no id)"} refused: ${v.error}`);
      answer(topics.cmdAckResult, { id, tsMs, ok: false, error: v.error });
      return;
    }
    const r = onAck(alarmRec, tsMs);
    if (!r.ok) {
      log(`cmd: ${who} ack ${id} refused: ${r.error}`);
      answer(topics.cmdAckResult, { id, tsMs, ok: false, error: r.error });
      return;
    }
    alarmRec = r.record;
    log(
      `cmd: ${who} ${v.cmd.alarm} acknowledged (${id}); now ${alarmRec.state}`,
    );
    publisher.send("alarm", topics.alarms, {
      ...buildAlarmEvent({
        tsMs,
        deviceId,
        alarm: "temp_high",
        state: "acked",
        value: alarmRec.value ?? NaN,
        message: `acknowledged by operator; now ${alarmRec.state}`,
      }),
    });
    publishAlarmState(tsMs);
    answer(topics.cmdAckResult, { id, tsMs, ok: true });
  }

  publisher.subscribe(topics.cmdSetpoint, (_t, p) => {
    onSetpointCommand(p).catch((e) =>
      log(`cmd: ${who} setpoint handler: ${e}`)
    );
  });
  publisher.subscribe(topics.cmdAck, (_t, p) => onAckCommand(p));
  publishAlarmState(now());

  /** One poll: up to 1 + retries tries. Returns the words or the last error. */
  async function readWithRetries(): Promise<
    { words: number[]; tries: number } | { error: string }
  > {
    let error = "unknown error";
    for (
      let attempt = 1;
      attempt <= 1 + policy.retries && !stopped;
      attempt++
    ) {
      try {
        const words = await readPlan();
        if (!everConnected) {
          log(
            `modbus: connected to ${target.name ? `${who} (${where})` : where}`,
          );
        }
        everConnected = true;
        return { words, tries: attempt };
      } catch (e) {
        error = describeModbusError(e);
        // A timed-out or garbled exchange may leave a stale reply in the
        // socket; a fresh connection keeps transaction ids in step.
        if (error !== "timeout" || !link.isOpen) link.destroy();
      }
    }
    return { error };
  }

  /**
   * Read every block of the device's read plan; the words land at their
   * addresses (a sparse array when the plan has gaps).
   */
  async function readPlan(): Promise<number[]> {
    const words: number[] = [];
    for (const b of plan) {
      const got = await limit(() => link.readHolding(b.start, b.count));
      for (let i = 0; i < got.length; i++) words[b.start + i] = got[i];
    }
    return words;
  }

  /** One poll; null when the poller was stopped meanwhile (nothing published). */
  async function pollOnce(): Promise<PollOutcome | null> {
    const r = await readWithRetries();
    // A stop destroys the link under a request in flight: that failure is
    // ours, not the device's, and must not be published as bad quality.
    if (stopped) return null;
    const tsMs = now();
    if (!("words" in r)) return failed(tsMs, r.error);
    let scaled;
    try {
      scaled = scaleRegisters(r.words, 0, registerMap);
    } catch (e) {
      return failed(tsMs, `bad response (${(e as Error).message})`);
    }
    deviceId = scaled.deviceId;
    publisher.send("telemetry", topics.telemetry, {
      ...buildTelemetry({ tsMs, deviceId, seq: ++seq, values: scaled.values }),
    });
    runAlarm(tsMs, scaled.values.temp_c);
    return { ok: true, tsMs, tries: r.tries };
  }

  function failed(tsMs: number, error: string): PollOutcome {
    link.destroy();
    failures++;
    // Backing off must never poll faster than the normal schedule would.
    const nextDelayMs = Math.max(
      target.intervalMs,
      backoffDelayMs(failures, backoff, random()),
    );
    publisher.send("telemetry", topics.telemetry, {
      ...buildBadTelemetry({ tsMs, deviceId, seq: ++seq, error }),
    });
    runAlarm(tsMs, null);
    // Log changes only: a new reason, or a new backoff step (so the step
    // that reaches the cap is logged once, and nothing after it).
    const stepMs = backoffDelayMs(failures, backoff);
    if (error !== lastError || stepMs !== loggedStepMs) {
      log(
        `modbus: poll of ${who} failed (${error}); backing off ${nextDelayMs} ms` +
          (stepMs >= backoff.maxMs ? " (at the cap)" : ""),
      );
      loggedStepMs = stepMs;
    }
    lastError = error;
    return { ok: false, tsMs, error, nextDelayMs };
  }

  const loop = (async () => {
    let anchor = now();
    let next = anchor;
    while (!stopped) {
      await sleeper.sleep(next - now());
      if (stopped) break;
      const outcome = await pollOnce();
      if (stopped || outcome === null) break;
      if (outcome.ok) {
        if (failures > 0) {
          log(
            `modbus: ${who} recovered after ${failures} failed polls (${lastError})`,
          );
          // Back to the normal schedule, anchored at this good read.
          anchor = outcome.tsMs;
          failures = 0;
          lastError = "";
          loggedStepMs = 0;
        }
        next = nextTickMs(anchor, target.intervalMs, now());
      } else {
        next = now() + outcome.nextDelayMs;
      }
      record(outcome);
    }
  })();

  return {
    target,
    outcomes,
    get alarmRecord() {
      return alarmRec;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      sleeper.wake();
      link.destroy();
      await loop;
    },
  };
}

export function policyOf(cfg: PollConfig): PollPolicy {
  return {
    timeoutMs: cfg.timeoutMs,
    retries: cfg.retries,
    backoffBaseMs: cfg.backoffBaseMs,
    backoffMaxMs: cfg.backoffMaxMs,
    alarm: alarmParamsOf(cfg),
  };
}

/** The MQTT side for a poller process (one connection for all devices). */
export function makePublisher(
  cfg: PollConfig,
  statusTopic: string,
  deps: PollerDeps = {},
): Publisher {
  let secrets;
  try {
    secrets = loadMqttSecrets({
      password: cfg.mqttPassword,
      passwordFile: cfg.mqttPasswordFile,
      caFile: cfg.mqttCaFile,
    });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  return new Publisher({
    url: cfg.mqttUrl,
    username: cfg.mqttUsername,
    password: secrets.password,
    ca: secrets.ca,
    clientId: `poller-${cfg.topicPrefix.replaceAll("/", "_")}-${
      crypto.randomUUID().slice(0, 8)
    }`,
    statusTopic,
    ...Publisher.bufferOptions(cfg),
    reconnect: { baseMs: 1000, maxMs: cfg.backoffMaxMs, jitter: 0.1 },
    log: deps.log ?? ((l: string) => console.error(l)),
    now: deps.now,
    random: deps.random,
  });
}
