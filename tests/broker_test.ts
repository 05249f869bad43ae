import assert from "node:assert/strict";
import mqtt from "mqtt";
import { startBroker } from "../broker.ts";
import { assertPortFree, freePort } from "./_support.ts";

/** Connect, subscribe, publish `payload` to ourselves; resolve with what came back. */
async function roundTrip(
  url: string,
  payload: Uint8Array,
  timeoutMs: number,
): Promise<Uint8Array> {
  const client = mqtt.connect(url, {
    connectTimeout: timeoutMs,
    reconnectPeriod: 0,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no CONNACK")), timeoutMs);
      client.once("connect", () => {
        clearTimeout(t);
        resolve();
      });
      client.once("error", reject);
    });
    await client.subscribeAsync("t/echo", { qos: 1 });
    const got = new Promise<Uint8Array>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error("publish stalled")),
        timeoutMs,
      );
      client.once("message", (_topic, msg) => {
        clearTimeout(t);
        resolve(msg);
      });
    });
    const [msg] = await Promise.all([
      got,
      client.publishAsync("t/echo", payload as Buffer, { qos: 1 }),
    ]);
    return new Uint8Array(msg);
  } finally {
    await client.endAsync(true);
  }
}

const big = new Uint8Array(256 * 1024).map((_, i) => i % 251);

Deno.test("embedded broker: WebSocket CONNACK and a 256 KiB TCP publish go through", async () => {
  const [tcpPort, wsPort] = [await freePort(), await freePort()];
  const broker = await startBroker({
    host: "127.0.0.1",
    tcpPort,
    wsPort,
    log: () => {},
  });
  try {
    const small = new TextEncoder().encode("hello");
    assert.deepEqual(
      await roundTrip(`ws://127.0.0.1:${wsPort}`, small, 3000),
      small,
    );
    const back = await roundTrip(`mqtt://127.0.0.1:${tcpPort}`, big, 5000);
    assert.equal(back.length, big.length);
    assert.deepEqual(back, big);
  } finally {
    await broker.close();
  }
  await assertPortFree(tcpPort);
  await assertPortFree(wsPort);
});

Deno.test("without the read fix, aedes under Deno stalls (proves the fix is needed)", async () => {
  const [tcpPort, wsPort] = [await freePort(), await freePort()];
  const broker = await startBroker({
    host: "127.0.0.1",
    tcpPort,
    wsPort,
    withoutReadFix: true,
    log: () => {},
  });
  try {
    const ws = roundTrip(`ws://127.0.0.1:${wsPort}`, new Uint8Array([1]), 1500);
    const tcp = roundTrip(`mqtt://127.0.0.1:${tcpPort}`, big, 1500);
    const results = await Promise.allSettled([ws, tcp]);
    // If Deno fixes its streams, this fails: then delete stream_read_fix.ts.
    assert.ok(
      results.every((r) => r.status === "rejected"),
      "expected both WS CONNACK and the large TCP publish to stall without the fix",
    );
  } finally {
    await broker.close();
  }
});

Deno.test("embedded broker: credentials enforced when configured", async () => {
  const tcpPort = await freePort();
  const broker = await startBroker({
    host: "127.0.0.1",
    tcpPort,
    username: "poller",
    password: "s3cret",
    log: () => {},
  });
  try {
    const bad = mqtt.connect(`mqtt://127.0.0.1:${tcpPort}`, {
      username: "poller",
      password: "wrong",
      reconnectPeriod: 0,
    });
    const err = await new Promise<Error>((r) => bad.once("error", r));
    assert.match(err.message, /Bad username or password|Not authorized/i);
    await bad.endAsync(true);
    const good = await mqtt.connectAsync(`mqtt://127.0.0.1:${tcpPort}`, {
      username: "poller",
      password: "s3cret",
      reconnectPeriod: 0,
    });
    assert.ok(good.connected);
    await good.endAsync(true);
  } finally {
    await broker.close();
  }
});
