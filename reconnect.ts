/**
 * Reconnect pacing for the mqtt.js clients we drive ourselves (the poller's
 * publisher and the HMI's history recorder: `reconnectPeriod: 0`, then
 * `reconnect()` when the timer fires). mqtt.js only knows a fixed period;
 * this counts consecutive failed connections and waits the backoff schedule
 * (schedule.ts) before each retry, with jitter so many clients that lost
 * one broker do not come back in step.
 *
 * @example
 * ```ts
 * const pacer = new ReconnectTimer({ baseMs: 1000, maxMs: 30_000, jitter: 0.1 });
 * client.on("connect", () => pacer.reset());
 * client.on("close", () => pacer.schedule(() => client.reconnect()));
 * ```
 */
import { backoffDelayMs, type BackoffParams } from "./schedule.ts";

export class ReconnectTimer {
  readonly #params: BackoffParams;
  readonly #random: () => number;
  #failures = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(params: BackoffParams, random: () => number = Math.random) {
    this.#params = params;
    this.#random = random;
  }

  /** Consecutive failed connections (0 once connected). */
  get failures(): number {
    return this.#failures;
  }

  /** A retry is waiting. */
  get pending(): boolean {
    return this.#timer !== undefined;
  }

  /**
   * The connection was lost or an attempt failed: run `retry` after the next
   * backoff step. Returns that step, or null when a retry is already waiting
   * (mqtt.js may report one failure twice).
   */
  schedule(retry: () => void): { delayMs: number; failures: number } | null {
    if (this.#timer !== undefined) return null;
    this.#failures++;
    const delayMs = backoffDelayMs(
      this.#failures,
      this.#params,
      this.#random(),
    );
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      retry();
    }, delayMs);
    return { delayMs, failures: this.#failures };
  }

  /** Connected: the next outage starts again at the base delay. */
  reset(): void {
    this.#failures = 0;
  }

  /** Stopping: drop a waiting retry. */
  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
