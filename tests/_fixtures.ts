/** Shared test data: one good set of engineering values (the README example), an alarm event. */
import type { TelemetryValues } from "../registers.ts";
import {
  type AlarmEvent,
  type AlarmTransition,
  buildAlarmEvent,
} from "../contract.ts";

export const VALUES: TelemetryValues = {
  status_bits: 1,
  power_w: 3000,
  voltage_v: 230.1,
  current_a: 13.04,
  temp_c: 55.2,
  soc_pct: 72,
  setpoint_w: 3000,
};

/** 2026-12-03T18:00:00.000Z, the README's example day. */
export const T0 = Date.UTC(2026, 11, 3, 18, 0, 0);

/** A temp_high event of device 1001: raised at 61 C unless told otherwise. */
export function alarmEvent(
  tsMs: number,
  o: { state?: AlarmTransition; value?: number } = {},
): AlarmEvent {
  return buildAlarmEvent({
    tsMs,
    deviceId: 1001,
    alarm: "temp_high",
    state: o.state ?? "raised",
    value: o.value ?? 61,
    message: "m",
  });
}
