/**
 * The fleet overview's pure logic (fleet_model.ts): topic routing, folding
 * validated messages per device, quality and staleness, alarms,
 * online/offline through the poller's will, filter, sort and windowing.
 */
import assert from "node:assert/strict";
import {
  applyFleetMessage,
  compareNames,
  deviceHref,
  deviceOfTopic,
  fleetRows,
  isDeviceName,
  newFleetState,
  onlineOfStatus,
  parseFleetTopic,
  rowOf,
  visibleRange,
} from "../fleet_model.ts";
import { buildBadTelemetry, buildStatus, buildTelemetry } from "../contract.ts";
import { pollerOfTopic } from "../hmi_model.ts";
import { parseDevice } from "../devices.ts";
import { T0, VALUES } from "./_fixtures.ts";

const P = "site";
const tel = (seq: number, tsMs: number, temp = 55.2, power = 3000) =>
  JSON.stringify(
    buildTelemetry({
      tsMs,
      deviceId: 1001,
      seq,
      values: { ...VALUES, temp_c: temp, power_w: power },
    }),
  );
const alarmsState = (state: string) =>
  JSON.stringify({
    ts: new Date(T0).toISOString(),
    device_id: 1001,
    alarms: [{
      alarm: "temp_high",
      state,
      value: 61.3,
      raised_ts: new Date(T0).toISOString(),
      cleared_ts: null,
      acked_ts: null,
    }],
  });

Deno.test("isDeviceName agrees with the devices file validation", () => {
  const names = [
    "inv-1",
    "rack_2.a",
    "A",
    "x".repeat(64),
    "x".repeat(65),
    "",
    "a/b",
    "a+b",
    "#",
    "_pollers",
    "telemetry",
    "alarms",
    "status",
    "inv 1",
    "in%2Fv",
    "..",
  ];
  for (const name of names) {
    let fileOk = true;
    try {
      parseDevice({ name, host: "127.0.0.1", port: 5020 }, 0);
    } catch {
      fileOk = false;
    }
    assert.equal(isDeviceName(name), fileOk, name);
  }
});

Deno.test("parseFleetTopic routes device and poller topics, ignores the rest", () => {
  assert.deepEqual(parseFleetTopic(P, "site/inv-1/telemetry"), {
    kind: "telemetry",
    name: "inv-1",
  });
  assert.deepEqual(parseFleetTopic(P, "site/inv-1/alarms/state"), {
    kind: "alarmsState",
    name: "inv-1",
  });
  assert.deepEqual(parseFleetTopic(P, "site/inv-1/status"), {
    kind: "status",
    name: "inv-1",
  });
  assert.deepEqual(parseFleetTopic(P, "site/_pollers/a/status"), {
    kind: "poller",
    name: "a",
  });
  for (
    const t of [
      "site/telemetry", // the single device
      "site/alarms/state",
      "site/_pollers/status", // `+/status` matches this: not a device
      "site/inv-1/alarms", // events: not the overview's
      "site/inv-1/cmd/ack",
      "other/inv-1/telemetry",
      "site/inv-1/telemetry/x",
      "sitex/inv-1/telemetry",
    ]
  ) assert.equal(parseFleetTopic(P, t), null, t);
  // Prefixes with levels work too.
  assert.equal(parseFleetTopic("a/b", "a/b/d1/status")?.name, "d1");
});

Deno.test("deviceOfTopic: the recorder's fleet topic matcher", () => {
  assert.equal(deviceOfTopic(P, "site/inv-1/telemetry", "telemetry"), "inv-1");
  assert.equal(deviceOfTopic(P, "site/inv-1/alarms", "alarms"), "inv-1");
  assert.equal(deviceOfTopic(P, "site/telemetry", "telemetry"), null);
  assert.equal(deviceOfTopic(P, "site/alarms", "alarms"), null);
  assert.equal(deviceOfTopic(P, "site/a/b/telemetry", "telemetry"), null);
  assert.equal(deviceOfTopic(P, "site/_pollers/telemetry", "telemetry"), null);
  assert.equal(deviceOfTopic(P, "site/inv-1/alarms/state", "alarms"), null);
});

