/**
 * HMI responses over real HTTP: compression on the wire (precompressed
 * bundles, text compressed on the fly), ETag revalidation and caching of
 * static files, HTTP Basic auth (HMI_AUTH_FILE) and the browser
 * credentials endpoint, and the configuration errors of those settings.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { gunzipSync } from "node:zlib";
import { ConfigError, parseConfig } from "../cli.ts";
import { HMI_OPTIONS } from "../settings.ts";
import { type HmiConfig, parseAuthFile, startHmi } from "../hmi.ts";
import { mqttCredentials } from "../hmi_credentials.ts";
import { assertPortFree, freePort } from "./_support.ts";

async function withHmi(
  env: Record<string, string>,
  fn: (base: string, cfg: HmiConfig, dir: string) => Promise<void>,
  files: Record<string, string> = {},
): Promise<void> {
  const port = await freePort();
  const dir = await Deno.makeTempDir({ prefix: "hmi-headers-" });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  const expand = (v: string) => v.replaceAll("$DIR", dir);
  const cfg = parseConfig(HMI_OPTIONS, [], {
    HMI_HOST: "127.0.0.1",
    HMI_PORT: String(port),
    DATA_DIR: dir,
    ...Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, expand(v)]),
    ),
  });
  const hmi = await startHmi(cfg);
  try {
    await fn(`http://127.0.0.1:${port}`, cfg, dir);
  } finally {
    await hmi.close();
    await Deno.remove(dir, { recursive: true });
  }
  await assertPortFree(port);
}

/** A GET that shows the wire: no transparent decompression (unlike fetch). */
function raw(
  url: string,
  headers: Record<string, string> = {},
): Promise<
  { status: number; headers: http.IncomingHttpHeaders; body: Buffer }
> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
        }));
      res.on("error", reject);
    }).on("error", reject);
  });
}

const GZIP = { "Accept-Encoding": "gzip, deflate, br" };

Deno.test("wire: page, CSS and bundles gzip-compressed when accepted, identity otherwise", async () => {
  await withHmi({}, async (base) => {
    const plain = await raw(`${base}/`);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers["content-encoding"], undefined);
    const gz = await raw(`${base}/`, GZIP);
    assert.equal(gz.headers["content-encoding"], "gzip");
    assert.match(String(gz.headers["vary"]), /accept-encoding/i);
    // The same page either way.
    assert.equal(gunzipSync(gz.body).toString(), plain.body.toString());

    // First load over the wire: HTML, CSS, boot, its imports, the island.
    const html = plain.body.toString();
    const urls = ["/", "/styles.css", "/favicon.svg"];
    for (
      const m of html.matchAll(/<link rel="modulepreload" href="([^"]+)"/g)
    ) {
      urls.push(m[1]);
    }
    let rawBytes = 0, wireBytes = 0;
    for (const u of urls) {
      const r = await raw(`${base}${u}`);
      const z = await raw(`${base}${u}`, GZIP);
      assert.equal(r.status, 200, u);
      rawBytes += r.body.length;
      wireBytes += z.body.length;
      if (u.startsWith("/build/")) {
        // Precompressed at build time (level 9), served as is.
        assert.equal(z.headers["content-encoding"], "gzip", u);
        assert.equal(
          z.headers["cache-control"],
          "public, max-age=31536000, immutable",
          u,
        );
        assert.deepEqual(gunzipSync(z.body), r.body, u);
      }
    }
    console.log(
      `first load (${urls.length} responses): ${
        (rawBytes / 1024).toFixed(1)
      } KB raw, ${(wireBytes / 1024).toFixed(1)} KB on the wire with gzip`,
    );
    assert.ok(wireBytes < rawBytes / 2, `${wireBytes} of ${rawBytes}`);

    // JSON too; and the no-store API still says no-store.
    const api = await raw(`${base}/api/health`, GZIP);
    assert.equal(api.headers["cache-control"], "no-store");
    assert.equal(JSON.parse(maybeGunzip(api)).status, "ok");
  });
});

