/**
 * Server side of the HMI: the Fresh-style glue (fresh.ts), the build
 * (build.ts) and the routes, over real HTTP on loopback.
 */
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { parseConfig } from "../cli.ts";
import { HMI_OPTIONS } from "../settings.ts";
import { contentSecurityPolicy, type HmiConfig, startHmi } from "../hmi.ts";
import { routePattern, serializeJson } from "../fresh.ts";
import { bootSource, buildIslands } from "../build.ts";
import { assertPortFree, freePort } from "./_support.ts";

async function withHmi(
  env: Record<string, string>,
  fn: (base: string, cfg: HmiConfig) => Promise<void>,
): Promise<void> {
  const port = await freePort();
  // Never write into the repository's ./data from a test.
  const dataDir = await Deno.makeTempDir({ prefix: "hmi-render-" });
  const cfg = parseConfig(HMI_OPTIONS, [], {
    HMI_HOST: "127.0.0.1",
    HMI_PORT: String(port),
    DATA_DIR: dataDir,
    ...env,
  });
  const hmi = await startHmi(cfg);
  try {
    assert.equal(hmi.port, port);
    await fn(`http://127.0.0.1:${port}`, cfg);
  } finally {
    await hmi.close();
    await Deno.remove(dataDir, { recursive: true });
  }
  await assertPortFree(port);
}

Deno.test("serializeJson cannot close a script element", () => {
  const hostile = {
    s: "</script><script>alert(1)</script>",
    c: "<!-- \u2028\u2029 &amp;",
  };
  const out = serializeJson(hostile);
  assert.ok(!/[<>&\u2028\u2029]/.test(out), out);
  assert.deepEqual(JSON.parse(out), hostile);
});

Deno.test("routePattern maps files to URL patterns as Fresh does", () => {
  assert.equal(routePattern("index.tsx"), "/");
  assert.equal(routePattern("api/health.ts"), "/api/health");
  assert.equal(routePattern("devices/[id].tsx"), "/devices/:id");
  assert.equal(routePattern("docs/index.tsx"), "/docs");
  assert.equal(routePattern("files/[...path].ts"), "/files/:path{.+}");
});

Deno.test("contentSecurityPolicy allows only self and the broker origin", () => {
  const csp = contentSecurityPolicy("wss://broker.example:8884/mqtt");
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /connect-src 'self' wss:\/\/broker\.example:8884(;|$)/);
  assert.match(csp, /object-src 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
});

