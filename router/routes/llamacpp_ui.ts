/**
 * llama.cpp's own web UI, from the build that `router/engine/webui.ts` keeps in the cache, served
 * with the headers llama-server gives its embedded copy. The UI is found (or built, in the
 * background) once per gateway; until it is there, its pages say why.
 */
import type { Context } from "hono";
import { type Env, join } from "../engine/binary.ts";
import { buildWebui, findWebui, WebuiUnavailableError } from "../engine/webui.ts";

/** llama-server's embedded-asset table (tools/ui/embed.cpp): these types, everything else octet-stream. */
const EMBED_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  css: "text/css",
  js: "application/javascript",
  json: "application/json",
  webmanifest: "application/manifest+json",
  svg: "image/svg+xml",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  ico: "image/x-icon",
  woff: "font/woff",
  woff2: "font/woff2",
};
/** What llama-server revalidates on every load (the PWA's update check reads them); the rest is immutable. */
const NO_CACHE = new Set(["sw.js", "manifest.webmanifest", "_app/version.json", "build.json"]);
/** Types worth compressing: the 9 MB bundle shrinks to about a quarter; images are compressed already. */
const COMPRESSIBLE = /^(text\/|application\/(javascript|json|manifest\+json)|image\/(svg\+xml|x-icon))/;

interface Asset {
  body: Uint8Array<ArrayBuffer>;
  type: string;
  etag: string;
  compressible: boolean;
  /** compressed on first use: most files are never asked for */
  gzipped?: Promise<Uint8Array<ArrayBuffer>>;
}

type State =
  | { kind: "absent" }
  | { kind: "building" }
  | { kind: "ready"; assets: Map<string, Asset>; dir: string }
  | { kind: "unavailable"; reason: string };

export interface LlamacppUiOptions {
  env: Env;
  /** --offline: a missing UI is not built (npm would fetch its packages) */
  offline: boolean;
  log: (line: string) => void;
}

export class LlamacppUi {
  #state: State = { kind: "absent" };
  #lookup: Promise<void> | undefined;
  #build: Promise<void> | undefined;

  constructor(private readonly options: LlamacppUiOptions) {}

  /** Finds the cached build; with `build`, starts building one when there is none. */
  prepare(build: boolean): Promise<void> {
    this.#lookup ??= (async () => {
      try {
        const dir = await findWebui(this.options.env);
        if (dir) this.#state = { kind: "ready", dir, assets: await loadAssets(dir) };
      } catch (error) {
        this.options.log(`llama.cpp web UI: cannot read the cached build: ${(error as Error).message}`);
      }
    })();
    return build ? this.#lookup.then(() => this.#startBuild()) : this.#lookup;
  }

  /** The state after the cached build was looked for, starting a build when `build` and none is there. */
  async state(build: boolean): Promise<State> {
    await this.prepare(build);
    return this.#state;
  }

  /** The state once a build that `prepare` or `state` started has ended (at once when none runs). */
  async settled(): Promise<State> {
    await this.#lookup;
    await this.#build;
    return this.#state;
  }

  #startBuild(): void {
    if (this.#state.kind !== "absent") return;
    const { env, log, offline } = this.options;
    if (offline) {
      this.#state = {
        kind: "unavailable",
        reason: "llama.cpp's web UI is not built, and --offline forbids npm to fetch its packages; " +
          "build it once with `deno task webui`",
      };
      log(`warning: ${this.#state.reason}`);
      return;
    }
    this.#state = { kind: "building" };
    this.#build = (async () => {
      try {
        const dir = await buildWebui({ env, log });
        this.#state = { kind: "ready", dir, assets: await loadAssets(dir) };
      } catch (error) {
        const message = (error as Error).message;
        this.#state = {
          kind: "unavailable",
          reason: error instanceof WebuiUnavailableError
            ? message
            : `building llama.cpp's web UI failed: ${message}`,
        };
        log(`warning: ${this.#state.reason}`);
      }
    })();
  }
}

/**
 * Answers `name` (relative to the UI's root, "" for its page) as llama-server does, or null when
 * the UI has no such file. Unlike llama-server, which refuses (415) a browser that takes no gzip,
 * such a browser gets the file as it is.
 */
export async function serveAsset(
  c: Context,
  assets: Map<string, Asset>,
  name: string,
): Promise<Response | null> {
  const asset = assets.get(name === "" ? "index.html" : name);
  if (!asset) return null;
  const isPage = name === "" || name === "index.html";
  const gzip = asset.compressible && /\bgzip\b/.test(c.req.header("Accept-Encoding") ?? "");
  const headers: Record<string, string> = { "Content-Type": asset.type };
  if (asset.compressible) headers["Vary"] = "Accept-Encoding";
  if (NO_CACHE.has(name)) headers["Cache-Control"] = "no-cache";
  else {
    headers["Cache-Control"] = isPage ? "no-cache" : "public, max-age=31536000, immutable";
    headers["ETag"] = gzip ? asset.etag.replace(/"$/, '-gzip"') : asset.etag;
  }
  if (isPage) {
    // llama-server isolates its page: the UI must keep working under these (no third-party embeds)
    headers["Cross-Origin-Embedder-Policy"] = "require-corp";
    headers["Cross-Origin-Opener-Policy"] = "same-origin";
  }
  const match = c.req.header("If-None-Match");
  if (headers["ETag"] && match && (match === headers["ETag"] || match === `W/${headers["ETag"]}`)) {
    return new Response(null, { status: 304, headers });
  }
  if (!gzip) return new Response(asset.body, { headers });
  const body = await (asset.gzipped ??= compress(asset.body));
  return new Response(body, { headers: { ...headers, "Content-Encoding": "gzip" } });
}

/** A page of our own where the UI should be, while it builds (it reloads itself) or when it cannot be had. */
export function statusPage(state: State): Response {
  const building = state.kind === "building" || state.kind === "absent";
  const text = building
    ? "Building llama.cpp's web UI with npm (about a minute and a half, once). This page reloads itself; " +
      "progress is in the gateway's log."
    : state.kind === "unavailable"
    ? state.reason
    : "";
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
    (building ? `<meta http-equiv="refresh" content="3">` : "") +
    `<title>llama.cpp web UI</title></head><body style="font:16px system-ui;margin:3rem;max-width:40rem">` +
    `<h1 style="font-size:1.3rem">llama.cpp web UI</h1><p>${escapeHtml(text)}</p>` +
    `<p><a href="/switchyard/">Switchyard's own page</a> works meanwhile.</p></body></html>`;
  return new Response(html, {
    status: 503,
    headers: {
      "Content-Type": "text/html; charset=utf-8",
      "Cache-Control": "no-store",
      ...(building ? { "Retry-After": "3" } : {}),
    },
  });
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** Every file of the build, in memory (about 10 MB): the UI is read once, not per request. */
async function loadAssets(dir: string): Promise<Map<string, Asset>> {
  const assets = new Map<string, Asset>();
  const walk = async (sub: string) => {
    for await (const entry of Deno.readDir(join(dir, sub))) {
      const name = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory) await walk(name);
      else if (entry.isFile) assets.set(name, await asset(join(dir, name), name));
    }
  };
  await walk("");
  return assets;
}

async function asset(path: string, name: string): Promise<Asset> {
  const body = await Deno.readFile(path);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
  const etag = `"0x${[...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("")}"`;
  const dot = name.lastIndexOf(".");
  const type = (dot >= 0 && EMBED_TYPES[name.slice(dot + 1)]) || "application/octet-stream";
  return { body, type, etag, compressible: COMPRESSIBLE.test(type) };
}

async function compress(body: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([body]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
