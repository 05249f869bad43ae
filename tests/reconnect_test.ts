/** Reconnect pacing shared by the publisher and the HMI recorder. */
import assert from "node:assert/strict";
import { ReconnectTimer } from "../reconnect.ts";

const PARAMS = { baseMs: 4, maxMs: 16, jitter: 0.1 };

/** Resolves when the retry `t` schedules runs; with the step it announced. */
function nextRetry(t: ReconnectTimer) {
  const fired = Promise.withResolvers<void>();
  const step = t.schedule(() => fired.resolve());
  return { step, fired: fired.promise };
}

Deno.test("ReconnectTimer: doubles per failure up to the cap, one retry at a time, reset on connect", async () => {
  const t = new ReconnectTimer(PARAMS, () => 0.5); // 0.5: no jitter
  const delays: number[] = [];
  for (let i = 0; i < 4; i++) {
    const { step, fired } = nextRetry(t);
    assert.ok(step);
    assert.equal(step.failures, i + 1);
    delays.push(step.delayMs);
    // A second report of the same failure while one is waiting: no second timer.
    assert.equal(t.schedule(() => assert.fail("second retry")), null);
    assert.ok(t.pending);
    await fired;
    assert.ok(!t.pending);
  }
  assert.deepEqual(delays, [4, 8, 16, 16]);
  t.reset();
  assert.equal(t.failures, 0);
  const { step, fired } = nextRetry(t);
  assert.equal(step?.delayMs, 4, "the next outage starts at the base");
  await fired;
});

Deno.test("ReconnectTimer: jitter stays within +/-10 % and never passes the cap", () => {
  const slow = { baseMs: 1000, maxMs: 4000, jitter: 0.1 };
  const low = new ReconnectTimer(slow, () => 0);
  const high = new ReconnectTimer(slow, () => 0.999);
  const a = low.schedule(() => {})!;
  const b = high.schedule(() => {})!;
  low.cancel();
  high.cancel();
  assert.equal(a.delayMs, 900);
  assert.equal(b.delayMs, 1100);
  for (let i = 0; i < 6; i++) {
    assert.ok(high.schedule(() => {})!.delayMs <= slow.maxMs);
    high.cancel();
  }
});

Deno.test("ReconnectTimer: cancel drops the waiting retry", async () => {
  const t = new ReconnectTimer(PARAMS, () => 0.5);
  let ran = false;
  t.schedule(() => ran = true);
  t.cancel();
  assert.ok(!t.pending);
  // A later retry (longer delay) fires; the cancelled one never did.
  const { fired } = nextRetry(t);
  await fired;
  assert.equal(ran, false);
  t.cancel();
});