Deno.test("bootSource loads each island by dynamic import", () => {
  const src = bootSource([{ name: "A", path: "/x/islands/A.tsx" }]);
  assert.match(src, /"A": \(\) => import\("\/x\/islands\/A\.tsx"\)/);
  assert.match(src, /hydrate\(/);
});

Deno.test("build: hashed, code-split bundles within the size budgets", async () => {
  const outDir = new URL(`file://${await Deno.makeTempDir()}/`);
  try {
    const { manifest, files } = await buildIslands({ outDir });
    assert.match(manifest.boot, /^\/build\/boot-[A-Z0-9]{8}\.js$/);
    assert.ok(manifest.islands.LiveHmi?.length > 0);
    const gz = async (url: string) => {
      const bytes = await Deno.readFile(
        new URL(url.replace("/build/", ""), outDir),
      );
      return gzipSync(bytes, { level: 9 }).length;
    };
    const first = new Set([
      manifest.boot,
      ...manifest.bootImports,
      ...manifest.islands.LiveHmi,
    ]);
    let firstGz = 0;
    for (const u of first) firstGz += await gz(u);
    let allGz = 0;
    for (const u of Object.keys(files).filter((f) => f.endsWith(".js"))) {
      assert.match(u, /-[A-Z0-9]{8}\.js$/);
      allGz += await gz(u);
    }
    console.log(
      `first-load JS ${(firstGz / 1024).toFixed(1)} KB gz, all JS ${
        (allGz / 1024).toFixed(1)
      } KB gz`,
    );
    assert.ok(firstGz <= 20 * 1024, `first-load JS ${firstGz} B gz > 20 KB`);
    assert.ok(allGz <= 200 * 1024, `all JS ${allGz} B gz > 200 KB`);
    // Chart.js by its parts: no bar/pie/radar controllers shipped.
    const chart = Object.keys(files).find((f) => f.includes("hmi_chart"));
    assert.ok(chart, "a separate chart chunk");
    const text = await Deno.readTextFile(
      new URL(chart.replace("/build/", ""), outDir),
    );
    assert.doesNotMatch(text, /"doughnut"|"radar"|"polarArea"/);
    // mqtt.js is only reachable by dynamic import, not from the first load.
    for (const u of first) assert.doesNotMatch(u, /mqtt/);
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});

Deno.test("GET / renders the page with the island marker, props and headers", async () => {
  await withHmi({
    MQTT_WS_URL: "ws://127.0.0.1:9001",
    TOPIC_PREFIX: "site1/dev-a",
    POLL_INTERVAL_MS: "500",
  }, async (base) => {
    const res = await fetch(`${base}/`);
    const html = await res.text();
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(res.headers.get("cache-control"), "no-cache");
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    const csp = res.headers.get("content-security-policy") ?? "";
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /connect-src 'self' ws:\/\/127\.0\.0\.1:9001(;|$)/);
    assert.ok(html.startsWith("<!DOCTYPE html>"));
    // Server-rendered island with its marker, hydration data and boot script.
    assert.match(html, /<div data-frsh-island="0"><div class="hmi">/);
    assert.match(html, /id="broker-state">Broker: connecting</);
    const state =
      /<script id="__FRSH_STATE" type="application\/json">(.*?)<\/script>/
        .exec(html);
    assert.ok(state, "island state script");
    assert.deepEqual(JSON.parse(state[1]), [{
      id: 0,
      name: "LiveHmi",
      props: {
        mqttWsUrl: "ws://127.0.0.1:9001",
        topicPrefix: "site1/dev-a",
        raiseAboveC: 60,
        clearBelowC: 58,
        intervalMs: 500,
        windowMs: 600_000,
      },
    }]);
    const boot =
      /<script type="module" src="(\/build\/boot-[A-Z0-9]{8}\.js)"><\/script>/
        .exec(html);
    assert.ok(boot, "boot script tag");
    assert.match(
      html,
      new RegExp(`<link rel="modulepreload" href="${boot[1]}">`),
    );
    // No inline script may execute (CSP has no 'unsafe-inline').
    for (const m of html.matchAll(/<script([^>]*)>/g)) {
      assert.ok(/src=|type="application\/json"/.test(m[1]), m[0]);
    }
    // The bundle is served with the right type and immutable caching.
    const js = await fetch(`${base}${boot[1]}`);
    await js.arrayBuffer();
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-type") ?? "", /^text\/javascript/);
    assert.equal(
      js.headers.get("cache-control"),
      "public, max-age=31536000, immutable",
    );
    assert.ok(js.headers.get("content-security-policy"));
  });
});

Deno.test("hostile config text is escaped in markup and in island props", async () => {
  const evil = "ws://127.0.0.1:9001/</script><script>alert(1)</script>";
  await withHmi({ MQTT_WS_URL: evil }, async (base) => {
    const html = await (await fetch(`${base}/`)).text();
    assert.ok(!html.includes("<script>alert(1)"), "no injected script");
    const state =
      /<script id="__FRSH_STATE" type="application\/json">(.*?)<\/script>/
        .exec(html);
    assert.ok(state);
    assert.equal(JSON.parse(state[1])[0].props.mqttWsUrl, evil);
    assert.match(html, /&lt;\/script>&lt;script>alert\(1\)&lt;\/script>/);
  });
});

Deno.test("GET /api/health returns JSON status", async () => {
  await withHmi({ TOPIC_PREFIX: "demo" }, async (base) => {
    const res = await fetch(`${base}/api/health`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.equal(res.headers.get("cache-control"), "no-store");
    const body = await res.json();
    assert.equal(body.status, "ok");
    assert.equal(body.topic_prefix, "demo");
    assert.deepEqual(body.islands, ["FleetOverview", "LiveHmi"]);
    assert.equal(typeof body.uptime_s, "number");
  });
});

Deno.test("static files, 404 page and method handling", async () => {
  await withHmi({}, async (base) => {
    const css = await fetch(`${base}/styles.css`);
    await css.arrayBuffer();
    assert.equal(css.status, 200);
    assert.match(css.headers.get("content-type") ?? "", /^text\/css/);
    const ico = await fetch(`${base}/favicon.svg`);
    await ico.arrayBuffer();
    assert.match(ico.headers.get("content-type") ?? "", /^image\/svg\+xml/);

    const missing = await fetch(`${base}/no/such/page?x=<b>`);
    const text = await missing.text();
    assert.equal(missing.status, 404);
    assert.match(missing.headers.get("content-type") ?? "", /^text\/html/);
    assert.ok(missing.headers.get("content-security-policy"));
    assert.match(text, /Not found/);
    assert.doesNotMatch(text, /data-frsh-island/);

    const missingJs = await fetch(`${base}/build/nope-AAAAAAAA.js`);
    await missingJs.arrayBuffer();
    assert.equal(missingJs.status, 404);

    const traversal = await fetch(`${base}/build/..%2f..%2fdeno.json`);
    await traversal.arrayBuffer();
    assert.equal(traversal.status, 404);

    const post = await fetch(`${base}/api/health`, { method: "POST" });
    await post.arrayBuffer();
    assert.equal(post.status, 405);
  });
});

Deno.test("build works from any working directory (deno run /path/to/start.ts)", async () => {
  const elsewhere = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-P",
        "--config",
        new URL("../deno.json", import.meta.url).pathname,
        new URL("../build.ts", import.meta.url).pathname,
      ],
      cwd: elsewhere,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const dec = new TextDecoder();
    assert.equal(out.code, 0, dec.decode(out.stderr));
    assert.match(dec.decode(out.stdout), /\/build\/LiveHmi-[A-Z0-9]+\.js/);
    assert.match(
      dec.decode(out.stdout),
      /\/build\/FleetOverview-[A-Z0-9]+\.js/,
    );
  } finally {
    await Deno.remove(elsewhere, { recursive: true });
  }
});
