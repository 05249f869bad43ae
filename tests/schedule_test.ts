import assert from "node:assert/strict";
import {
  backoffDelayMs,
  DEFAULT_BACKOFF,
  nextTickMs,
  skippedTicks,
} from "../schedule.ts";

const noJitter = { ...DEFAULT_BACKOFF, jitter: 0 };

Deno.test("backoff doubles from 1 s and caps at 30 s", () => {
  const seq = [1, 2, 3, 4, 5, 6, 7, 8, 100].map((n) =>
    backoffDelayMs(n, noJitter)
  );
  assert.deepEqual(seq, [
    1000,
    2000,
    4000,
    8000,
    16_000,
    30_000,
    30_000,
    30_000,
    30_000,
  ]);
});

Deno.test("backoff of 0 failures is no delay (reset on success)", () => {
  assert.equal(backoffDelayMs(0), 0);
});

Deno.test("jitter stays within +/-10 % and never exceeds the cap", () => {
  for (const n of [1, 2, 3, 4, 5]) {
    const nominal = backoffDelayMs(n, noJitter);
    const lo = backoffDelayMs(n, DEFAULT_BACKOFF, 0);
    const hi = backoffDelayMs(n, DEFAULT_BACKOFF, 0.999999);
    assert.equal(lo, Math.round(nominal * 0.9));
    assert.ok(
      hi <= Math.round(nominal * 1.1) && hi > nominal * 1.09,
      `n=${n} hi=${hi}`,
    );
  }
  for (let r = 0; r < 1; r += 0.05) {
    const d = backoffDelayMs(50, DEFAULT_BACKOFF, r);
    assert.ok(d <= 30_000 && d >= 27_000, `r=${r} d=${d}`);
  }
});

Deno.test("jitter spreads pollers apart", () => {
  const delays = new Set(
    [0, 0.25, 0.5, 0.75].map((r) => backoffDelayMs(3, DEFAULT_BACKOFF, r)),
  );
  assert.equal(delays.size, 4);
});

Deno.test("huge failure counts stay finite", () => {
  assert.equal(backoffDelayMs(1e9, noJitter), 30_000);
});

Deno.test("fixed schedule does not drift", () => {
  // A poll that took 130 ms still aims at the next whole period.
  assert.equal(nextTickMs(10_000, 1000, 10_130), 11_000);
  assert.equal(nextTickMs(10_000, 1000, 57_999), 58_000);
});

Deno.test("an overrun skips ticks instead of piling them up", () => {
  assert.equal(nextTickMs(0, 1000, 3500), 4000);
  assert.equal(skippedTicks(1000, 1000, 3500), 2);
  assert.equal(skippedTicks(1000, 1000, 1200), 0);
});

Deno.test("a tick exactly now is already due, so the next is one period on", () => {
  assert.equal(nextTickMs(0, 1000, 2000), 3000);
  assert.equal(nextTickMs(5000, 1000, 4000), 5000);
});
