import assert from "node:assert/strict";
import { encodeMessage, Outbox, type OutMessage } from "../outbox.ts";

const t = (n: number, replayed = false): OutMessage => ({
  kind: "telemetry",
  topic: "demo/telemetry",
  body: { seq: n },
  replayed,
});
const a = (n: number): OutMessage => ({
  kind: "alarm",
  topic: "demo/alarms",
  body: { seq: n },
  replayed: true,
});

Deno.test("keeps order and drops the oldest telemetry first when full", () => {
  const box = new Outbox(3);
  box.push(t(1));
  box.push(a(2));
  box.push(t(3));
  box.push(t(4));
  const dropped = box.push(t(5));
  assert.deepEqual(dropped?.body, { seq: 1 });
  assert.deepEqual(box.toArray().map((m) => m.body.seq), [2, 3, 4, 5]);
  assert.equal(box.dropped, 1);
  assert.equal(box.telemetryCount, 3);
});

Deno.test("alarm events are never dropped", () => {
  const box = new Outbox(1);
  for (let i = 0; i < 10; i++) box.push(a(i));
  for (let i = 10; i < 20; i++) box.push(t(i));
  const kinds = box.toArray().map((m) => m.kind);
  assert.equal(kinds.filter((k) => k === "alarm").length, 10);
  assert.equal(kinds.filter((k) => k === "telemetry").length, 1);
  assert.equal(box.dropped, 9);
});

Deno.test("delivery removes from the head or wherever the message is", () => {
  const box = new Outbox(10);
  const [m1, m2, m3] = [t(1), t(2), t(3)];
  box.push(m1);
  box.push(m2);
  box.push(m3);
  assert.equal(box.remove(m2), true);
  assert.equal(box.remove(m2), false);
  assert.equal(box.peek(), m1);
  assert.equal(box.shift(), m1);
  assert.equal(box.length, 1);
  assert.equal(box.telemetryCount, 1);
});

Deno.test("replayed messages are marked on the wire", () => {
  assert.equal(encodeMessage(t(1)), '{"seq":1}');
  assert.equal(encodeMessage(t(1, true)), '{"seq":1,"replayed":true}');
  assert.throws(() => new Outbox(0), RangeError);
});
