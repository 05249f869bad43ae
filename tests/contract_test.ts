import assert from "node:assert/strict";
import { VALUES as values } from "./_fixtures.ts";
import {
  buildAlarmEvent,
  buildBadTelemetry,
  buildStatus,
  buildTelemetry,
  isTopicSafe,
  MAX_PAYLOAD_BYTES,
  parseAlarmEvent,
  parseStatus,
  parseTelemetry,
  topicsFor,
} from "../contract.ts";

const TS = Date.UTC(2026, 11, 3, 18, 0, 0, 123);

Deno.test("topics follow the prefix, and nest per device for a fleet", () => {
  assert.deepEqual(topicsFor("demo"), {
    telemetry: "demo/telemetry",
    alarms: "demo/alarms",
    alarmsState: "demo/alarms/state",
    status: "demo/status",
    cmdSetpoint: "demo/cmd/setpoint",
    cmdSetpointResult: "demo/cmd/setpoint/result",
    cmdAck: "demo/cmd/ack",
    cmdAckResult: "demo/cmd/ack/result",
  });
  assert.equal(
    topicsFor("site/a", "inv-1").telemetry,
    "site/a/inv-1/telemetry",
  );
});

Deno.test("topic-safe names refuse wildcards and empty levels", () => {
  for (const ok of ["demo", "site/a", "inv-1.b_2"]) {
    assert.ok(isTopicSafe(ok), ok);
  }
  for (
    const bad of ["", "a/#", "a/+/b", "a//b", "/a", "a b", "x".repeat(129)]
  ) {
    assert.ok(!isTopicSafe(bad), bad);
  }
});

Deno.test("good telemetry has the documented shape and parses back", () => {
  const msg = buildTelemetry({ tsMs: TS, deviceId: 1001, seq: 42, values });
  assert.deepEqual(msg, {
    ts: "2026-12-03T18:00:00.123Z",
    device_id: 1001,
    seq: 42,
    quality: "good",
    values,
  });
  const parsed = parseTelemetry(JSON.stringify(msg));
  assert.deepEqual(parsed, { ok: true, value: msg });
});

Deno.test("bad telemetry carries null values and the reason", () => {
  const msg = buildBadTelemetry({
    tsMs: TS,
    deviceId: null,
    seq: 7,
    error: "timeout",
  });
  assert.deepEqual(msg, {
    ts: "2026-12-03T18:00:00.123Z",
    device_id: null,
    seq: 7,
    quality: "bad",
    values: null,
    error: "timeout",
  });
  assert.equal(
    parseTelemetry(new TextEncoder().encode(JSON.stringify(msg))).ok,
    true,
  );
});

Deno.test("alarm and status payloads", () => {
  const ev = buildAlarmEvent({
    tsMs: TS,
    deviceId: 1001,
    alarm: "temp_high",
    state: "raised",
    value: 61.3,
    message: "m",
  });
  assert.deepEqual(ev, {
    ts: "2026-12-03T18:00:00.123Z",
    device_id: 1001,
    alarm: "temp_high",
    state: "raised",
    value: 61.3,
    message: "m",
  });
  assert.equal(parseAlarmEvent(JSON.stringify(ev)).ok, true);
  assert.deepEqual(buildStatus("online", TS, 5), {
    state: "online",
    ts: "2026-12-03T18:00:00.123Z",
    session: 5,
  });
  assert.equal(
    parseStatus(JSON.stringify(buildStatus("offline", TS))).ok,
    true,
  );
});

Deno.test("hostile payloads are rejected with a reason, never thrown", () => {
  const good = buildTelemetry({ tsMs: TS, deviceId: 1001, seq: 1, values });
  const cases: [unknown, RegExp][] = [
    ["{not json", /malformed JSON/],
    ["[]", /not an object/],
    ["null", /not an object/],
    [JSON.stringify({ ...good, ts: "yesterday" }), /ts not ISO/],
    [JSON.stringify({ ...good, seq: "1" }), /seq/],
    [JSON.stringify({ ...good, quality: "meh" }), /quality/],
    [
      JSON.stringify({ ...good, values: { ...values, temp_c: "55" } }),
      /temp_c/,
    ],
    [JSON.stringify({ ...good, values: null }), /values not an object/],
    [JSON.stringify({ ...good, quality: "bad" }), /values null/],
    ["x".repeat(MAX_PAYLOAD_BYTES + 1), /too large/],
  ];
  for (const [payload, re] of cases) {
    const r = parseTelemetry(payload as string);
    assert.equal(r.ok, false, String(payload).slice(0, 40));
    if (!r.ok) assert.match(r.error, re);
  }
  assert.equal(parseAlarmEvent('{"ts":"2026-01-01T00:00:00Z"}').ok, false);
  assert.equal(
    parseStatus('{"state":"maybe","ts":"2026-01-01T00:00:00Z"}').ok,
    false,
  );
});
