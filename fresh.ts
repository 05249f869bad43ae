/**
 * A small Fresh-shaped serving layer on npm:hono and npm:preact: the only
 * hand-written web glue of the HMI. It keeps Fresh's layout and contracts
 * so moving to real Fresh later is mechanical:
 *
 * - `routes/`: file routes. `index.tsx` is `/`, `api/health.ts` is
 *   `/api/health`, `[id].tsx` is `/:id`. A route module exports a `default`
 *   page component (`PageProps`) and/or a `handler` (function or per-method
 *   object whose `ctx.render(data)` renders the page). `_app.tsx` is the page
 *   shell (`AppProps`), `_404.tsx` the not-found page.
 * - `islands/`: default-export Preact components. Routes import them directly;
 *   at render time each island is wrapped in a marker element and its props
 *   are serialized as JSON (safe inside `<script>`), and a boot script built
 *   by `build.ts` hydrates them in the browser.
 * - `static/`: files served as is with an ETag and `Cache-Control:
 *   no-cache` (revalidate); `static/build/` holds hashed bundles, served
 *   with `Cache-Control: immutable` and precompressed (`.gz`, written by
 *   build.ts) when the client accepts gzip. Other text responses are
 *   compressed on the fly.
 * - optional HTTP Basic auth in front of everything but `open` paths.
 *
 * @example
 * ```ts
 * const manifest = await buildIslands({ root: new URL(".", import.meta.url) });
 * const app = await createApp({ root, manifest, state: { cfg }, csp });
 * Deno.serve({ port: 8000 }, app.fetch);
 * ```
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { serveStatic as baseServeStatic } from "hono/serve-static";
import type { ServeStaticOptions } from "hono/serve-static";
import { join } from "node:path";
import { basicAuth } from "hono/basic-auth";
import { compress } from "hono/compress";
import { etag } from "hono/etag";
import { HTTPException } from "hono/http-exception";
import { type ComponentType, h, options, type VNode } from "preact";
import { renderToString } from "preact-render-to-string";

// ---- Types (Fresh's names) ----------------------------------------------

export interface PageProps<D = unknown, S = Record<string, unknown>> {
  url: URL;
  params: Record<string, string>;
  data: D;
  state: S;
}

export interface AppProps<S = Record<string, unknown>> {
  Component: ComponentType;
  url: URL;
  state: S;
}

export interface RouteContext<S = Record<string, unknown>> {
  url: URL;
  params: Record<string, string>;
  state: S;
  /** Render the route's page component with `data`. */
  render(data?: unknown, init?: ResponseInit): Response;
}

export type Handler<S = Record<string, unknown>> = (
  req: Request,
  ctx: RouteContext<S>,
) => Response | Promise<Response>;

export type Handlers<S = Record<string, unknown>> = Partial<
  Record<"GET" | "POST" | "PUT" | "PATCH" | "DELETE", Handler<S>>
>;

export interface RouteModule {
  // deno-lint-ignore no-explicit-any
  default?: ComponentType<PageProps<any, any>>;
  // deno-lint-ignore no-explicit-any
  handler?: Handler<any> | Handlers<any>;
}

/** Written by `build.ts` to `static/build/manifest.json`. */
export interface IslandManifest {
  /** URL of the hydration boot module. */
  boot: string;
  /** Island name -> URLs to modulepreload (its chunk and its imports). */
  islands: Record<string, string[]>;
  /** URLs the boot module imports statically. */
  bootImports: string[];
}

export interface AppOptions<S> {
  /** Project root (directory URL) holding routes/, islands/, static/. */
  root: URL;
  manifest: IslandManifest;
  /** Passed to every handler and page as `state`. */
  state: S;
  /** Content-Security-Policy header value for every response. */
  csp: string;
  /** HTTP Basic auth for every path but `open` ones; none: no auth. */
  auth?: BasicAuthOptions;
}

export interface BasicAuthOptions {
  realm: string;
  users: { username: string; password: string }[];
  /** Paths served without credentials (exact matches). */
  open?: string[];
}