function maybeGunzip(
  r: { headers: http.IncomingHttpHeaders; body: Buffer },
): string {
  return (r.headers["content-encoding"] === "gzip"
    ? gunzipSync(r.body)
    : r.body).toString();
}

Deno.test("static files: ETag + no-cache (revalidate, 304), hashed bundles immutable", async () => {
  await withHmi({}, async (base) => {
    for (const path of ["/styles.css", "/favicon.svg"]) {
      for (const enc of [{}, GZIP]) {
        const first = await raw(`${base}${path}`, enc);
        assert.equal(first.status, 200, path);
        assert.equal(first.headers["cache-control"], "no-cache", path);
        const tag = first.headers["etag"];
        assert.match(String(tag), /^(W\/)?"[0-9a-f]+"$/, path);
        const again = await raw(`${base}${path}`, {
          ...enc,
          "If-None-Match": String(tag),
        });
        assert.equal(again.status, 304, `${path} revalidated`);
        assert.equal(again.body.length, 0);
        assert.equal(again.headers["etag"], tag);
        const changed = await raw(`${base}${path}`, {
          ...enc,
          "If-None-Match": '"0000"',
        });
        assert.equal(changed.status, 200);
      }
    }
    const html = (await raw(`${base}/`)).body.toString();
    const boot = /src="(\/build\/boot-[A-Z0-9]{8}\.js)"/.exec(html)![1];
    const b = await raw(`${base}${boot}`);
    assert.equal(
      b.headers["cache-control"],
      "public, max-age=31536000, immutable",
    );
    assert.ok(b.headers["etag"]);
    const manifest = await raw(`${base}/build/manifest.json`);
    assert.equal(manifest.headers["cache-control"], "no-cache");
  });
});

const AUTH_FILE = "# HMI operators\nalice:a1-secret\n\nbob:pw:with:colons\r\n";
const basic = (u: string, p: string) => ({
  Authorization: `Basic ${btoa(`${u}:${p}`)}`,
});

Deno.test("HMI_AUTH_FILE: every page, file and API needs Basic auth except /api/health", async () => {
  await withHmi({
    HMI_AUTH_FILE: "$DIR/auth",
    MQTT_WS_USERNAME: "hmi",
    MQTT_WS_PASSWORD: "ws-secret-9",
  }, async (base) => {
    const html = (await raw(`${base}/`, basic("alice", "a1-secret"))).body
      .toString();
    const boot = /src="(\/build\/boot-[A-Z0-9]{8}\.js)"/.exec(html)![1];
    const paths = [
      "/",
      "/fleet",
      "/device/inv-1",
      "/styles.css",
      boot,
      "/api/history",
      "/api/alarms",
      "/api/mqtt-credentials",
      "/no/such/page",
    ];
    for (const p of paths) {
      for (
        const h of [{}, basic("alice", "wrong"), basic("mallory", "a1-secret")]
      ) {
        const r = await raw(`${base}${p}`, h);
        assert.equal(r.status, 401, `${p} ${JSON.stringify(h)}`);
        assert.equal(
          r.headers["www-authenticate"],
          'Basic realm="Edge SCADA HMI"',
        );
        assert.ok(r.headers["content-security-policy"], "headers on 401");
        assert.ok(!r.body.toString().includes("ws-secret-9"));
      }
      for (
        const h of [basic("alice", "a1-secret"), basic("bob", "pw:with:colons")]
      ) {
        const r = await raw(`${base}${p}`, h);
        assert.equal(r.status, p === "/no/such/page" ? 404 : 200, p);
      }
    }
    // Liveness stays open and shows that auth is on, nothing secret.
    const health = await raw(`${base}/api/health`);
    assert.equal(health.status, 200);
    const body = JSON.parse(health.body.toString());
    assert.equal(body.auth, "basic");
    assert.ok(!health.body.toString().includes("ws-secret-9"));

    const creds = await raw(
      `${base}/api/mqtt-credentials`,
      basic("alice", "a1-secret"),
    );
    assert.equal(creds.headers["cache-control"], "no-store");
    assert.deepEqual(JSON.parse(creds.body.toString()), {
      username: "hmi",
      password: "ws-secret-9",
    });
    // The page itself never carries the browser's password.
    assert.ok(!html.includes("ws-secret-9"));
  }, { auth: AUTH_FILE });
});

