/** Devices file validation: every kind of bad entry gets a one-line error naming it. */
import assert from "node:assert/strict";
import {
  MAX_DEVICES,
  parseDevicesFile,
  parseDevicesValue,
  pollerNameFromPath,
} from "../devices.ts";
import { ConfigError } from "../cli.ts";

const good = {
  name: "inv-1",
  host: "127.0.0.1",
  port: 5020,
  unit_id: 1,
  interval_ms: 1000,
};

/** The error message for a file whose devices[3] is `bad` (0..2 are fine). */
function errorFor(value: unknown): string {
  try {
    parseDevicesValue(value);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
    assert.ok(!e.message.includes("\n"), "error must be one line");
    return e.message;
  }
  assert.fail("expected an error");
}

function withFourth(bad: unknown): unknown {
  return {
    devices: [
      { ...good, name: "a", port: 5020 },
      { ...good, name: "b", port: 5021 },
      { ...good, name: "c", port: 5022 },
      bad,
    ],
  };
}

Deno.test("devices: a valid file parses with defaults filled in", () => {
  const f = parseDevicesFile(JSON.stringify({
    poller: "site-a",
    devices: [
      good,
      { name: "bms_2.rack", host: "plc.local", port: 502 },
      { ...good, name: "inv-3", unit_id: 7, map: "inverter" },
    ],
  }));
  assert.equal(f.poller, "site-a");
  assert.deepEqual(f.devices[0], {
    name: "inv-1",
    host: "127.0.0.1",
    port: 5020,
    unitId: 1,
    intervalMs: 1000,
    map: "inverter",
  });
  assert.deepEqual(f.devices[1], {
    name: "bms_2.rack",
    host: "plc.local",
    port: 502,
    unitId: 1,
    intervalMs: 1000,
    map: "inverter",
  });
  // Same host and port, other unit id: a gateway, allowed.
  assert.equal(f.devices[2].unitId, 7);
  assert.equal(
    parseDevicesFile(JSON.stringify({ devices: [good] })).poller,
    null,
  );
});

Deno.test("devices: custom defaults for unit id and interval", () => {
  const f = parseDevicesValue(
    { devices: [{ name: "x", host: "h", port: 1 }] },
    {
      unitId: 3,
      intervalMs: 250,
    },
  );
  assert.equal(f.devices[0].unitId, 3);
  assert.equal(f.devices[0].intervalMs, 250);
});

