import assert from "node:assert/strict";
import {
  ConfigError,
  flagName,
  helpText,
  intOption,
  parseConfig,
  urlOption,
  urlPort,
} from "../cli.ts";
import { POLL_OPTIONS, SIM_OPTIONS } from "../settings.ts";

Deno.test("defaults apply with no environment and no flags", () => {
  const cfg = parseConfig(POLL_OPTIONS, [], {});
  assert.equal(cfg.modbusHost, "127.0.0.1");
  assert.equal(cfg.modbusPort, 5020);
  assert.equal(cfg.intervalMs, 1000);
  assert.equal(cfg.retries, 2);
  assert.equal(cfg.backoffMaxMs, 30_000);
  assert.equal(cfg.mqttUrl, "mqtt://localhost:1883");
  assert.equal(cfg.topicPrefix, "demo");
});

Deno.test("a flag wins over the environment variable of the same meaning", () => {
  const env = { MODBUS_PORT: "1502", TOPIC_PREFIX: "site" };
  const cfg = parseConfig(POLL_OPTIONS, ["--modbus-port", "1600"], env);
  assert.equal(cfg.modbusPort, 1600);
  assert.equal(cfg.topicPrefix, "site");
  assert.equal(flagName("POLL_INTERVAL_MS"), "poll-interval-ms");
});

Deno.test("invalid values are one-line ConfigErrors naming setting and value", () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [
      [],
      { MODBUS_PORT: "abc" },
      /^MODBUS_PORT: expected an integer in 1\.\.65535, got "abc"$/,
    ],
    [["--modbus-port", "70000"], {}, /^--modbus-port: expected an integer/],
    [[], { POLL_INTERVAL_MS: "1.5" }, /POLL_INTERVAL_MS/],
    [[], { MQTT_URL: "http://x" }, /MQTT_URL: expected a mqtt\|mqtts URL/],
    [[], { MQTT_URL: "nonsense" }, /MQTT_URL: expected a URL/],
    [[], { TOPIC_PREFIX: "a/#" }, /TOPIC_PREFIX/],
    [["--bogus"], {}, /Unknown option '--bogus'.*--help/],
    [["--modbus-port"], {}, /argument missing|--modbus-port/],
  ];
  for (const [argv, env, re] of cases) {
    assert.throws(() => parseConfig(POLL_OPTIONS, argv, env), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    });
  }
});

Deno.test("secrets are never echoed in errors", () => {
  const spec = {
    pw: { ...intOption("PW", "pin", 1, 0, 9), secret: true },
  };
  assert.throws(() => parseConfig(spec, [], { PW: "hunter2" }), (e: Error) => {
    assert.ok(!e.message.includes("hunter2"));
    return true;
  });
});

Deno.test("help lists every setting with env name, flag and default", () => {
  const text = helpText("sim", "simulator", SIM_OPTIONS);
  for (const o of Object.values(SIM_OPTIONS)) {
    assert.ok(text.includes(o.env), o.env);
    assert.ok(text.includes(`--${flagName(o.env)}`), o.env);
  }
  assert.match(text, /\[default: 5020\]/);
});

Deno.test("url ports fall back to the scheme default", () => {
  assert.equal(urlPort("mqtt://h:1999"), 1999);
  assert.equal(urlPort("mqtt://h"), 1883);
  assert.equal(urlPort("mqtts://h"), 8883);
  assert.equal(urlPort("ws://h:9001"), 9001);
  const o = urlOption("U", "u", "ws://h:1", ["ws:"]);
  assert.equal(o.parse("ws://x:2"), "ws://x:2");
});

Deno.test("SIM_DEVICES: --sim-devices and its short alias --devices mean the same", () => {
  assert.equal(parseConfig(SIM_OPTIONS, ["--devices", "4"], {}).devices, 4);
  assert.equal(parseConfig(SIM_OPTIONS, ["--sim-devices", "5"], {}).devices, 5);
  assert.equal(
    parseConfig(SIM_OPTIONS, ["--devices", "6"], { SIM_DEVICES: "2" }).devices,
    6,
  );
  assert.throws(
    () => parseConfig(SIM_OPTIONS, ["--devices", "0"], {}),
    /^ConfigError: --devices: expected an integer in 1\.\.10000, got "0"$/,
  );
  assert.match(
    helpText("sim", "x", SIM_OPTIONS),
    /--sim-devices VALUE \(or --devices\)/,
  );
});
