/**
 * Every entry point: --help works, and invalid configuration is one clear
 * line on stderr with exit code 2 (never a stack trace or a silent default).
 */
import assert from "node:assert/strict";

/** Entry point -> a setting it reads, set to an invalid value. */
const ENTRY_POINTS: Record<string, [string, string]> = {
  "sim.ts": ["MODBUS_PORT", "not-a-port"],
  "poll.ts": ["POLL_INTERVAL_MS", "fast"],
  "broker.ts": ["MQTT_WS_URL", "http://localhost:9001"],
  "hmi.ts": ["HMI_PORT", "99999"],
  "start.ts": ["MQTT_URL", "tcp://localhost"],
};

async function run(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P", ...args],
    env: { ...env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  // Deno's own notice about config-file permissions is not ours.
  const stderr = dec.decode(out.stderr).split("\n")
    .filter((l) => l && !/^Warning Permissions in the config file/.test(l));
  return { code: out.code, stdout: dec.decode(out.stdout), stderr };
}

for (const [file, [envName, bad]] of Object.entries(ENTRY_POINTS)) {
  const name = file.replace(".ts", "");
  Deno.test(`${file} --help lists its settings and exits 0`, async () => {
    const r = await run([file, "--help"]);
    assert.equal(r.code, 0, r.stderr.join("\n"));
    assert.match(r.stdout, /--help/);
    assert.match(r.stdout, /\[default: /);
  });

  Deno.test(`${file}: an invalid value is one line and exit code 2`, async () => {
    const r = await run([file], { [envName]: bad });
    assert.equal(r.code, 2, r.stderr.join("\n"));
    assert.equal(r.stderr.length, 1, r.stderr.join("\n"));
    assert.match(
      r.stderr[0],
      new RegExp(`^${name}: ${envName}: expected .*, got "`),
    );
  });

  Deno.test(`${file}: an unknown flag is one line and exit code 2`, async () => {
    const r = await run([file, "--no-such-flag"]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.length, 1, r.stderr.join("\n"));
    assert.match(r.stderr[0], /Unknown option '--no-such-flag'/);
  });
}
