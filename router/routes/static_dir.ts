/**
 * `--path DIR`: a folder served the way llama-server serves it (cpp-httplib's mount point). A GET or
 * HEAD whose path names a file under the mount is answered with that file before any route is
 * tried; `…/` means `…/index.html`; a folder without its slash is redirected to it; anything else
 * falls through to the routes (and so to the JSON 404). There is no single-page-app fallback.
 */
import type { MiddlewareHandler } from "hono";

/** cpp-httplib's extension table: llama-server sends these types, without a charset. */
const HTTPLIB_TYPES: Record<string, string> = {
  css: "text/css",
  csv: "text/csv",
  htm: "text/html",
  html: "text/html",
  js: "text/javascript",
  mjs: "text/javascript",
  txt: "text/plain",
  vtt: "text/vtt",
  apng: "image/apng",
  avif: "image/avif",
  bmp: "image/bmp",
  gif: "image/gif",
  png: "image/png",
  svg: "image/svg+xml",
  webp: "image/webp",
  ico: "image/x-icon",
  tif: "image/tiff",
  tiff: "image/tiff",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  mp4: "video/mp4",
  mpeg: "video/mpeg",
  webm: "video/webm",
  mp3: "audio/mp3",
  mpga: "audio/mpeg",
  weba: "audio/webm",
  wav: "audio/wave",
  otf: "font/otf",
  ttf: "font/ttf",
  woff: "font/woff",
  woff2: "font/woff2",
  "7z": "application/x-7z-compressed",
  atom: "application/atom+xml",
  pdf: "application/pdf",
  json: "application/json",
  rss: "application/rss+xml",
  tar: "application/x-tar",
  xht: "application/xhtml+xml",
  xhtml: "application/xhtml+xml",
  xslt: "application/xslt+xml",
  xml: "application/xml",
  gz: "application/gzip",
  zip: "application/zip",
  wasm: "application/wasm",
};

export function contentTypeOf(name: string, table: Record<string, string> = HTTPLIB_TYPES): string {
  const dot = name.lastIndexOf(".");
  return (dot >= 0 && table[name.slice(dot + 1).toLowerCase()]) || "application/octet-stream";
}

/**
 * Serves `dir` under `mount` (which ends with `/`). Unlike cpp-httplib, which redirects a folder to
 * its path below the mount (wrong under `--api-prefix`), the redirect keeps the whole path.
 */
export function staticDir(mount: string, dir: string): MiddlewareHandler {
  const root = Deno.realPathSync(dir);
  return async (c, next) => {
    if (c.req.method !== "GET" && c.req.method !== "HEAD") return await next();
    const path = c.req.path;
    if (!path.startsWith(mount)) return await next();
    const sub = decodedSubPath(path.slice(mount.length));
    if (sub === null) return await next();
    const file = `${root}/${sub}${sub === "" || sub.endsWith("/") ? "index.html" : ""}`;
    let real: string;
    let info: Deno.FileInfo;
    try {
      real = await Deno.realPath(file);
      info = await Deno.stat(real);
    } catch {
      return await next();
    }
    // a link inside the folder must not lead out of it
    if (real !== root && !real.startsWith(root + "/")) return c.body(null, 403);
    if (info.isDirectory) return c.redirect(path + "/", 301);
    if (!info.isFile) return await next();
    const etag = `W/"${hex(mtimeSeconds(info))}-${hex(info.size)}"`;
    const headers: Record<string, string> = { ETag: etag };
    if (info.mtime) headers["Last-Modified"] = info.mtime.toUTCString();
    if (notModified(c.req.raw.headers, etag, info.mtime)) return new Response(null, { status: 304, headers });
    headers["Content-Type"] = contentTypeOf(real);
    headers["Content-Length"] = String(info.size);
    if (c.req.method === "HEAD") return new Response(null, { headers });
    const handle = await Deno.open(real, { read: true });
    return new Response(handle.readable, { headers });
  };
}

/**
 * The path below the mount, percent-decoded, or null when it is not a plain relative path
 * (`..`, NUL, a backslash, or bad escapes): those never reach the disk, as in cpp-httplib.
 */
function decodedSubPath(raw: string): string | null {
  let sub: string;
  try {
    sub = decodeURIComponent(raw);
  } catch {
    return null;
  }
  if (sub.includes("\0") || sub.includes("\\") || sub.startsWith("/")) return null;
  return sub.split("/").includes("..") ? null : sub;
}

/** RFC 9110: If-None-Match wins; If-Modified-Since only when it is absent. */
function notModified(headers: Headers, etag: string, mtime: Date | null): boolean {
  const match = headers.get("If-None-Match");
  if (match !== null) return match.split(",").some((tag) => tag.trim() === "*" || tag.trim() === etag);
  const since = headers.get("If-Modified-Since");
  if (since === null || !mtime) return false;
  const t = Date.parse(since);
  return !Number.isNaN(t) && Math.floor(mtime.getTime() / 1000) * 1000 <= t;
}

function mtimeSeconds(info: Deno.FileInfo): number {
  return info.mtime ? Math.floor(info.mtime.getTime() / 1000) : 0;
}

function hex(n: number): string {
  return n.toString(16);
}
