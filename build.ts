/**
 * Builds the island bundles with npm:esbuild into `static/build/`: one boot
 * module that hydrates the islands found in the page, one code-split chunk
 * per island (loaded by dynamic import), shared chunks, all minified with
 * hashed names, a gzip copy of each (`.js.gz`, served precompressed), and
 * `manifest.json` for the server (see fresh.ts).
 *
 * Bare imports (`preact`, `chart.js`, `mqtt/dist/mqtt.esm`) resolve through
 * Deno: deno.json's import map and the Deno npm cache. With
 * `nodeModulesDir: "none"` there is no node_modules, so the build links the
 * locked npm packages into a temporary `node_modules` that esbuild searches
 * (`nodePaths`), letting esbuild apply package `exports` with browser
 * conditions itself.
 *
 * @example
 * ```ts
 * const manifest = await buildIslands({ root: new URL("./", import.meta.url) });
 * ```
 * `deno task build` runs it alone; `hmi.ts` runs it at start.
 */
import * as esbuild from "esbuild";
import { gzipSync } from "node:zlib";
import { type IslandManifest, islandName } from "./fresh.ts";

export interface BuildOptions {
  /** Project root (directory URL) with islands/ and static/. */
  root?: URL;
  /** Output directory; default `static/build/` under root. */
  outDir?: URL;
  minify?: boolean;
  log?: (l: string) => void;
}

export interface BuildResult {
  manifest: IslandManifest;
  /** Output file name -> bytes, for size budgets. */
  files: Record<string, number>;
}

const DEFAULT_ROOT = new URL("./", import.meta.url);

