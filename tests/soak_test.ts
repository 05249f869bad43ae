/**
 * The soak test in 15 s: a short fault period, one broker outage, and the
 * same checks as the full run (no seq gaps, every fault injected and
 * recovered from, the poller child exits cleanly with nothing unsent).
 */
import assert from "node:assert/strict";
import type { SoakResult } from "../soak.ts";
import { assertPortFree, freePort } from "./_support.ts";

const SOAK = new URL("../soak.ts", import.meta.url).pathname;

async function soak(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P", SOAK, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("soak: 15 s with faults every 2.5 s and a broker outage, no seq gaps, all recovered, clean exit", async () => {
  const modbusPort = await freePort();
  const mqttPort = await freePort();
  const t0 = Date.now();
  const r = await soak([
    "--soak-seconds",
    "15",
    "--soak-fault-every-s",
    "2.5",
    "--soak-fault-length-s",
    "1",
    "--soak-broker-every-s",
    "6",
    "--soak-sample-s",
    "1",
    "--soak-warmup-s",
    "3",
    "--soak-modbus-port",
    String(modbusPort),
    "--soak-mqtt-port",
    String(mqttPort),
  ]);
  const line = r.stderr.split("\n").find((l) => l.startsWith("soak: result "));
  assert.ok(line, `no result line (exit ${r.code}):\n${r.stderr.slice(-2000)}`);
  const res = JSON.parse(line.slice(13)) as SoakResult;
  console.log(
    `soak 15 s: ${res.faults} faults (${
      JSON.stringify(res.faultsByKind)
    }), ${res.recovered} recovered (max ${res.maxRecoveryMs} ms), ${res.brokerOutages} broker outage(s), polls ${res.pollsGood}/${res.pollsBad}, seq 1..${res.lastSeq} gaps ${res.seqGaps}, ${res.replayed} replayed, RSS ${
      res.rssMb.start.toFixed(1)
    } -> ${
      res.rssMb.end.toFixed(1)
    } MB, fds ${res.fds.start} -> ${res.fds.end}, ${
      ((Date.now() - t0) / 1000).toFixed(1)
    } s`,
  );
  assert.deepEqual(res.failures, [], r.stderr.slice(-3000));
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  assert.equal(res.seqGaps, 0, "no seq gaps");
  assert.equal(res.faults, 5, "one of each fault kind");
  assert.deepEqual(Object.keys(res.faultsByKind).sort(), [
    "exception",
    "garbage",
    "hung",
    "kill",
    "wrong-tid",
  ]);
  assert.equal(res.recovered, res.faults, "recovered after every fault");
  assert.ok(res.pollsBad > 0 && res.pollsGood > res.pollsBad);
  assert.equal(res.brokerOutages, 1);
  assert.ok(res.replayed > 0, "telemetry buffered during the outage replayed");
  // A poll in progress at stop publishes its telemetry but is not counted.
  assert.ok(
    res.lastSeq - (res.pollsGood + res.pollsBad) <= 1,
    `seq 1..${res.lastSeq} for ${res.pollsGood + res.pollsBad} polls`,
  );
  assert.equal(res.childExit, 0, "poller child exited by itself, code 0");
  assert.equal(res.unsentAtStop, 0);
  assert.equal(res.droppedByPoller, 0);
  assert.ok(res.samples >= 12, `${res.samples} samples`);
  assert.match(r.stdout, /^\| t \(s\) \| RSS \(MB\) \|/m);
  assert.match(r.stdout, /verdict: \*\*n\/a \(run too short\)\*\*/);
  await assertPortFree(modbusPort);
  await assertPortFree(mqttPort);
});

Deno.test("soak: --help lists the settings; an invalid value is one line and exit 2", async () => {
  const help = await soak(["--help"]);
  assert.equal(help.code, 0);
  for (const env of ["SOAK_SECONDS", "SOAK_FAULT_EVERY_S"]) {
    assert.match(help.stdout, new RegExp(env));
  }
  for (
    const [args, env] of [
      [["--soak-seconds", "soon"], {}],
      [[], { SOAK_FAULT_EVERY_S: "0" }],
      [["--soak-fault-every-s", "2", "--soak-fault-length-s", "3"], {}],
    ] as const
  ) {
    const r = await soak([...args], env);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.split("\n").filter((l) =>
      l && !/Warning|experimental/.test(l)
    );
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^soak: SOAK_|^soak: --soak-/);
  }
});
