/**
 * Configuration from environment variables and CLI flags of the same meaning
 * (`MODBUS_PORT` <-> `--modbus-port`), parsed with `node:util` parseArgs.
 * A flag wins over the environment; an invalid value is a ConfigError whose
 * message is one line naming the setting, the expected form and the value.
 *
 * @example
 * ```ts
 * const spec = { port: intOption("MODBUS_PORT", "Modbus TCP port", 5020, 1, 65535) };
 * const cfg = parseConfig(spec, Deno.args, Deno.env.toObject()); // { port: number }
 * ```
 */
import { parseArgs } from "node:util";
import { maskUserinfo } from "./mqtt_secrets.ts";

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** One setting: where it comes from, how it is checked, what it means. */
export interface Option<T> {
  readonly env: string;
  readonly help: string;
  /** Undefined means required. */
  readonly default: T | undefined;
  /** Shown in --help and the README instead of the default value. */
  readonly shownDefault?: string;
  /** Converts the raw text or throws a ConfigError-worthy message. */
  readonly parse: (raw: string) => T;
  /** Boolean flags take no value on the command line. */
  readonly isFlag?: boolean;
  /** Secrets are never echoed back in errors. */
  readonly secret?: boolean;
  /** How a rejected value is echoed in the error (e.g. userinfo masked). */
  readonly shown?: (raw: string) => string;
  /** A second, shorter flag of the same meaning (without `--`). */
  readonly alias?: string;
}

// deno-lint-ignore no-explicit-any
export type Spec = Record<string, Option<any>>;
export type ConfigOf<S extends Spec> = {
  [K in keyof S]: S[K] extends Option<infer T> ? T : never;
};

/** `MODBUS_PORT` -> `modbus-port`. */
export function flagName(env: string): string {
  return env.toLowerCase().replaceAll("_", "-");
}

export function intOption(
  env: string,
  help: string,
  def: number | undefined,
  min: number,
  max: number,
): Option<number> {
  return {
    env,
    help: `${help} (${min}..${max})`,
    default: def,
    parse(raw) {
      if (!/^-?\d+$/.test(raw.trim())) {
        throw new Error(`expected an integer in ${min}..${max}`);
      }
      const n = Number(raw);
      if (n < min || n > max) {
        throw new Error(`expected an integer in ${min}..${max}`);
      }
      return n;
    },
  };
}

export function numberOption(
  env: string,
  help: string,
  def: number,
  min: number,
  max: number,
): Option<number> {
  return {
    env,
    help: `${help} (${min}..${max})`,
    default: def,
    parse(raw) {
      const n = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
        throw new Error(`expected a number in ${min}..${max}`);
      }
      return n;
    },
  };
}

export function stringOption(
  env: string,
  help: string,
  def: string | undefined,
  check?: (s: string) => string | null,
  secret = false,
): Option<string> {
  return {
    env,
    help,
    default: def,
    secret,
    parse(raw) {
      const why = check?.(raw) ?? null;
      if (why) throw new Error(why);
      return raw;
    },
  };
}

export function boolOption(
  env: string,
  help: string,
  def = false,
): Option<boolean> {
  return {
    env,
    help,
    default: def,
    isFlag: true,
    parse(raw) {
      const v = raw.trim().toLowerCase();
      if (["1", "true", "yes", "on"].includes(v)) return true;
      if (["0", "false", "no", "off", ""].includes(v)) return false;
      throw new Error("expected true or false");
    },
  };
}

/**
 * A URL whose scheme is one of `protocols` (e.g. ["mqtt:", "mqtts:"]).
 * Errors never echo a password in it: userinfo is shown as `***`.
 */
export function urlOption(
  env: string,
  help: string,
  def: string,
  protocols: string[],
): Option<string> {
  return {
    env,
    help,
    default: def,
    shown: maskUserinfo,
    parse(raw) {
      let u: URL;
      try {
        u = new URL(raw);
      } catch {
        throw new Error(`expected a URL like ${def}`);
      }
      if (!protocols.includes(u.protocol)) {
        throw new Error(
          `expected a ${protocols.map((p) => p.slice(0, -1)).join("|")} URL`,
        );
      }
      if (!u.hostname) throw new Error("URL has no host");
      return raw;
    },
  };
}