Deno.test("telemetry: good, bad with its error, stale after 3 intervals", () => {
  const s = newFleetState();
  assert.ok(applyFleetMessage(s, P, "site/inv-1/telemetry", tel(1, T0), T0));
  let r = rowOf(s.devices.get("inv-1")!, T0 + 100, 1000);
  assert.equal(r.quality, "good");
  assert.equal(r.tempC, 55.2);
  assert.equal(r.powerW, 3000);
  assert.equal(r.severity, 0);
  // Stale after 3 x the default interval without a message.
  assert.equal(rowOf(s.devices.get("inv-1")!, T0 + 3000, 1000).quality, "good");
  r = rowOf(s.devices.get("inv-1")!, T0 + 3001, 1000);
  assert.equal(r.quality, "stale");
  assert.equal(r.tempC, null, "a stale row shows no number");
  assert.equal(r.ageMs, 3001);
  // The device's own interval, observed from consecutive seqs, wins.
  applyFleetMessage(s, P, "site/inv-1/telemetry", tel(2, T0 + 250), T0 + 250);
  assert.equal(s.devices.get("inv-1")!.intervalMs, 250);
  assert.equal(
    rowOf(s.devices.get("inv-1")!, T0 + 1001, 1000).quality,
    "stale",
  );
  // Bad quality: the error, never a number.
  applyFleetMessage(
    s,
    P,
    "site/inv-1/telemetry",
    JSON.stringify(
      buildBadTelemetry({
        tsMs: T0 + 500,
        deviceId: 1001,
        seq: 3,
        error: "timeout",
      }),
    ),
    T0 + 500,
  );
  r = rowOf(s.devices.get("inv-1")!, T0 + 600, 1000);
  assert.equal(r.quality, "bad");
  assert.equal(r.error, "timeout");
  assert.equal(r.tempC, null);
  assert.equal(r.severity, 4);
});

Deno.test("invalid payloads are counted and change nothing", () => {
  const s = newFleetState();
  assert.equal(
    applyFleetMessage(s, P, "site/inv-1/telemetry", "{not json", T0),
    false,
  );
  assert.equal(
    applyFleetMessage(s, P, "site/inv-1/alarms/state", '{"ts":"x"}', T0),
    false,
  );
  assert.equal(
    applyFleetMessage(s, P, "site/inv-1/status", '{"state":"up"}', T0),
    false,
  );
  assert.equal(s.rejected, 3);
  // The latest rejection, for the island's console log.
  assert.deepEqual(s.lastRejected, {
    topic: "site/inv-1/status",
    error: "status.state not online|offline",
  });
  assert.equal(s.devices.size, 0);
  // Not a fleet topic: ignored, not counted.
  assert.equal(
    applyFleetMessage(s, P, "site/telemetry", tel(1, T0), T0),
    false,
  );
  assert.equal(s.rejected, 3);
});

Deno.test("alarms: active and unacknowledged counts from the retained state", () => {
  const s = newFleetState();
  applyFleetMessage(s, P, "site/a/telemetry", tel(1, T0), T0);
  applyFleetMessage(
    s,
    P,
    "site/a/alarms/state",
    alarmsState("active-unacknowledged"),
    T0,
  );
  let r = rowOf(s.devices.get("a")!, T0, 1000);
  assert.deepEqual([r.active, r.unacked, r.activeNames], [1, 1, ["temp_high"]]);
  assert.equal(r.severity, 6);
  applyFleetMessage(
    s,
    P,
    "site/a/alarms/state",
    alarmsState("active-acknowledged"),
    T0,
  );
  r = rowOf(s.devices.get("a")!, T0, 1000);
  assert.deepEqual([r.active, r.unacked, r.severity], [1, 0, 5]);
  applyFleetMessage(
    s,
    P,
    "site/a/alarms/state",
    alarmsState("cleared-unacknowledged"),
    T0,
  );
  r = rowOf(s.devices.get("a")!, T0, 1000);
  assert.deepEqual([r.active, r.unacked, r.severity], [0, 1, 0]);
});

