/**
 * Timing policy as pure functions: the fixed poll schedule and the
 * exponential backoff with jitter. Time and randomness are passed in.
 *
 * @example
 * ```ts
 * const wait = backoffDelayMs(failures, { baseMs: 1000, maxMs: 30_000, jitter: 0.1 }, Math.random());
 * const next = nextTickMs(startMs, 1000, Date.now());
 * ```
 */

export interface BackoffParams {
  /** Delay after the first failed poll, ms. */
  readonly baseMs: number;
  /** Hard cap: no delay is ever longer, jitter included, ms. */
  readonly maxMs: number;
  /** Relative jitter, 0.1 means +/-10 %. */
  readonly jitter: number;
}

export const DEFAULT_BACKOFF: BackoffParams = {
  baseMs: 1000,
  maxMs: 30_000,
  jitter: 0.1,
};

/**
 * Delay before the next try after `failures` consecutive failed polls
 * (1 -> base, 2 -> 2 x base, ... capped). `random` is in [0, 1).
 * Jitter spreads many pollers apart after a shared outage; the result is
 * clamped to `maxMs` so the cap is a promise.
 */
export function backoffDelayMs(
  failures: number,
  p: BackoffParams = DEFAULT_BACKOFF,
  random = 0.5,
): number {
  if (failures < 1) return 0;
  // 2 ** (failures - 1) overflows to Infinity for huge counts; min() keeps it finite.
  const nominal = Math.min(p.maxMs, p.baseMs * 2 ** Math.min(failures - 1, 52));
  const factor = 1 + p.jitter * (2 * random - 1);
  return Math.max(0, Math.min(p.maxMs, Math.round(nominal * factor)));
}

/**
 * The next tick of a drift-free schedule anchored at `anchorMs`: the first
 * `anchorMs + k * intervalMs` strictly after `nowMs`. A poll that overran
 * one or more periods skips those ticks instead of piling them up.
 */
export function nextTickMs(
  anchorMs: number,
  intervalMs: number,
  nowMs: number,
): number {
  if (nowMs < anchorMs) return anchorMs;
  const k = Math.floor((nowMs - anchorMs) / intervalMs) + 1;
  return anchorMs + k * intervalMs;
}

/** How many ticks were skipped when a poll ending at `nowMs` started at `tickMs`. */
export function skippedTicks(
  tickMs: number,
  intervalMs: number,
  nowMs: number,
): number {
  return Math.max(0, Math.floor((nowMs - tickMs) / intervalMs));
}
