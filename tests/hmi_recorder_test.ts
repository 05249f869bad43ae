/**
 * The HMI's history recorder against a broker that is not there: it backs
 * off exponentially (with the jitter the poller uses) instead of knocking
 * every second, and logs one line for the outage, not one per attempt.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { History } from "../history.ts";
import { RECORDER_BACKOFF, startRecorder } from "../hmi_recorder.ts";
import { freePort } from "./_support.ts";

/** A TCP server that accepts and at once drops every connection, noting when. */
async function droppingServer(): Promise<
  {
    port: number;
    accepts: number[];
    next(n: number): Promise<void>;
    close(): Promise<void>;
  }
> {
  const port = await freePort();
  const accepts: number[] = [];
  let waiter: { n: number; resolve: () => void } | null = null;
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    accepts.push(performance.now());
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    s.destroy();
    if (waiter && accepts.length >= waiter.n) waiter.resolve();
  });
  await new Promise<void>((r) => srv.listen(port, "127.0.0.1", r));
  return {
    port,
    accepts,
    next(n) {
      if (accepts.length >= n) return Promise.resolve();
      return new Promise((resolve) => waiter = { n, resolve });
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

Deno.test("recorder reconnects with exponential backoff, one log line for the outage", async () => {
  const srv = await droppingServer();
  const history = new History({ path: ":memory:" });
  const logs: string[] = [];
  const rec = startRecorder({
    url: `mqtt://127.0.0.1:${srv.port}`,
    topicPrefix: "rt",
    history,
    log: (l) => logs.push(l),
    reconnect: { baseMs: 100, maxMs: 400, jitter: 0.1 },
    random: () => 0.5, // no jitter: exact delays
  });
  try {
    await srv.next(6);
    const gaps = srv.accepts.slice(1).map((t, i) => t - srv.accepts[i]);
    const expected = [100, 200, 400, 400, 400];
    gaps.slice(0, 5).forEach((g, i) => {
      assert.ok(
        g >= expected[i] - 15 && g < expected[i] + 250,
        `gap ${i + 1}: ${g.toFixed(0)} ms, expected ~${expected[i]} (${
          gaps.map((x) => x.toFixed(0)).join(", ")
        })`,
      );
    });
    assert.ok(rec.failures >= 5);
    assert.equal(rec.recording, false);
    const outage = logs.filter((l) => /retrying with backoff/.test(l));
    assert.equal(outage.length, 1, logs.join("\n"));
    assert.match(
      outage[0],
      /^hmi: history recorder cannot reach mqtt:\/\/127\.0\.0\.1:\d+; retrying with backoff \(100 ms \.\. 400 ms, next in 100 ms\)$/,
    );
    // Repeated identical reasons are not logged again.
    assert.ok(logs.length <= 3, logs.join("\n"));
  } finally {
    await rec.close();
    history.close();
    await srv.close();
  }
});

Deno.test("recorder's default backoff is 1 s doubling to 30 s with jitter", () => {
  assert.deepEqual(RECORDER_BACKOFF, {
    baseMs: 1000,
    maxMs: 30_000,
    jitter: 0.1,
  });
});