/** Port of a URL, or the scheme's default. */
export function urlPort(url: string): number {
  const u = new URL(url);
  if (u.port) return Number(u.port);
  const defaults: Record<string, number> = {
    "mqtt:": 1883,
    "mqtts:": 8883,
    "ws:": 80,
    "wss:": 443,
    "http:": 80,
  };
  return defaults[u.protocol] ?? 0;
}

/** Parse `argv` and `env` against `spec`. Throws ConfigError. */
export function parseConfig<S extends Spec>(
  spec: S,
  argv: string[],
  env: Record<string, string | undefined>,
): ConfigOf<S> {
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const o of Object.values(spec)) {
    options[flagName(o.env)] = { type: o.isFlag ? "boolean" : "string" };
    if (o.alias) options[o.alias] = options[flagName(o.env)];
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true }));
  } catch (e) {
    // parseArgs messages are long and multi-line; keep the first line.
    const first = (e as Error).message.split("\n")[0];
    throw new ConfigError(`${first} (see --help)`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, o] of Object.entries(spec)) {
    const long = flagName(o.env);
    const flag = o.alias !== undefined && values[o.alias] !== undefined
      ? o.alias
      : long;
    const fromFlag = values[flag];
    const raw = fromFlag !== undefined ? String(fromFlag) : env[o.env];
    const source = fromFlag !== undefined ? `--${flag}` : o.env;
    if (raw === undefined) {
      if (o.default === undefined) {
        throw new ConfigError(`${o.env} / --${long} is required`);
      }
      out[key] = o.default;
      continue;
    }
    try {
      out[key] = o.parse(raw);
    } catch (e) {
      const shown = o.secret
        ? "<secret>"
        : JSON.stringify(o.shown ? o.shown(raw) : raw);
      throw new ConfigError(`${source}: ${(e as Error).message}, got ${shown}`);
    }
  }
  return out as ConfigOf<S>;
}

/** The --help text: one line per setting. */
export function helpText(name: string, summary: string, spec: Spec): string {
  const lines = [
    `${name}: ${summary}`,
    "",
    "Settings (environment variable / flag):",
  ];
  for (const o of Object.values(spec)) {
    const def = o.shownDefault ??
      (o.default === undefined ? "required" : JSON.stringify(o.default));
    const alias = o.alias ? ` (or --${o.alias})` : "";
    lines.push(
      `  ${o.env} / --${flagName(o.env)}${o.isFlag ? "" : " VALUE"}${alias}`,
    );
    lines.push(`      ${o.help} [default: ${def}]`);
  }
  lines.push("  --help", "      show this help");
  return lines.join("\n");
}

/**
 * Entry-point wrapper: handles --help, turns a ConfigError into one line on
 * stderr and exit code 2, and any other startup failure into one line and
 * exit code 1, so users never see a stack trace for their own mistakes.
 */
export async function runMain<S extends Spec>(
  name: string,
  summary: string,
  spec: S,
  main: (cfg: ConfigOf<S>) => Promise<void> | void,
  argv: string[] = Deno.args,
): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(helpText(name, summary, spec));
    return;
  }
  let cfg: ConfigOf<S>;
  try {
    cfg = parseConfig(spec, argv, Deno.env.toObject());
  } catch (e) {
    console.error(`${name}: ${(e as Error).message}`);
    Deno.exit(2);
  }
  try {
    await main(cfg);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`${name}: ${e.message}`);
      Deno.exit(2);
    }
    console.error(`${name}: ${(e as Error)?.message ?? String(e)}`);
    Deno.exit(1);
  }
}

/**
 * Run `stop` once on the first SIGINT or SIGTERM, then exit 0; a second
 * signal while stopping exits at once with 1 (an impatient Ctrl-C works).
 */
export function stopOnSignals(stop: () => Promise<unknown>): void {
  let stopping = false;
  const onSignal = () => {
    if (stopping) Deno.exit(1);
    stopping = true;
    stop().then(() => Deno.exit(0), (e) => {
      console.error(`stopping failed: ${(e as Error)?.message ?? e}`);
      Deno.exit(1);
    });
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
}
