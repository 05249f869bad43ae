/**
 * `deno task start` takes the union of the components' settings: a fleet of
 * simulated devices with SIM_DEVICES, a devices file with DEVICES_FILE, and
 * configuration errors found before anything listens (exit code 2).
 */
import assert from "node:assert/strict";
import { parseConfig } from "../cli.ts";
import { START_SPEC, startStack } from "../start.ts";
import { Recorder } from "./_mqtt.ts";
import { assertPortFree, freePort, freePortRun } from "./_support.ts";

async function ports(devices = 1) {
  const modbus = await freePortRun(devices);
  return {
    modbus,
    mqtt: await freePort(),
    ws: await freePort(),
    hmi: await freePort(),
  };
}

function envFor(p: Awaited<ReturnType<typeof ports>>, dataDir: string) {
  return {
    MODBUS_HOST: "127.0.0.1",
    MODBUS_PORT: String(p.modbus),
    MQTT_URL: `mqtt://127.0.0.1:${p.mqtt}`,
    MQTT_WS_URL: `ws://127.0.0.1:${p.ws}`,
    BROKER_HOST: "127.0.0.1",
    HMI_HOST: "127.0.0.1",
    HMI_PORT: String(p.hmi),
    DATA_DIR: dataDir,
    POLL_INTERVAL_MS: "200",
    SIM_NOISE: "0",
  };
}

Deno.test("start --sim-devices 3: three simulated devices polled as the fleet inv-1..inv-3, fleet overview served", async () => {
  const p = await ports(3);
  const dataDir = await Deno.makeTempDir();
  const stack = await startStack(
    parseConfig(START_SPEC, ["--sim-devices", "3"], envFor(p, dataDir)),
    () => {},
  );
  let sub: Recorder | null = null;
  try {
    assert.equal(stack.hmiPath, "/fleet");
    const rec = await Recorder.connect(
      `mqtt://127.0.0.1:${p.mqtt}`,
      "demo/+/telemetry",
    );
    sub = rec;
    for (let i = 1; i <= 3; i++) {
      const got = await rec.waitFor(
        `inv-${i} telemetry`,
        (m) =>
          m.topic === `demo/inv-${i}/telemetry` && m.json.quality === "good",
      );
      // Device i is on MODBUS_PORT + i - 1 with id 1001 + i - 1.
      assert.equal(got.json.device_id, 1000 + i);
    }
    const res = await fetch(`http://127.0.0.1:${stack.hmiPort}/fleet`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /Fleet overview/);
  } finally {
    await sub?.close();
    await stack.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
  for (
    const port of [p.modbus, p.modbus + 1, p.modbus + 2, p.mqtt, p.ws, p.hmi]
  ) {
    await assertPortFree(port);
  }
});

Deno.test("start --devices-file: polls the devices the file names", async () => {
  const p = await ports();
  const dataDir = await Deno.makeTempDir();
  const file = `${dataDir}/devices.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify({
      poller: "site",
      devices: [{ name: "bms-7", host: "127.0.0.1", port: p.modbus }],
    }),
  );
  const stack = await startStack(
    parseConfig(START_SPEC, ["--devices-file", file], envFor(p, dataDir)),
    () => {},
  );
  let sub: Recorder | null = null;
  try {
    sub = await Recorder.connect(`mqtt://127.0.0.1:${p.mqtt}`, "demo/#");
    const m = await sub.waitFor(
      "bms-7 telemetry",
      (m) => m.topic === "demo/bms-7/telemetry" && m.json.quality === "good",
    );
    assert.equal(m.json.device_id, 1001);
    await sub.waitFor(
      "poller status",
      (m) =>
        m.topic === "demo/_pollers/site/status" && m.json.state === "online",
    );
    assert.ok(!sub.messages.some((m) => m.topic === "demo/telemetry"));
  } finally {
    await sub?.close();
    await stack.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
  for (const port of [p.modbus, p.mqtt, p.ws, p.hmi]) {
    await assertPortFree(port);
  }
});

Deno.test("start.ts: an unreadable MQTT_CA_FILE is one line, exit code 2, before anything listens", async () => {
  const p = await ports();
  const dataDir = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-P", new URL("../start.ts", import.meta.url).pathname],
      env: {
        ...envFor(p, dataDir),
        MQTT_CA_FILE: "/nonexistent/ca.pem",
        NO_COLOR: "1",
      },
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    const lines = new TextDecoder().decode(out.stderr).split("\n")
      .filter((l) => l && !/^Warning Permissions in the config file/.test(l));
    assert.equal(out.code, 2, lines.join("\n"));
    assert.deepEqual(lines, [
      "start: cannot read MQTT CA file /nonexistent/ca.pem: NotFound",
    ]);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("start's settings are the union: every component's variable is accepted under its own name", () => {
  const env = {
    SIM_DEVICES: "2",
    DEVICES_FILE: "x.json",
    SIM_TAU_S: "3",
    BACKOFF_BASE_MS: "500",
    BROKER_HOST: "127.0.0.1",
    DATA_DIR: "/tmp/x",
  };
  const cfg = parseConfig(START_SPEC, [], env);
  assert.equal(cfg.simDevices, 2);
  assert.equal(cfg.devicesFile, "x.json");
  assert.equal(cfg.tauS, 3);
  assert.equal(cfg.backoffBaseMs, 500);
  assert.equal(cfg.brokerHost, "127.0.0.1");
  assert.equal(cfg.dataDir, "/tmp/x");
});