/**
 * hono's static file middleware reading whole files (ours are small). Not
 * hono/deno's: that one opens a file stream and, when it then serves the
 * precompressed `.gz` instead, never closes the first file.
 */
function serveStatic(o: ServeStaticOptions) {
  const isFile = async (path: string) => {
    try {
      return (await Deno.stat(path)).isFile;
    } catch {
      return false;
    }
  };
  return baseServeStatic({
    ...o,
    join,
    isDir: async (path) => {
      try {
        return (await Deno.stat(path)).isDirectory;
      } catch {
        return false;
      }
    },
    getContent: async (path) => {
      if (!await isFile(path)) return null;
      try {
        return await Deno.readFile(path);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return null;
        throw e;
      }
    },
  });
}

/** A hashed bundle name written by build.ts (`chunk-ABCD1234.js`). */
const HASHED = /-[A-Z0-9]{8}\.js$/;

// ---- Islands -------------------------------------------------------------

const islandNames = new Map<ComponentType, string>();

interface RenderState {
  islands: { id: number; name: string; props: unknown }[];
}
let rendering: RenderState | null = null;
/** Set while IslandHost creates the island's own vnode (not to wrap it again). */
let bypass = false;

/** Marker element the boot script hydrates into. */
function IslandHost(
  p: { id: number; c: ComponentType; p: Record<string, unknown> },
): VNode {
  bypass = true;
  let inner: VNode;
  try {
    inner = h(p.c, p.p);
  } finally {
    bypass = false;
  }
  return h("div", { "data-frsh-island": String(p.id) }, inner) as VNode;
}

const prevVnode = options.vnode;
options.vnode = (vnode) => {
  const name = rendering && !bypass && typeof vnode.type === "function"
    ? islandNames.get(vnode.type as ComponentType)
    : undefined;
  if (rendering && name !== undefined) {
    const { children: _children, ...props } = vnode.props as Record<
      string,
      unknown
    >;
    const id = rendering.islands.length;
    rendering.islands.push({ id, name, props });
    // deno-lint-ignore no-explicit-any
    const v = vnode as any;
    v.props = { id, c: vnode.type, p: props };
    v.type = IslandHost;
  }
  prevVnode?.(vnode);
};

/**
 * A JSON answer no cache keeps (every API answer here is live data).
 *
 * @example
 * ```ts
 * if (!p.ok) return noStoreJson({ error: p.error }, 400);
 * ```
 */
export function noStoreJson(
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  return Response.json(body, {
    status,
    headers: { "Cache-Control": "no-store", ...headers },
  });
}

/**
 * JSON that is safe inside a `<script>` element: `<`, `>`, `&` and the line
 * separators are escaped, so no payload can close the element.
 */
export function serializeJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function escapeAttr(s: string): string {
  return s.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Register the default exports of `islands/*.tsx` as islands. */
export async function loadIslands(dir: URL): Promise<string[]> {
  const names: string[] = [];
  for (const file of await listFiles(dir)) {
    const name = islandName(file);
    if (!name) continue;
    const mod = await import(new URL(file, dir).href);
    if (typeof mod.default !== "function") {
      throw new Error(`islands/${file}: default export is not a component`);
    }
    islandNames.set(mod.default, name);
    names.push(name);
  }
  return names;
}

/** `LiveHmi.tsx` -> `LiveHmi`; null for non-island files. */
export function islandName(file: string): string | null {
  const m = /^([A-Za-z][A-Za-z0-9_]*)\.(tsx|jsx|ts|js)$/.exec(file);
  return m ? m[1] : null;
}

// ---- Routes --------------------------------------------------------------

async function listFiles(dir: URL, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return out;
    throw e;
  }
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    if (e.isDirectory) {
      out.push(
        ...await listFiles(new URL(`${e.name}/`, dir), `${prefix}${e.name}/`),
      );
    } else if (/\.(tsx|ts|jsx|js)$/.test(e.name) && !/_test\./.test(e.name)) {
      out.push(prefix + e.name);
    }
  }
  return out;
}

