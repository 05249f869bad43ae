/**
 * Throwaway TLS material for tests, made by openssl at test time: a CA and a
 * server certificate for 127.0.0.1 / localhost signed by it (EC P-256, one
 * day). Files are world-readable so a Mosquitto that dropped to its own user
 * can read them.
 */

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    throw new Error(
      `openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

/** `dir/ca.{crt,key}` and `dir/server.{crt,key}`. */
export async function makeCerts(dir: string): Promise<void> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "1",
    "-subj",
    "/CN=scada-test-ca",
  ], dir);
  await openssl([
    "req",
    ...ec,
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=127.0.0.1",
  ], dir);
  await Deno.writeTextFile(
    `${dir}/san.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.crt",
    "-days",
    "1",
    "-extfile",
    "san.ext",
  ], dir);
  for (const f of ["server.key", "server.crt", "ca.crt"]) {
    await Deno.chmod(`${dir}/${f}`, 0o644);
  }
}
