/**
 * The web pages. Switchyard's own page (the `ui/` folder, embedded when compiled) is at
 * `/switchyard/`, its assets under `/ui/`; llama.cpp's web UI, built into the cache by
 * `router/engine/webui.ts`, is at `/llamacpp/`. `--webui` picks which of the two `/` shows, and
 * `--path DIR` puts a folder of one's own there instead, as llama-server does.
 */
import { type Context, Hono, type Next } from "hono";
import type { WebuiPage } from "../config.ts";
import type { Env } from "../engine/binary.ts";
import { LlamacppUi, serveAsset, statusPage } from "./llamacpp_ui.ts";
import { staticDir } from "./static_dir.ts";

/** Where Switchyard's own page always is, whatever `/` shows. */
export const SWITCHYARD_PAGE = "/switchyard/";
/** Where llama.cpp's web UI always is (below `--api-prefix`). */
export const LLAMACPP_MOUNT = "/llamacpp";

export interface UiOptions {
  /** what `/` shows (default: Switchyard's own page) */
  home?: WebuiPage;
  /** `--path DIR`: this folder is served at `/` instead, file by file */
  staticPath?: string;
  /** `--api-prefix`: llama.cpp's UI and `--path` live below it, as in llama-server */
  apiPrefix?: string;
  /** --offline: llama.cpp's UI is never built (npm would fetch its packages) */
  offline?: boolean;
  /** where the UI cache is and where npm is (default: the process's environment) */
  env?: Env;
  log?: (line: string) => void;
}

const UI_ROOT = new URL("../../ui/", import.meta.url);
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
  json: "application/json",
};

export function uiRoutes(options: UiOptions = {}): Hono {
  const prefix = options.apiPrefix ?? "";
  const log = options.log ?? ((line: string) => console.error(line));
  const app = new Hono();
  // built (or looked for) only when its page is first asked for, or at once when `/` is to show it
  const llamacpp = new LlamacppUi({
    env: options.env ?? Deno.env.toObject(),
    offline: !!options.offline,
    log,
  });

  // llama-server answers a GET for a file of --path before any route
  if (options.staticPath) app.use(`${prefix}/*`, staticDir(`${prefix}/`, options.staticPath));

  app.get("/ui/:file{[A-Za-z0-9_.-]+}", (c, next) => {
    const file = c.req.param("file");
    return file.startsWith(".") ? next() : serveFile(file);
  });
  app.get(SWITCHYARD_PAGE, () => serveFile("index.html"));
  app.get(SWITCHYARD_PAGE.slice(0, -1), (c) => c.redirect(SWITCHYARD_PAGE, 301));

  const mount = prefix + LLAMACPP_MOUNT;
  // the UI's assets are relative to its page: without the slash they would be looked for at `/`
  app.get(mount, (c) => c.redirect(`${mount}/`, 301));
  app.get(`${mount}/*`, (c, next) => serveLlamacpp(c, next, llamacpp, c.req.path.slice(mount.length + 1)));

  if (options.staticPath) return app;
  if ((options.home ?? "switchyard") === "switchyard") {
    app.get("/", () => serveFile("index.html"));
    return app;
  }
  // `/` is to show it: look for it (or build it) now, not at the first visit
  llamacpp.prepare(true).then(() => llamacpp.settled()).then((state) => {
    if (state.kind === "unavailable") log(`--webui llamacpp: / shows Switchyard's own page instead`);
  });
  app.get(
    `${prefix}/*`,
    (c, next) => serveLlamacpp(c, next, llamacpp, c.req.path.slice(prefix.length + 1), true),
  );
  return app;
}

/**
 * llama.cpp's UI calls the API relative to its page, so at `/llamacpp/` it asks for
 * `/llamacpp/v1/models`: such a request (not a file of the UI) is answered as the same request
 * without `/llamacpp`, by the whole app, so that it is routed, authorised and proxied (to the
 * engine's own path) exactly like the original. Registered after every other route.
 */
export function llamacppApiAlias(app: Hono, apiPrefix: string): void {
  const mount = apiPrefix + LLAMACPP_MOUNT;
  app.all(`${mount}/*`, (c) => {
    const url = new URL(c.req.url);
    url.pathname = apiPrefix + url.pathname.slice(mount.length);
    return app.fetch(new Request(url, c.req.raw), c.env);
  });
}

/**
 * A file of llama.cpp's UI, or the next route when it has none. Its page, while the UI is being
 * built or cannot be, says so; at `/` (`home`), a UI that cannot be had gives way to our own page.
 */
async function serveLlamacpp(
  c: Context,
  next: Next,
  ui: LlamacppUi,
  name: string,
  home = false,
): Promise<Response | void> {
  const state = await ui.state(true);
  if (state.kind === "ready") return await serveAsset(c, state.assets, name) ?? await next();
  if (name !== "" && name !== "index.html") return await next();
  if (home && state.kind === "unavailable") return await serveFile("index.html");
  return statusPage(state);
}

async function serveFile(name: string): Promise<Response> {
  try {
    const body = await Deno.readFile(new URL(name, UI_ROOT));
    const type = TYPES[name.slice(name.lastIndexOf(".") + 1)] ?? "application/octet-stream";
    return new Response(body, { headers: { "Content-Type": type, "Cache-Control": "no-cache" } });
  } catch {
    return Response.json({ error: { code: 404, message: "File Not Found", type: "not_found_error" } }, {
      status: 404,
    });
  }
}
