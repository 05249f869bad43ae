/**
 * Every entry point: --help works, and invalid configuration is one clear
 * line on stderr with exit code 2 (never a stack trace or a silent default),
 * never echoing a secret; a running HMI keeps secrets out of its logs and
 * pages.
 */
import assert from "node:assert/strict";
import { assertPortFree, collectLines, freePort, LineLog } from "./_support.ts";

/** Entry point -> a setting it reads, set to an invalid value. */
const ENTRY_POINTS: Record<string, [string, string]> = {
  "sim.ts": ["MODBUS_PORT", "not-a-port"],
  "poll.ts": ["POLL_INTERVAL_MS", "fast"],
  "broker.ts": ["MQTT_WS_URL", "http://localhost:9001"],
  "hmi.ts": ["HMI_PORT", "99999"],
  "start.ts": ["MQTT_URL", "tcp://localhost"],
};

async function run(args: string[], env: Record<string, string> = {}) {
  // A program that should have refused its config but runs is killed, so
  // the test fails instead of hanging.
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 60_000);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P", ...args],
    env: { ...env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    signal: ac.signal,
  }).output().finally(() => clearTimeout(timer));
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

const SECRET = "s3cr3tpw";

Deno.test("a bad URL with credentials: exit 2, userinfo masked, never the secret (every entry point)", async () => {
  const cases: [string, Record<string, string>, RegExp][] = [];
  for (const file of ["poll.ts", "broker.ts", "hmi.ts", "start.ts"]) {
    cases.push([
      file,
      { MQTT_URL: `tcp://u:${SECRET}@h` },
      /MQTT_URL: expected a mqtt\|mqtts URL, got "tcp:\/\/\*\*\*@h"$/,
    ]);
  }
  for (const file of ["broker.ts", "hmi.ts", "start.ts"]) {
    cases.push([
      file,
      { MQTT_WS_URL: `ws://hmi:${SECRET}@127.0.0.1:9001` },
      /MQTT_WS_URL: expected no credentials in the URL .*put credentials in MQTT_WS_USERNAME\/MQTT_WS_PASSWORD_FILE, got "ws:\/\/\*\*\*@127\.0\.0\.1:9001"$/,
    ]);
  }
  for (const [file, env, re] of cases) {
    const r = await run([file], env);
    const all = r.stdout + r.stderr.join("\n");
    assert.equal(r.code, 2, `${file}: ${all}`);
    assert.equal(r.stderr.length, 1, all);
    assert.match(r.stderr[0], re, file);
    assert.ok(!all.includes(SECRET), `${file} printed the secret: ${all}`);
  }
});

Deno.test("a junk MQTT_CA_FILE is a config error (exit 2) naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "entry-ca-" });
  try {
    await Deno.writeTextFile(`${dir}/ca.crt`, "not a certificate\n");
    for (const file of ["poll.ts", "hmi.ts"]) {
      const r = await run([file], {
        MQTT_CA_FILE: `${dir}/ca.crt`,
        HMI_PORT: "1",
        DATA_DIR: dir,
      });
      assert.equal(r.code, 2, `${file}: ${r.stderr.join("\n")}`);
      assert.equal(r.stderr.length, 1, r.stderr.join("\n"));
      assert.match(
        r.stderr[0],
        new RegExp(`MQTT CA file ${dir}/ca\\.crt: no PEM certificate in it$`),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hmi.ts running: no secret in its logs, its page or /api/health", async () => {
  const dir = await Deno.makeTempDir({ prefix: "entry-hmi-" });
  const port = await freePort();
  const closed = await freePort(); // nothing listens: the recorder retries
  const secrets = [SECRET, "env-pw-77aa", "ws-pw-19cc"];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-P", "hmi.ts"],
    env: {
      NO_COLOR: "1",
      HMI_HOST: "127.0.0.1",
      HMI_PORT: String(port),
      DATA_DIR: dir,
      MQTT_URL: `mqtt://rec:${SECRET}@127.0.0.1:${closed}`,
      MQTT_USERNAME: "rec",
      MQTT_PASSWORD: "env-pw-77aa",
      MQTT_WS_URL: "ws://127.0.0.1:9001",
      MQTT_WS_USERNAME: "hmi",
      MQTT_WS_PASSWORD: "ws-pw-19cc",
    },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const out = new LineLog();
  const reading = Promise.all([
    collectLines(child.stdout, out),
    collectLines(child.stderr, out),
  ]);
  try {
    await out.waitFor(/hmi: listening on/, 60_000);
    await out.waitFor(/history recorder cannot reach/, 10_000);
    const base = `http://127.0.0.1:${port}`;
    const bodies: string[] = [];
    for (const p of ["/", "/fleet", "/device/inv-1", "/api/health"]) {
      const r = await fetch(`${base}${p}`);
      bodies.push(await r.text());
    }
    // Only the credentials endpoint hands out the browser's password.
    const creds = await (await fetch(`${base}/api/mqtt-credentials`)).json();
    assert.equal(creds.password, "ws-pw-19cc");
    for (const s of secrets) {
      for (const b of bodies) assert.ok(!b.includes(s), `${s} served`);
    }
    assert.ok(
      out.lines.some((l) => /no HMI_AUTH_FILE/.test(l)),
      "warns that the open HMI hands out the browser account",
    );
  } finally {
    child.kill("SIGTERM");
    const status = await child.status;
    await reading;
    await Deno.remove(dir, { recursive: true });
    assert.equal(status.code, 0, out.lines.join("\n"));
  }
  for (const s of secrets) {
    assert.ok(
      out.lines.every((l) => !l.includes(s)),
      `${s} logged:\n${out.lines.join("\n")}`,
    );
  }
  await assertPortFree(port);
});

Deno.test("deno task sim/poll/broker/hmi/start: an invalid value is our one line, no Deno notice before it", async () => {
  const root = new URL("..", import.meta.url).pathname;
  for (const [file, [envName, bad]] of Object.entries(ENTRY_POINTS)) {
    const task = file.replace(".ts", "");
    // `deno task -q` keeps the task runner's own "Task ..." echo out too.
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", task],
      cwd: root,
      env: { [envName]: bad, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    const lines = new TextDecoder().decode(out.stderr).split("\n")
      .filter((l) => l);
    assert.equal(out.code, 2, `${task}: ${lines.join("\n")}`);
    assert.deepEqual(lines.length, 1, `${task}: ${lines.join("\n")}`);
    assert.match(lines[0], new RegExp(`^${task}: ${envName}: expected `));
  }
});