/** `index.tsx` -> `/`, `api/health.ts` -> `/api/health`, `[id].tsx` -> `/:id`. */
export function routePattern(file: string): string {
  const segs = file.replace(/\.(tsx|ts|jsx|js)$/, "").split("/");
  if (segs[segs.length - 1] === "index") segs.pop();
  const mapped = segs.map((s) => {
    const m = /^\[(\.\.\.)?([A-Za-z0-9_]+)\]$/.exec(s);
    if (!m) return s;
    return m[1] ? `:${m[2]}{.+}` : `:${m[2]}`;
  });
  return "/" + mapped.join("/");
}

// ---- Rendering -----------------------------------------------------------

function renderDocument<S>(
  app: ComponentType<AppProps<S>>,
  page: ComponentType<PageProps<unknown, S>>,
  props: PageProps<unknown, S>,
  manifest: IslandManifest,
): string {
  const state: RenderState = { islands: [] };
  rendering = state;
  let body: string;
  try {
    const Component = () => h(page, props);
    body = renderToString(
      h(app, { Component, url: props.url, state: props.state }),
    );
  } finally {
    rendering = null;
  }
  let html = body.startsWith("<!DOCTYPE") ? body : `<!DOCTYPE html>${body}`;
  if (state.islands.length > 0) {
    const preload = new Set<string>([manifest.boot, ...manifest.bootImports]);
    for (const i of state.islands) {
      for (const u of manifest.islands[i.name] ?? []) preload.add(u);
    }
    const links = [...preload].map((u) =>
      `<link rel="modulepreload" href="${escapeAttr(u)}">`
    ).join("");
    const tail = `<script id="__FRSH_STATE" type="application/json">${
      serializeJson(state.islands)
    }</script><script type="module" src="${
      escapeAttr(manifest.boot)
    }"></script>`;
    html = insertBefore(html, "</head>", links);
    html = insertBefore(html, "</body>", tail);
  }
  return html;
}

function insertBefore(html: string, tag: string, text: string): string {
  const i = html.lastIndexOf(tag);
  return i < 0 ? html + text : html.slice(0, i) + text + html.slice(i);
}

function DefaultApp({ Component }: AppProps): VNode {
  return h("html", null, h("head", null), h("body", null, h(Component, null)));
}

const HTML_HEADERS = {
  "Content-Type": "text/html; charset=utf-8",
  "Cache-Control": "no-cache",
};

