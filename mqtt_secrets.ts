/**
 * MQTT credentials and trust anchors from configuration, and the masking that
 * keeps them out of logs and error messages. Shared by the poller, the HMI
 * server and the embedded broker.
 *
 * @example
 * ```ts
 * const { password, ca } = loadMqttSecrets({ passwordFile: "/run/secrets/mqtt" });
 * log(`connected to ${redact(url)}`);
 * ```
 */
import { X509Certificate } from "node:crypto";

/** How brokers (Mosquitto, aedes) word a refused login in mqtt.js errors. */
const AUTH_REJECTED = /not authori[sz]ed|bad user ?name or password/i;

/**
 * The text of one log line for an MQTT client error, the password masked. A
 * refused login says so plainly and that the client keeps retrying (an
 * operator may fix the broker's password file without a restart).
 */
export function mqttErrorText(
  message: string,
  username: string | undefined,
  password: string | undefined,
): { authRejected: boolean; text: string } {
  const msg = redactSecret(message, password);
  return AUTH_REJECTED.test(msg)
    ? {
      authRejected: true,
      text: `broker rejected the credentials of user "${
        username ?? ""
      }" (${msg}); retrying with backoff`,
    }
    : { authRejected: false, text: msg };
}

/** `text` with every occurrence of `secret` masked (for error messages). */
export function redactSecret(text: string, secret?: string): string {
  return secret ? text.replaceAll(secret, "<secret>") : text;
}

/**
 * Resolve the MQTT secret and trust anchors from configuration: the
 * password from a file (MQTT_PASSWORD_FILE, trailing newline trimmed) wins
 * over MQTT_PASSWORD; a CA file (MQTT_CA_FILE, PEM) becomes `ca` for
 * mqtts:// and wss://. Throws a one-line Error naming the file (never its
 * contents) when a file cannot be read or the CA file holds no valid
 * certificate (a junk CA would otherwise show up only as an endless
 * "self-signed certificate" retry loop).
 */
export function loadMqttSecrets(
  a: { password?: string; passwordFile?: string; caFile?: string },
): { password?: string; ca?: string } {
  const password = a.passwordFile
    ? readSecretFile(a.passwordFile, "MQTT password file")
    : a.password || undefined;
  const ca = a.caFile ? readCaFile(a.caFile, "MQTT CA file") : undefined;
  return { password, ca };
}

/**
 * A secret from a file, one trailing newline trimmed. Throws a one-line
 * Error naming `what` and the file, never its contents.
 */
export function readSecretFile(path: string, what: string): string {
  return readText(path, what).replace(/\r?\n$/, "");
}

/**
 * A PEM file of CA certificates, each block checked to parse as X.509.
 * Throws a one-line Error naming the file when there is no certificate or
 * one does not parse.
 */
export function readCaFile(path: string, what: string): string {
  const text = readText(path, what);
  const blocks = text.match(
    /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g,
  ) ?? [];
  if (blocks.length === 0) {
    throw new Error(`${what} ${path}: no PEM certificate in it`);
  }
  blocks.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch (e) {
      const why = String((e as Error)?.message ?? e).split("\n")[0];
      throw new Error(
        `${what} ${path}: certificate ${
          i + 1
        } of ${blocks.length} does not parse (${why})`,
      );
    }
  });
  return text;
}

function readText(path: string, what: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: ${(e as Error).name}`);
  }
}

/**
 * `text` (a URL, or what a user meant as one) with any userinfo masked, for
 * error messages: everything between the scheme's `//` (or the start) and
 * the last `@` becomes `***`. Over-masking an `@` in a path is harmless;
 * echoing a password is not.
 */
export function maskUserinfo(text: string): string {
  return text.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)?[^]*@/, "$1***@");
}

/** URL without credentials, for logs. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString().replace(/\/$/, "");
  } catch {
    return "<invalid url>";
  }
}
