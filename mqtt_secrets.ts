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

/** `text` with every occurrence of `secret` masked (for error messages). */
export function redactSecret(text: string, secret?: string): string {
  return secret ? text.replaceAll(secret, "<secret>") : text;
}

/**
 * Resolve the MQTT secret and trust anchors from configuration: the
 * password from a file (MQTT_PASSWORD_FILE, trailing newline trimmed) wins
 * over MQTT_PASSWORD; a CA file (MQTT_CA_FILE, PEM) becomes `ca` for
 * mqtts:// and wss://. Throws a one-line Error naming the file (never its
 * contents) when a file cannot be read.
 */
export function loadMqttSecrets(
  a: { password?: string; passwordFile?: string; caFile?: string },
): { password?: string; ca?: string } {
  const read = (path: string, what: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (e) {
      throw new Error(
        `cannot read ${what} ${path}: ${(e as Error).name}`,
      );
    }
  };
  const password = a.passwordFile
    ? read(a.passwordFile, "MQTT password file").replace(/\r?\n$/, "")
    : a.password || undefined;
  const ca = a.caFile ? read(a.caFile, "MQTT CA file") : undefined;
  return { password, ca };
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