/** Build the Hono app: static files, discovered routes, headers, 404. */
export async function createApp<S>(opts: AppOptions<S>): Promise<Hono> {
  const { root, manifest, state, csp, auth } = opts;
  await loadIslands(new URL("islands/", root));
  const routesDir = new URL("routes/", root);
  const files = await listFiles(routesDir);
  const load = async (f: string) =>
    (await import(new URL(f, routesDir).href)) as RouteModule;
  const appFile = files.find((f) => /^_app\.(tsx|jsx|ts|js)$/.test(f));
  const notFoundFile = files.find((f) => /^_404\.(tsx|jsx|ts|js)$/.test(f));
  const App = (appFile ? (await load(appFile)).default : DefaultApp) as
    | ComponentType<AppProps<S>>
    | undefined ?? DefaultApp;
  const NotFound = notFoundFile ? (await load(notFoundFile)).default : null;

  const hono = new Hono();
  // Text responses on the fly (gzip/deflate as the client accepts); the
  // precompressed bundles already carry Content-Encoding and are left alone.
  hono.use("*", compress());
  hono.use("*", async (c, next) => {
    await next();
    const hd = c.res.headers;
    hd.set("Content-Security-Policy", csp);
    hd.set("X-Content-Type-Options", "nosniff");
    hd.set("Referrer-Policy", "no-referrer");
    hd.set("X-Frame-Options", "DENY");
  });
  if (auth) {
    if (auth.users.length === 0) throw new Error("basic auth without users");
    const verify = await userVerifier(auth.users);
    const check = basicAuth({
      realm: auth.realm,
      verifyUser: (username, password) => verify(username, password),
    });
    const open = new Set(auth.open ?? []);
    hono.use("*", (c, next) => open.has(c.req.path) ? next() : check(c, next));
  }

  const staticRoot = decodeURIComponent(new URL("static", root).pathname);
  hono.use(
    "/build/*",
    etag({ weak: true }),
    serveStatic({
      root: staticRoot,
      precompressed: true,
      onFound: (path, c) => {
        c.header(
          "Cache-Control",
          HASHED.test(path)
            ? "public, max-age=31536000, immutable"
            : "no-cache",
        );
      },
    }),
  );

  const render404 = (url: URL): Response => {
    if (!NotFound) {
      return new Response("Not found\n", {
        status: 404,
        headers: { "Content-Type": "text/plain; charset=utf-8" },
      });
    }
    const html = renderDocument(App, NotFound, {
      url,
      params: {},
      data: undefined,
      state,
    }, manifest);
    return new Response(html, { status: 404, headers: HTML_HEADERS });
  };

  const routes = files.filter((f) =>
    !f.split("/").some((s) => s.startsWith("_"))
  );
  // Static segments before dynamic ones, as Fresh orders them.
  routes.sort((a, b) => Number(a.includes("[")) - Number(b.includes("[")));
  for (const file of routes) {
    const mod = await load(file);
    const page = mod.default;
    const handle = async (c: Context): Promise<Response> => {
      const url = new URL(c.req.url);
      const params = c.req.param() as Record<string, string>;
      const ctx: RouteContext<S> = {
        url,
        params,
        state,
        render(data?: unknown, init?: ResponseInit) {
          if (!page) throw new Error(`routes/${file} has no page component`);
          const html = renderDocument(
            App,
            page,
            { url, params, data, state },
            manifest,
          );
          const headers = new Headers(HTML_HEADERS);
          new Headers(init?.headers).forEach((v, k) => headers.set(k, v));
          return new Response(html, { status: init?.status ?? 200, headers });
        },
      };
      const h = mod.handler;
      const method = c.req.method === "HEAD" ? "GET" : c.req.method;
      if (typeof h === "function") return await h(c.req.raw, ctx);
      const fn = h?.[method as keyof Handlers];
      if (fn) return await fn(c.req.raw, ctx);
      if (page && !h && method === "GET") return ctx.render();
      if (page && method === "GET" && !h?.GET) return ctx.render();
      return new Response("Method not allowed\n", {
        status: 405,
        headers: { "Content-Type": "text/plain; charset=utf-8" },
      });
    };
    hono.all(routePattern(file), handle);
  }

  // Unhashed files (styles.css, favicon.svg) may change in place: revalidate.
  // Weak ETags: the same on a 200 and a 304, gzip or not (compress() turns a
  // strong one weak only when it compresses a body).
  hono.use(
    "*",
    etag({ weak: true }),
    serveStatic({
      root: staticRoot,
      onFound: (_path, c) => {
        c.header("Cache-Control", "no-cache");
      },
    }),
  );
  hono.notFound((c) => render404(new URL(c.req.url)));
  hono.onError((err, c) => {
    // Basic auth's 401 (with its WWW-Authenticate challenge) is an answer.
    if (err instanceof HTTPException) return err.getResponse();
    console.error(
      `${c.req.method} ${new URL(c.req.url).pathname}: ${err.message}`,
    );
    return new Response("Internal server error\n", {
      status: 500,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    });
  });
  return hono;
}

/**
 * A check of `username:password` against `users`. Digests of the known
 * credentials are computed once; every entry is compared in constant time,
 * so the timing does not tell which users exist or how much matched.
 */
export async function userVerifier(
  users: { username: string; password: string }[],
): Promise<(username: string, password: string) => Promise<boolean>> {
  const digest = async (s: string) =>
    new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)),
    );
  const known = await Promise.all(
    users.map(async (
      x,
    ) => [await digest(x.username), await digest(x.password)]),
  );
  return async (username, password) => {
    const [u, p] = await Promise.all([digest(username), digest(password)]);
    let ok = false;
    for (const [eu, ep] of known) {
      let diff = 0;
      for (let i = 0; i < u.length; i++) {
        diff |= (u[i] ^ eu[i]) | (p[i] ^ ep[i]);
      }
      if (diff === 0) ok = true;
    }
    return ok;
  };
}