Deno.test("/api/mqtt-credentials: 204 when anonymous; password file wins; client helper", async () => {
  await withHmi({}, async (base) => {
    const r = await fetch(`${base}/api/mqtt-credentials`);
    assert.equal(r.status, 204);
    assert.equal(r.headers.get("cache-control"), "no-store");
    assert.equal(await r.text(), "");
    const f: typeof fetch = (i, init) => fetch(`${base}${i}`, init);
    assert.deepEqual(await mqttCredentials(f), {});
    // Open HMI: anyone may fetch the page (README: trusted network only).
    assert.equal((await raw(`${base}/`)).status, 200);
  });
  await withHmi({
    MQTT_WS_USERNAME: "hmi",
    MQTT_WS_PASSWORD: "from-env",
    MQTT_WS_PASSWORD_FILE: "$DIR/wspw",
  }, async (base) => {
    const f: typeof fetch = (i, init) => fetch(`${base}${i}`, init);
    assert.deepEqual(await mqttCredentials(f), {
      username: "hmi",
      password: "from-file",
    });
  }, { wspw: "from-file\n" });
  await withHmi({ MQTT_WS_USERNAME: "viewer" }, async (base) => {
    const f: typeof fetch = (i, init) => fetch(`${base}${i}`, init);
    assert.deepEqual(await mqttCredentials(f), { username: "viewer" });
  });
  // Not served at all (an older HMI) or unreachable: anonymous, no throw.
  const notFound: typeof fetch = () =>
    Promise.resolve(new Response("nope", { status: 404 }));
  assert.deepEqual(await mqttCredentials(notFound), {});
  const down: typeof fetch = () => Promise.reject(new TypeError("offline"));
  assert.deepEqual(await mqttCredentials(down), {});
});

Deno.test("parseAuthFile: user:password lines, comments, one-line errors without contents", () => {
  assert.deepEqual(parseAuthFile(AUTH_FILE, "f"), [
    { username: "alice", password: "a1-secret" },
    { username: "bob", password: "pw:with:colons" },
  ]);
  for (
    const [text, line] of [
      ["alice:ok\nnocolon-secret\n", 2],
      [":pw-secret\n", 1],
      ["alice:\n", 1],
    ] as const
  ) {
    assert.throws(() => parseAuthFile(text, "/etc/hmi-auth"), (e: Error) => {
      assert.equal(
        e.message,
        `HMI_AUTH_FILE /etc/hmi-auth line ${line}: expected user:password`,
      );
      return true;
    });
  }
  assert.throws(
    () => parseAuthFile("# nobody\n\n", "f"),
    /HMI_AUTH_FILE f: no user:password lines/,
  );
});

Deno.test("browser credential and auth settings: config errors, never the secret", async () => {
  const port = await freePort();
  const dir = await Deno.makeTempDir({ prefix: "hmi-headers-cfg-" });
  try {
    const cases: [Record<string, string>, RegExp][] = [
      [{ MQTT_WS_PASSWORD: "pw-no-user-1" }, /needs MQTT_WS_USERNAME/],
      [
        { MQTT_WS_USERNAME: "hmi", MQTT_WS_PASSWORD_FILE: `${dir}/missing` },
        /cannot read MQTT_WS_PASSWORD_FILE .*missing: NotFound/,
      ],
      [
        { HMI_AUTH_FILE: `${dir}/missing` },
        /cannot read HMI_AUTH_FILE .*missing: NotFound/,
      ],
    ];
    for (const [env, re] of cases) {
      const cfg = parseConfig(HMI_OPTIONS, [], {
        HMI_HOST: "127.0.0.1",
        HMI_PORT: String(port),
        DATA_DIR: dir,
        ...env,
      });
      await assert.rejects(startHmi(cfg), (e: Error) => {
        assert.ok(e instanceof ConfigError, e.message);
        assert.match(e.message, re);
        assert.ok(!e.message.includes("pw-no-user-1"));
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  await assertPortFree(port);
});