Deno.test("devices: every kind of bad entry names the entry and field", () => {
  const cases: [unknown, string][] = [
    [42, "devices[3]: expected an object, got 42"],
    [null, "devices[3]: expected an object, got null"],
    [[1], "devices[3]: expected an object"],
    [{ ...good, nmae: "x" }, "devices[3].nmae: unknown key"],
    [{ ...good, name: undefined }, "devices[3].name: expected a string"],
    [{ ...good, name: 7 }, "devices[3].name: expected a string, got 7"],
    [{ ...good, name: "" }, "devices[3].name: expected 1..64 letters"],
    [
      { ...good, name: "a/b" },
      'devices[3].name: expected 1..64 letters, digits, _ . - (one topic level), got "a/b"',
    ],
    [{ ...good, name: "inv+1" }, "devices[3].name: expected"],
    [{ ...good, name: "inv#" }, "devices[3].name: expected"],
    [{ ...good, name: "inv 1" }, "devices[3].name: expected"],
    [{ ...good, name: "x".repeat(65) }, "devices[3].name: expected 1..64"],
    [{ ...good, name: "_pollers" }, "devices[3].name: reserved topic level"],
    [{ ...good, name: "status" }, "devices[3].name: reserved topic level"],
    [
      { ...good, name: "a" },
      'devices[3].name: duplicate of devices[0].name, got "a"',
    ],
    [
      { ...good, host: undefined },
      'devices[3] ("inv-1").host: expected a host name or IP address',
    ],
    [
      { ...good, host: "" },
      'devices[3] ("inv-1").host: expected a host name or IP address',
    ],
    [
      { ...good, host: "evil host;rm" },
      'devices[3] ("inv-1").host: expected a host name',
    ],
    [
      { ...good, host: 127001 },
      'devices[3] ("inv-1").host: expected a host name',
    ],
    [
      { ...good, port: undefined },
      'devices[3] ("inv-1").port: expected an integer in 1..65535',
    ],
    [
      { ...good, port: 0 },
      'devices[3] ("inv-1").port: expected an integer in 1..65535, got 0',
    ],
    [
      { ...good, port: 70000 },
      'devices[3] ("inv-1").port: expected an integer in 1..65535, got 70000',
    ],
    [
      { ...good, port: 502.5 },
      'devices[3] ("inv-1").port: expected an integer in 1..65535, got 502.5',
    ],
    [
      { ...good, port: "502" },
      'devices[3] ("inv-1").port: expected an integer in 1..65535, got "502"',
    ],
    [
      { ...good, unit_id: 256 },
      'devices[3] ("inv-1").unit_id: expected an integer in 0..255, got 256',
    ],
    [
      { ...good, unit_id: -1 },
      'devices[3] ("inv-1").unit_id: expected an integer in 0..255',
    ],
    [
      { ...good, unit_id: null },
      'devices[3] ("inv-1").unit_id: expected an integer in 0..255, got null',
    ],
    [
      { ...good, interval_ms: 10 },
      'devices[3] ("inv-1").interval_ms: expected an integer in 50..3600000, got 10',
    ],
    [
      { ...good, interval_ms: "1s" },
      'devices[3] ("inv-1").interval_ms: expected an integer in 50..3600000',
    ],
    [
      { ...good, map: "bms" },
      'devices[3] ("inv-1").map: unknown register map (known: inverter), got "bms"',
    ],
    [{ ...good, map: 1 }, 'devices[3] ("inv-1").map: unknown register map'],
    [
      { ...good, name: "d", port: 5020 },
      "devices[3]: same host, port and unit_id as devices[0] (127.0.0.1:5020#1)",
    ],
    [{ ...good, name: "d", host: "LOCALHOST" }, null as unknown as string],
  ];
  for (const [bad, expected] of cases) {
    if (expected === null) {
      // Not an error (distinct address): proves the duplicate check is exact.
      parseDevicesValue(withFourth(bad));
      continue;
    }
    const msg = errorFor(withFourth(bad));
    assert.ok(
      msg.startsWith(expected),
      `for ${
        JSON.stringify(bad)
      }:\n  got      ${msg}\n  expected ${expected}...`,
    );
  }
});

Deno.test("devices: bad file-level shapes", () => {
  const cases: [unknown, string][] = [
    [[], "devices file: expected a JSON object"],
    ["x", "devices file: expected a JSON object"],
    [{}, "devices: expected an array"],
    [{ devices: {} }, "devices: expected an array"],
    [{ devices: [] }, "devices: expected at least one device"],
    [{ devices: [good], extra: 1 }, "extra: unknown key"],
    [{ devices: [good], poller: "a/b" }, "poller: expected 1..64"],
    [{ devices: [good], poller: 3 }, "poller: expected 1..64"],
    [
      { devices: new Array(MAX_DEVICES + 1).fill(good) },
      `devices: at most ${MAX_DEVICES} devices per poller`,
    ],
  ];
  for (const [bad, expected] of cases) {
    const msg = errorFor(bad);
    assert.ok(msg.startsWith(expected), `got ${msg}, expected ${expected}`);
  }
  assert.throws(
    () => parseDevicesFile("{ devices: "),
    (e: Error) =>
      e instanceof ConfigError &&
      e.message.startsWith("devices file: not valid JSON"),
  );
});

Deno.test("devices: poller name from the file path", () => {
  assert.equal(pollerNameFromPath("/etc/scada/site-a.json"), "site-a");
  assert.equal(pollerNameFromPath("my devices.json"), "my_devices");
  assert.equal(pollerNameFromPath(".json"), "fleet");
});
