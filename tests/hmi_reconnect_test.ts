/** The browser's MQTT reconnect backoff (mqtt.js only has a fixed period). */
import assert from "node:assert/strict";
import { backOffReconnects, BROWSER_RECONNECT } from "../hmi_credentials.ts";

/** A stand-in for the mqtt.js client: options plus the two events we use. */
function fakeClient() {
  const handlers = new Map<string, (() => void)[]>();
  return {
    options: { reconnectPeriod: 1000 } as { reconnectPeriod?: number },
    on(ev: "connect" | "reconnect", f: () => void) {
      handlers.set(ev, [...(handlers.get(ev) ?? []), f]);
    },
    emit(ev: "connect" | "reconnect") {
      for (const f of handlers.get(ev) ?? []) f();
    },
  };
}

Deno.test("browser reconnects back off 1, 2, 4, 8, 10 (cap) s and reset on connect", () => {
  const c = fakeClient();
  backOffReconnects(c, () => 0.5);
  const periods: number[] = [c.options.reconnectPeriod!];
  for (let i = 0; i < 5; i++) {
    c.emit("reconnect");
    periods.push(c.options.reconnectPeriod!);
  }
  assert.deepEqual(periods, [1000, 2000, 4000, 8000, 10_000, 10_000]);
  c.emit("connect");
  assert.equal(c.options.reconnectPeriod, BROWSER_RECONNECT.baseMs);
  c.emit("reconnect");
  assert.equal(c.options.reconnectPeriod, 2000, "a new outage starts over");
});

Deno.test("browser reconnect jitter stays within +/-10 % and under the cap", () => {
  for (const r of [0, 0.25, 0.999]) {
    const c = fakeClient();
    backOffReconnects(c, () => r);
    c.emit("reconnect");
    const p = c.options.reconnectPeriod!;
    assert.ok(p >= 1800 && p <= 2200, `${p}`);
    for (let i = 0; i < 6; i++) c.emit("reconnect");
    assert.ok(c.options.reconnectPeriod! <= BROWSER_RECONNECT.maxMs);
  }
});
