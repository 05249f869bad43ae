/**
 * Runs a real Mosquitto 2.0 as a child process on free loopback ports, with
 * a generated config (TCP + WebSocket listeners, anonymous or password file,
 * optional ACL file), for integration tests.
 */
import {
  collectLines,
  freePort,
  LineLog,
  MOSQUITTO,
  which,
} from "./_support.ts";

export interface MosquittoOptions {
  /** Lines appended to the generated config (e.g. password_file, acl_file). */
  extraConfig?: string[];
  allowAnonymous?: boolean;
  withWebSocket?: boolean;
  /**
   * Keep sessions, their queued messages and retained messages across
   * `down()`/`up()` (and `restart()`) in a temp directory; default false.
   */
  persistence?: boolean;
}

export interface Mosquitto {
  tcpPort: number;
  wsPort: number | null;
  log: LineLog;
  dir: string;
  /** SIGTERM and wait; removes the temp dir. */
  stop(): Promise<void>;
  /** Stop then start again on the same ports (a broker restart). */
  restart(): Promise<void>;
  /** Stop the broker process only (keeps ports and dir); `up()` restarts it. */
  down(): Promise<void>;
  /** Start it again after `down()`, on the same ports and config. */
  up(): Promise<void>;
}

export async function startMosquitto(
  opts: MosquittoOptions = {},
): Promise<Mosquitto> {
  if (!MOSQUITTO) throw new Error("mosquitto not installed");
  const dir = await Deno.makeTempDir({ prefix: "mosq-" });
  const tcpPort = await freePort();
  const wsPort = opts.withWebSocket === false ? null : await freePort();
  // Apart from `dir`: Mosquitto started as root drops to its own user,
  // which must be able to reach and write this one.
  const data = opts.persistence
    ? await Deno.makeTempDir({ prefix: "mosq-data-" })
    : null;
  if (data) await Deno.chmod(data, 0o777);
  const conf = [
    "per_listener_settings false",
    `allow_anonymous ${opts.allowAnonymous === false ? "false" : "true"}`,
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "log_type notice",
    "log_type information",
    "connection_messages true",
    ...(data
      ? ["persistence true", `persistence_location ${data}/`]
      : ["persistence false"]),
    // Mosquitto's default of 1000 queued messages per offline client would
    // silently cap what a persistent subscriber can catch up on.
    "max_queued_messages 100000",
    `listener ${tcpPort} 127.0.0.1`,
    ...(wsPort
      ? [
        `listener ${wsPort} 127.0.0.1`,
        "protocol websockets",
        "socket_domain ipv4",
      ]
      : []),
    ...(opts.extraConfig ?? []),
  ].join("\n") + "\n";
  const confPath = `${dir}/mosquitto.conf`;
  await Deno.writeTextFile(confPath, conf);

  const log = new LineLog();
  let child: Deno.ChildProcess;
  let collecting: Promise<void>;

  async function spawn() {
    child = new Deno.Command(MOSQUITTO!, {
      args: ["-c", confPath],
      stdout: "null",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    collecting = collectLines(child.stderr, log);
    const mark = log.lines.length;
    await waitListening(log, mark, tcpPort);
  }

  async function kill() {
    try {
      child.kill("SIGTERM");
    } catch { /* already exited */ }
    await child.status;
    await collecting;
  }

  await spawn();
  return {
    tcpPort,
    wsPort,
    log,
    dir,
    async stop() {
      await kill();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      if (data) await Deno.remove(data, { recursive: true }).catch(() => {});
    },
    async restart() {
      await kill();
      await spawn();
    },
    down: () => kill(),
    up: () => spawn(),
  };
}

/** Wait for "Opening ipv4 listen socket on port N" after line `from`. */
async function waitListening(log: LineLog, from: number, port: number) {
  const re = new RegExp(`listen socket on port ${port}`);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (log.lines.slice(from).some((l) => re.test(l))) {
      return;
    }
    if (log.lines.slice(from).some((l) => /Error:/.test(l))) {
      throw new Error(`mosquitto failed:\n${log.lines.join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`mosquitto did not start:\n${log.lines.join("\n")}`);
}

const MOSQUITTO_PASSWD = which("mosquitto_passwd") ??
  "/usr/bin/mosquitto_passwd";
/** The ACL shipped with the project. */
export const SHIPPED_ACL = new URL("../mosquitto/acl", import.meta.url)
  .pathname;

/**
 * `dir/passwd` for `users` (name -> password), made with mosquitto_passwd.
 * Mosquitto started as root drops to its own user, which must be able to
 * read the file (and enter `dir`).
 */
export async function writePasswordFile(
  dir: string,
  users: Record<string, string>,
): Promise<string> {
  const passwd = `${dir}/passwd`;
  await Deno.writeTextFile(passwd, "");
  for (const [user, pw] of Object.entries(users)) {
    const out = await new Deno.Command(MOSQUITTO_PASSWD, {
      args: ["-b", passwd, user, pw],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (out.code !== 0) {
      throw new Error(
        `mosquitto_passwd: ${new TextDecoder().decode(out.stderr)}`,
      );
    }
  }
  await Deno.chmod(passwd, 0o644);
  await Deno.chmod(dir, 0o755);
  return passwd;
}

/**
 * A copy of the shipped ACL in `dir`: Mosquitto started as root reads it
 * after dropping to its own user, which may not be able to enter the
 * checkout (a clone under a 0700 temp directory, say).
 */
export async function copyShippedAcl(dir: string): Promise<string> {
  const acl = `${dir}/acl`;
  await Deno.copyFile(SHIPPED_ACL, acl);
  await Deno.chmod(acl, 0o644);
  return acl;
}

/** Mosquitto refusing anonymous clients, with `users` and the shipped ACL. */
export async function secureMosquitto(
  users: Record<string, string>,
  opts: { withWebSocket?: boolean; extraConfig?: string[] } = {},
): Promise<{ m: Mosquitto; dir: string; url: string }> {
  const dir = await Deno.makeTempDir({ prefix: "mosq-sec-" });
  const passwd = await writePasswordFile(dir, users);
  const acl = await copyShippedAcl(dir);
  const m = await startMosquitto({
    withWebSocket: opts.withWebSocket,
    allowAnonymous: false,
    extraConfig: [
      `password_file ${passwd}`,
      `acl_file ${acl}`,
      ...(opts.extraConfig ?? []),
    ],
  });
  return { m, dir, url: `mqtt://127.0.0.1:${m.tcpPort}` };
}
