/**
 * Interop with pymodbus (Debian's python3-pymodbus), an independent Modbus
 * TCP implementation, in both directions: its client against our simulator,
 * and our poller against its server as the device.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { startSimulator } from "../sim.ts";
import { startBroker } from "../broker.ts";
import { startPoller } from "../poll.ts";
import { parseConfig } from "../cli.ts";
import { POLL_OPTIONS } from "../settings.ts";
import { Recorder } from "./_mqtt.ts";
import { assertPortFree, freePort, needs, waitFor } from "./_support.ts";

/** pymodbus imports only with Debian's own interpreter. */
const PYTHON = "/usr/bin/python3";
const HAS_PYMODBUS = (() => {
  try {
    return new Deno.Command(PYTHON, {
      args: ["-c", "import pymodbus"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
})();
const ignore = needs("pymodbus", HAS_PYMODBUS ? PYTHON : null);
const script = (name: string) =>
  new URL(`./pymodbus/${name}`, import.meta.url).pathname;

Deno.test({
  name:
    "pymodbus client reads FC03/FC04, writes FC06/FC16 and gets the standard exceptions from the simulator",
  ignore,
  fn: async () => {
    const port = await freePort();
    const sim = await startSimulator({
      host: "127.0.0.1",
      port,
      noise: 0,
      log: () => {},
    });
    try {
      const out = await new Deno.Command(PYTHON, {
        args: [script("client.py"), String(port)],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(20_000),
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      const r = JSON.parse(new TextDecoder().decode(out.stdout));
      // Steady state at the default 3000 W setpoint: 55.0 C, 230.0 V.
      assert.deepEqual(r.fc03.slice(0, 8), [
        1001,
        1,
        3000,
        2300,
        1304,
        550,
        720,
        3000,
      ]);
      assert.deepEqual(r.fc03.slice(8), new Array(12).fill(0));
      assert.deepEqual(r.fc04, r.fc03.slice(0, 10), "FC04 mirrors FC03");
      assert.deepEqual(r.fc06_echo, [7, 4000]);
      assert.deepEqual(r.fc16_echo, [7, 1]);
      assert.deepEqual(r.setpoint_after, [3500]);
      assert.deepEqual(r.exceptions, {
        "read past 19": 2,
        "quantity 126": 3,
        "write read-only": 2,
        "setpoint 6000": 3,
        "FC16 across read-only": 2,
        "FC01 read coils": 1,
      });
      assert.deepEqual(
        r.setpoint_unchanged,
        [3500],
        "refused writes change nothing",
      );
    } finally {
      await sim.close();
    }
    await assertPortFree(port);
  },
});

Deno.test({
  name:
    "the poller reads a pymodbus server as its device: good telemetry with its values, and a setpoint written and read back",
  ignore,
  fn: async () => {
    const modbusPort = await freePort();
    const mqttPort = await freePort();
    const device = new Deno.Command(PYTHON, {
      args: [script("server.py"), String(modbusPort), "612"],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const broker = await startBroker({
      host: "127.0.0.1",
      tcpPort: mqttPort,
      log: () => {},
    });
    const url = `mqtt://127.0.0.1:${mqttPort}`;
    let sub: Recorder | null = null;
    let poller: Awaited<ReturnType<typeof startPoller>> | null = null;
    try {
      // pymodbus says nothing when it listens: wait until it accepts.
      await waitFor(
        "pymodbus server listening",
        () =>
          new Promise<boolean>((resolve) => {
            const s = net.connect(modbusPort, "127.0.0.1");
            s.once("connect", () => {
              s.destroy();
              resolve(true);
            });
            s.once("error", () => resolve(false));
          }),
      );
      sub = await Recorder.connect(url, "demo/#");
      poller = await startPoller(
        parseConfig(POLL_OPTIONS, [], {
          MODBUS_PORT: String(modbusPort),
          MQTT_URL: url,
          POLL_INTERVAL_MS: "200",
        }),
        { log: () => {} },
      );
      const good = await sub.waitFor(
        "good telemetry",
        (m) => m.topic === "demo/telemetry" && m.json.quality === "good",
      );
      assert.equal(good.json.device_id, 1001);
      assert.deepEqual(good.json.values, {
        status_bits: 1,
        power_w: 3000,
        voltage_v: 230,
        current_a: 13.04,
        temp_c: 61.2,
        soc_pct: 72,
        setpoint_w: 3000,
      });
      await sub.client.publishAsync(
        "demo/cmd/setpoint",
        JSON.stringify({
          id: "py-1",
          value: 4200,
          ts: new Date().toISOString(),
        }),
        { qos: 1 },
      );
      const res = await sub.waitFor(
        "setpoint result",
        (m) => m.topic === "demo/cmd/setpoint/result" && m.json.id === "py-1",
      );
      assert.equal(res.json.ok, true, JSON.stringify(res.json));
      assert.equal(res.json.value, 4200);
      await sub.waitFor(
        "setpoint 4200 in telemetry",
        (m) =>
          m.topic === "demo/telemetry" &&
          (m.json.values as { setpoint_w?: number } | null)?.setpoint_w ===
            4200,
      );
    } finally {
      await poller?.stop();
      await sub?.close();
      await broker.close();
      device.kill("SIGTERM");
      await device.stderr.cancel();
      await device.status;
    }
    await assertPortFree(modbusPort);
  },
});