Deno.test("online/offline: the device status, overridden by its dead poller's will", () => {
  const s = newFleetState();
  const status = (state: "online" | "offline", session: number) =>
    JSON.stringify({ ...buildStatus(state, T0, session), poller: "p1" });
  applyFleetMessage(s, P, "site/a/status", status("online", 5), T0);
  assert.equal(
    rowOf(s.devices.get("a")!, T0, 1000, s.pollers).online,
    "online",
  );
  // The poller's will (same session): the device is offline too.
  applyFleetMessage(
    s,
    P,
    "site/_pollers/p1/status",
    JSON.stringify(buildStatus("offline", T0, 5)),
    T0,
  );
  assert.equal(
    rowOf(s.devices.get("a")!, T0, 1000, s.pollers).online,
    "offline",
  );
  // A newer device birth (poller restarted, session 6) wins over the old will.
  applyFleetMessage(s, P, "site/a/status", status("online", 6), T0);
  assert.equal(
    rowOf(s.devices.get("a")!, T0, 1000, s.pollers).online,
    "online",
  );
  applyFleetMessage(s, P, "site/a/status", status("offline", 6), T0);
  assert.equal(
    rowOf(s.devices.get("a")!, T0, 1000, s.pollers).online,
    "offline",
  );
  assert.equal(
    rowOf({ ...s.devices.get("a")!, status: null }, T0, 1000).online,
    "unknown",
  );
});

Deno.test("onlineOfStatus: a fleet device page's poller badge, from a parsed status", () => {
  // As LiveHmi gets them: parseStatus output (the poller field passes through).
  const dev = (state: "online" | "offline", session: number) => ({
    ...buildStatus(state, T0, session),
    poller: "p1",
  });
  const pollers = new Map([["p1", buildStatus("online", T0, 5)]]);
  assert.equal(onlineOfStatus(dev("online", 5), pollers), "online");
  // The poller process crashed: only its will (_pollers/p1/status) says so.
  pollers.set("p1", buildStatus("offline", T0 + 1, 5));
  assert.equal(onlineOfStatus(dev("online", 5), pollers), "offline");
  assert.equal(onlineOfStatus(dev("online", 6), pollers), "online");
  assert.equal(onlineOfStatus(null, pollers), "unknown");
  // A single-device poller's status names no poller: its own state.
  assert.equal(onlineOfStatus(buildStatus("online", T0, 5), pollers), "online");
  // A hostile poller field (not a string) is no poller.
  const odd = { ...buildStatus("online", T0, 5), poller: 7 } as never;
  assert.equal(onlineOfStatus(odd, pollers), "online");
  // The page's _pollers/+/status subscription: the poller of each topic.
  assert.equal(pollerOfTopic("site", "site/_pollers/p1/status"), "p1");
  for (
    const t of [
      "site/_pollers/status",
      "site/_pollers//status",
      "site/_pollers/a/b/status",
      "site/inv-1/status",
      "other/_pollers/p1/status",
    ]
  ) assert.equal(pollerOfTopic("site", t), null, t);
});

Deno.test("without a broker connection every row is stale and its poller unknown", () => {
  const s = newFleetState();
  applyFleetMessage(s, P, "site/a/telemetry", tel(1, T0), T0);
  applyFleetMessage(
    s,
    P,
    "site/a/status",
    JSON.stringify(buildStatus("online", T0, 1)),
    T0,
  );
  const live = fleetRows(s, T0 + 10, 1000, { filter: "", sort: "name" });
  assert.deepEqual(
    [live.rows[0].quality, live.rows[0].online, live.rows[0].tempC],
    ["good", "online", 55.2],
  );
  const lost = fleetRows(s, T0 + 10, 1000, {
    filter: "",
    sort: "name",
    connected: false,
  });
  assert.deepEqual(
    [lost.rows[0].quality, lost.rows[0].online, lost.rows[0].tempC],
    ["stale", "unknown", null],
  );
  assert.equal(lost.summary.stale, 1);
  assert.equal(lost.summary.good, 0);
});

