/**
 * The temperature alarm rule: setpoint, deadband and on/off delays, as a pure
 * function. No clock and no I/O: every sample carries its own timestamp, so
 * the poller, the HMI and tests run the exact same rule.
 *
 * Raise when every sample has been above `raiseAboveC` for more than
 * `raiseDelayMs` (from the first such sample to the current one); clear when
 * every sample has been below `clearBelowC` for more than `clearDelayMs`.
 * A value inside the deadband resets the pending timer of the transition it
 * interrupts; a bad-quality sample restarts pending timers but never clears
 * an active alarm.
 *
 * @example
 * ```ts
 * let state = INITIAL_ALARM_STATE;
 * const r = evaluateAlarm(state, { tsMs: 12_000, value: 61.2 });
 * state = r.state;
 * if (r.event) publish(r.event);
 * ```
 */

export interface AlarmParams {
  /** Raise threshold (strictly above), C. */
  readonly raiseAboveC: number;
  /** How long the value must stay above, strictly more than this, ms. */
  readonly raiseDelayMs: number;
  /** Clear threshold (strictly below), C. */
  readonly clearBelowC: number;
  /** How long the value must stay below, strictly more than this, ms. */
  readonly clearDelayMs: number;
}

export const DEFAULT_ALARM_PARAMS: AlarmParams = {
  raiseAboveC: 60,
  raiseDelayMs: 5000,
  clearBelowC: 58,
  clearDelayMs: 3000,
};

export interface AlarmState {
  readonly active: boolean;
  /**
   * Timestamp of the first sample of the current uninterrupted run towards
   * the opposite state (above raise threshold while inactive, below clear
   * threshold while active), or null when no transition is pending.
   */
  readonly pendingSinceMs: number | null;
}

export const INITIAL_ALARM_STATE: AlarmState = {
  active: false,
  pendingSinceMs: null,
};

/** One sample: `value` null means bad quality (no reading). */
export interface AlarmSample {
  readonly tsMs: number;
  readonly value: number | null;
}

export interface AlarmTransitionEvent {
  readonly state: "raised" | "cleared";
  readonly tsMs: number;
  readonly value: number;
}

export interface AlarmResult {
  readonly state: AlarmState;
  readonly event: AlarmTransitionEvent | null;
}

/** Check that parameters make sense; returns a one-line reason or null. */
export function alarmParamsError(p: AlarmParams): string | null {
  for (const [k, v] of Object.entries(p)) {
    if (!Number.isFinite(v)) return `${k} must be a finite number`;
  }
  if (p.clearBelowC > p.raiseAboveC) {
    return "clear threshold must not be above the raise threshold";
  }
  if (p.raiseDelayMs < 0 || p.clearDelayMs < 0) {
    return "delays must not be negative";
  }
  return null;
}

/** Advance the rule by one sample. */
export function evaluateAlarm(
  state: AlarmState,
  sample: AlarmSample,
  params: AlarmParams = DEFAULT_ALARM_PARAMS,
): AlarmResult {
  const { tsMs, value } = sample;
  if (value === null || !Number.isFinite(value)) {
    // Bad quality breaks "continuously" but tells us nothing about clearing.
    return {
      state: { active: state.active, pendingSinceMs: null },
      event: null,
    };
  }
  const towards = state.active
    ? value < params.clearBelowC
    : value > params.raiseAboveC;
  if (!towards) {
    return {
      state: { active: state.active, pendingSinceMs: null },
      event: null,
    };
  }
  const since = state.pendingSinceMs ?? tsMs;
  const delay = state.active ? params.clearDelayMs : params.raiseDelayMs;
  if (tsMs - since > delay) {
    return {
      state: { active: !state.active, pendingSinceMs: null },
      event: { state: state.active ? "cleared" : "raised", tsMs, value },
    };
  }
  return {
    state: { active: state.active, pendingSinceMs: since },
    event: null,
  };
}

/** Human message for an alarm transition, shown in the HMI and logs. */
export function alarmMessage(
  ev: AlarmTransitionEvent,
  params: AlarmParams = DEFAULT_ALARM_PARAMS,
): string {
  return ev.state === "raised"
    ? `temperature ${ev.value} C above ${params.raiseAboveC} C for more than ${
      params.raiseDelayMs / 1000
    } s`
    : `temperature ${ev.value} C below ${params.clearBelowC} C for more than ${
      params.clearDelayMs / 1000
    } s`;
}
