/**
 * `/tools` and `/cors-proxy`, GET and POST, as llama.cpp's router has them: 403 `feature_disabled`
 * unless their flags were given, and otherwise relayed to the tools host (router/features/host.ts),
 * which is llama-server running llama.cpp's own handlers.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { requireAdmin } from "../auth.ts";
import { errorBody, errorObject, errorTypeOf, unavailable } from "../errors.ts";
import type { GatewayDeps } from "../deps.ts";
import type { FeatureHost } from "../features/host.ts";
import { toolsEnabled } from "../features/settings.ts";
import { HOP_REQUEST } from "../proxy.ts";

/** llama.cpp's body, plus the `code` every Switchyard error carries. */
export function featureDisabled(): Response {
  return Response.json(errorObject(403, "feature_disabled", "this feature is disabled"), { status: 403 });
}

export function featureRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  const { features } = deps;
  const tools = features && toolsEnabled(features.settings) ? features : undefined;
  const corsProxy = features?.settings.corsProxy ? features : undefined;
  // what a tool does (run a shell command, write a file) and a proxy to anywhere are not inference
  const adminOnly = (c: Context) => requireAdmin(c, deps.config.adminKeysConfigured);
  app.get("/tools", (c) => tools ? relay(c, deps, tools, "/tools", true) : featureDisabled());
  app.post("/tools", (c) => {
    if (!tools) return featureDisabled();
    adminOnly(c);
    return relay(c, deps, tools, "/tools", true);
  });
  for (const method of ["get", "post"] as const) {
    app[method]("/cors-proxy", (c) => {
      if (!corsProxy) return featureDisabled();
      adminOnly(c);
      return relay(c, deps, corsProxy, "/cors-proxy", false);
    });
  }
  return app;
}

/**
 * Passes the request to the host, and its answer back as it comes (a tool's output may be an event
 * stream). `normalize`: the host's own error bodies get the error shape; llama.cpp's `/tools` sends
 * some as a bare `{"code", "message", "type"}`. `/cors-proxy` answers are the target's, left alone.
 */
async function relay(
  c: Context,
  deps: GatewayDeps,
  host: FeatureHost,
  path: string,
  normalize: boolean,
): Promise<Response> {
  const gone = host.gone;
  if (gone) throw unavailable(gone);
  const req = c.req.raw;
  // the client's credentials stay here, as with engines; the host has a key of its own. (`/cors-proxy`
  // sends its target only the `X-Llama-Server-Proxy-Header-*` headers anyway.)
  const headers: [string, string][] = [["Authorization", host.authorization]];
  for (const header of req.headers) if (!HOP_REQUEST.has(header[0])) headers.push(header);
  let upstream;
  try {
    upstream = await deps.upstream.request({
      port: host.port,
      method: req.method,
      pathAndQuery: path + new URL(req.url).search,
      headers,
      body: req.method === "POST" ? new Uint8Array(await req.arrayBuffer()) : null,
      // a client that leaves ends the tool's stream, or the proxied request
      signal: req.signal,
    });
  } catch (err) {
    if (req.signal.aborted) throw err;
    throw unavailable(`the tools host did not answer: ${(err as Error).message}`);
  }
  // without framing, `Server` or CORS fields (the upstream client leaves them out): CORS is the gateway's
  const out = upstream.headers;
  if (normalize && upstream.status >= 400 && upstream.bytes) {
    return new Response(errorShaped(upstream.status, upstream.bytes), {
      status: upstream.status,
      headers: { "Content-Type": "application/json; charset=utf-8" },
    });
  }
  return new Response(upstream.bytes ?? upstream.stream, { status: upstream.status, headers: out });
}

/** `{"error": {"code", "message", "type"}}` out of whatever error body the host sent. */
function errorShaped(status: number, bytes: Uint8Array): string {
  const text = new TextDecoder().decode(bytes);
  let parsed: Record<string, unknown> = {};
  try {
    const value = JSON.parse(text);
    if (value && typeof value === "object" && !Array.isArray(value)) parsed = value;
  } catch { /* not JSON: the text is the message */ }
  const inner = parsed.error && typeof parsed.error === "object"
    ? parsed.error as Record<string, unknown>
    : parsed;
  const message = typeof inner.message === "string" ? inner.message : text.trim() || `HTTP ${status}`;
  const type = typeof inner.type === "string" ? inner.type : errorTypeOf(status);
  return errorBody(status, type, message);
}