Deno.test("fleetRows: problems first, natural names, filter words, summary", () => {
  const s = newFleetState();
  for (const n of ["inv-10", "inv-2", "inv-1", "bms-1"]) {
    applyFleetMessage(s, P, `site/${n}/telemetry`, tel(1, T0), T0);
  }
  applyFleetMessage(
    s,
    P,
    "site/inv-10/alarms/state",
    alarmsState("active-unacknowledged"),
    T0,
  );
  applyFleetMessage(
    s,
    P,
    "site/inv-2/telemetry",
    JSON.stringify(
      buildBadTelemetry({ tsMs: T0, deviceId: 1, seq: 2, error: "timeout" }),
    ),
    T0,
  );
  const v = (filter: string, sort = "severity" as const) =>
    fleetRows(s, T0 + 10, 1000, { filter, sort });
  assert.deepEqual(v("").rows.map((r) => r.name), [
    "inv-10",
    "inv-2",
    "bms-1",
    "inv-1",
  ]);
  assert.deepEqual(
    fleetRows(s, T0, 1000, { filter: "", sort: "name" }).rows.map((r) =>
      r.name
    ),
    ["bms-1", "inv-1", "inv-2", "inv-10"],
  );
  assert.deepEqual(v("INV-1").rows.map((r) => r.name), ["inv-10", "inv-1"]);
  assert.deepEqual(v("alarm").rows.map((r) => r.name), ["inv-10"]);
  assert.deepEqual(v("bad").rows.map((r) => r.name), ["inv-2"]);
  assert.deepEqual(v("problems").rows.map((r) => r.name), ["inv-10", "inv-2"]);
  assert.deepEqual(v("nothing").rows, []);
  assert.deepEqual(v("nothing").summary, {
    total: 4,
    good: 3,
    bad: 1,
    stale: 0,
    offline: 0,
    alarms: 1,
  });
  // Sorting by temperature puts missing values (bad) last.
  applyFleetMessage(s, P, "site/bms-1/telemetry", tel(2, T0 + 1, 70), T0);
  assert.deepEqual(
    fleetRows(s, T0, 1000, { filter: "", sort: "temp" }).rows.map((r) =>
      r.name
    ),
    ["bms-1", "inv-1", "inv-10", "inv-2"],
  );
  assert.ok(compareNames("inv-2", "inv-10") < 0);
});

Deno.test("visibleRange: the rows in view plus overscan, clamped", () => {
  assert.deepEqual(visibleRange(0, 0, 600, 30), { start: 0, end: 0 });
  assert.deepEqual(visibleRange(20, 0, 600, 30, 10), { start: 0, end: 20 });
  assert.deepEqual(visibleRange(1000, 0, 600, 30, 10), { start: 0, end: 31 });
  assert.deepEqual(visibleRange(1000, 3000, 600, 30, 10), {
    start: 90,
    end: 131,
  });
  assert.deepEqual(visibleRange(1000, 1e9, 600, 30, 10), {
    start: 969,
    end: 1000,
  });
  assert.deepEqual(visibleRange(1000, -50, 600, 30, 0), { start: 0, end: 21 });
});

Deno.test("fleet of 1000: fold 1000 messages and build sorted rows quickly", () => {
  const s = newFleetState();
  const msgs = Array.from({ length: 1000 }, (_, i) => tel(1, T0, 40 + i % 30));
  const t0 = performance.now();
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 1000; i++) {
      applyFleetMessage(s, P, `site/dev-${i}/telemetry`, msgs[i], T0);
    }
  }
  const foldMs = (performance.now() - t0) / 5;
  const t1 = performance.now();
  let rows = 0;
  for (let i = 0; i < 20; i++) {
    rows = fleetRows(s, T0, 1000, { filter: "", sort: "severity" }).rows.length;
  }
  const rowsMs = (performance.now() - t1) / 20;
  console.log(
    `1000 devices: fold 1000 messages ${foldMs.toFixed(2)} ms, rows+sort ${
      rowsMs.toFixed(2)
    } ms`,
  );
  assert.equal(rows, 1000);
  // Generous bounds (CI machines vary); measured numbers are in the log.
  assert.ok(foldMs < 100, `fold ${foldMs} ms`);
  assert.ok(rowsMs < 50, `rows ${rowsMs} ms`);
});

Deno.test("deviceHref escapes the name", () => {
  assert.equal(deviceHref("inv-1"), "/device/inv-1");
});