/** Every npm package of deno.lock as name -> cache directory. */
async function lockedPackages(root: URL): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  // The npm cache directory, found from a package Deno resolves for us.
  const preact = new URL(import.meta.resolve("preact")).pathname;
  const m = /^(.*\/registry\.npmjs\.org)\//.exec(preact);
  if (!m) throw new Error(`unexpected npm cache layout: ${preact}`);
  const cache = m[1];
  let lock: {
    npm?: Record<string, unknown>;
    specifiers?: Record<string, string>;
  };
  try {
    lock = JSON.parse(await Deno.readTextFile(new URL("deno.lock", root)));
  } catch {
    lock = {};
  }
  const versions = new Map<string, string[]>();
  for (const key of Object.keys(lock.npm ?? {})) {
    const at = key.indexOf("@", 1);
    const name = key.slice(0, at);
    const version = key.slice(at + 1).split("_")[0];
    versions.set(name, [...(versions.get(name) ?? []), version]);
  }
  // Direct dependencies win when a package is locked at several versions.
  const direct = new Map<string, string>();
  for (const [spec, v] of Object.entries(lock.specifiers ?? {})) {
    const s = /^npm:(@?[^@]+)@/.exec(spec);
    if (s) direct.set(s[1], v.split("_")[0]);
  }
  for (const [name, vs] of versions) {
    const v = direct.get(name) ?? vs.sort(compareVersions).at(-1)!;
    out.set(name, `${cache}/${name}/${v}`);
  }
  // Anything the import map maps but the lock lacks: ask Deno directly.
  const cfg = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  for (const [name, target] of Object.entries(cfg.imports ?? {})) {
    if (name.endsWith("/") || out.has(name)) continue;
    if (typeof target !== "string" || !target.startsWith("npm:")) continue;
    const v = /@(\d[^/]*)$/.exec(target)?.[1];
    if (v) out.set(name, `${cache}/${name}/${v}`);
  }
  return out;
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => Number(x) || 0);
  const pb = b.split(/[.-]/).map((x) => Number(x) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

async function linkPackages(
  pkgs: Map<string, string>,
  dir: string,
): Promise<void> {
  for (const [name, target] of pkgs) {
    try {
      await Deno.stat(target);
    } catch {
      continue; // locked for another platform or not downloaded: not ours
    }
    const link = `${dir}/${name}`;
    if (name.startsWith("@")) {
      await Deno.mkdir(link.slice(0, link.lastIndexOf("/")), {
        recursive: true,
      });
    }
    await Deno.symlink(target, link);
  }
}

/** `deno install --entrypoint` the files: downloads every npm package they reach. */
async function denoCache(root: URL, files: string[]): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["install", "--entrypoint", ...files],
    cwd: decodeURIComponent(root.pathname),
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `deno install failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

/** The generated hydration boot module. */
export function bootSource(islands: { name: string; path: string }[]): string {
  const loaders = islands.map((i) =>
    `${JSON.stringify(i.name)}: () => import(${JSON.stringify(i.path)})`
  ).join(",\n  ");
  return `import { h, hydrate } from "preact";
const loaders = {
  ${loaders}
};
const el = document.getElementById("__FRSH_STATE");
const islands = el ? JSON.parse(el.textContent || "[]") : [];
for (const i of islands) {
  const host = document.querySelector('[data-frsh-island="' + i.id + '"]');
  const load = loaders[i.name];
  if (!host || !load) continue;
  load().then((m) => hydrate(h(m.default, i.props), host))
    .catch((e) => console.error("island " + i.name + " failed:", e));
}
`;
}

/** Build islands into `outDir` and return the manifest (also written there). */
export async function buildIslands(
  opts: BuildOptions = {},
): Promise<BuildResult> {
  const root = opts.root ?? DEFAULT_ROOT;
  const outDir = opts.outDir ?? new URL("static/build/", root);
  const outPath = decodeURIComponent(outDir.pathname).replace(/\/$/, "");
  const islandsDir = new URL("islands/", root);
  const islands: { name: string; path: string }[] = [];
  try {
    for (const e of Deno.readDirSync(islandsDir)) {
      const name = e.isFile ? islandName(e.name) : null;
      if (name) {
        islands.push({
          name,
          path: decodeURIComponent(new URL(e.name, islandsDir).pathname),
        });
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  islands.sort((a, b) => a.name.localeCompare(b.name));

  const tmp = await Deno.makeTempDir({ prefix: "hmi-build-" });
  const t0 = performance.now();
  try {
    const nodeModules = `${tmp}/node_modules`;
    await Deno.mkdir(nodeModules);
    await linkPackages(await lockedPackages(root), nodeModules);
    const options: esbuild.BuildOptions & { metafile: true } = {
      stdin: {
        contents: bootSource(islands),
        resolveDir: decodeURIComponent(root.pathname),
        sourcefile: "boot.js",
        loader: "js",
      },
      bundle: true,
      splitting: true,
      format: "esm",
      platform: "browser",
      target: ["es2022"],
      minify: opts.minify ?? true,
      outdir: outPath,
      entryNames: "boot-[hash]",
      chunkNames: "[name]-[hash]",
      jsx: "automatic",
      jsxImportSource: "preact",
      nodePaths: [nodeModules],
      metafile: true,
      // Metafile paths are relative to this: the project root, not the cwd
      // (`deno run /path/to/start.ts` from elsewhere must build the same).
      absWorkingDir: decodeURIComponent(root.pathname).replace(/\/$/, ""),
      write: true,
      legalComments: "none",
      logLevel: "silent",
      define: { "process.env.NODE_ENV": '"production"' },
    };
    let result: esbuild.BuildResult<typeof options>;
    try {
      result = await esbuild.build(options);
    } catch (e) {
      // A package never downloaded (fresh machine: the server never loads the
      // browser-only modules): let Deno cache the islands' graphs, retry once.
      if (!/Could not resolve/.test(String(e))) throw e;
      opts.log?.("build: caching npm packages of the islands");
      await denoCache(root, islands.map((i) => i.path));
      await Deno.remove(nodeModules, { recursive: true });
      await Deno.mkdir(nodeModules);
      await linkPackages(await lockedPackages(root), nodeModules);
      result = await esbuild.build(options);
    }
    const meta = result.metafile!;
    const rel = (p: string) => `/build/${p.slice(p.lastIndexOf("/") + 1)}`;
    const byEntry = new Map<string, string>();
    let boot = "";
    for (const [out, o] of Object.entries(meta.outputs)) {
      if (!out.endsWith(".js")) continue;
      if (/(^|\/)boot-[A-Z0-9]+\.js$/.test(out)) boot = out;
      else if (o.entryPoint) byEntry.set(o.entryPoint, out);
    }
    const staticImports = (out: string, seen = new Set<string>()) => {
      for (const i of meta.outputs[out]?.imports ?? []) {
        if (i.kind === "import-statement" && !seen.has(i.path)) {
          seen.add(i.path);
          staticImports(i.path, seen);
        }
      }
      return seen;
    };
    const manifest: IslandManifest = {
      boot: rel(boot),
      bootImports: [...staticImports(boot)].map(rel),
      islands: {},
    };
    const rootPath = decodeURIComponent(root.pathname);
    for (const i of islands) {
      const entry = [...byEntry.keys()].find((k) =>
        i.path.endsWith(k) || `${rootPath}${k}` === i.path
      );
      if (!entry) throw new Error(`no chunk for island ${i.name}`);
      const chunk = byEntry.get(entry)!;
      manifest.islands[i.name] = [chunk, ...staticImports(chunk)].map(rel);
    }
    const files: Record<string, number> = {};
    for (const [out, o] of Object.entries(meta.outputs)) {
      files[rel(out)] = o.bytes;
    }
    // Atomic manifest; stale bundles of earlier builds removed (same sources
    // give the same hashed names, so concurrent builds do not fight).
    const tmpManifest = `${outPath}/.manifest-${crypto.randomUUID()}.json`;
    await Deno.writeTextFile(
      tmpManifest,
      JSON.stringify(manifest, null, 2) + "\n",
    );
    await Deno.rename(tmpManifest, `${outPath}/manifest.json`);
    // Precompressed copies, served when the browser accepts gzip: level 9
    // once here instead of on the fly per request (the budgets are gzip).
    for (const f of Object.keys(files).filter((f) => f.endsWith(".js"))) {
      const name = f.slice("/build/".length);
      const gz = gzipSync(await Deno.readFile(`${outPath}/${name}`), {
        level: 9,
      });
      const tmpGz = `${outPath}/.${name}-${crypto.randomUUID()}.gz`;
      await Deno.writeFile(tmpGz, gz);
      await Deno.rename(tmpGz, `${outPath}/${name}.gz`);
    }
    for (const e of Deno.readDirSync(outPath)) {
      const js = e.name.replace(/\.gz$/, "");
      if (e.isFile && js.endsWith(".js") && !(`/build/${js}` in files)) {
        await Deno.remove(`${outPath}/${e.name}`).catch(() => {});
      }
    }
    opts.log?.(
      `build: ${Object.keys(files).length} files in ${
        Math.round(performance.now() - t0)
      } ms -> ${outPath}`,
    );
    return { manifest, files };
  } finally {
    await esbuild.stop();
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) {
  const { files } = await buildIslands({ log: console.log });
  for (const [f, n] of Object.entries(files)) console.log(`  ${f} ${n} B`);
}
