/** The web page: `/` and its assets under `/ui/`, read from the `ui/` folder (embedded when compiled). */
import { Hono } from "hono";

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

export function uiRoutes(): Hono {
  const app = new Hono();
  app.get("/", () => serveFile("index.html"));
  app.get("/ui/:file{[A-Za-z0-9_.-]+}", (c, next) => {
    const file = c.req.param("file");
    return file.startsWith(".") ? next() : serveFile(file);
  });
  return app;
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
