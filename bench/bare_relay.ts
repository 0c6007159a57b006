/**
 * A bare relay in front of one llama-server, for the bench's floor rows (bench/floor.ts): what any proxy
 * written on Deno adds to a streamed answer before it does anything of its own. It forwards every POST to
 * the engine with the gateway's own upstream client (router/upstream/) and passes the answer through.
 *
 *   --mode deno   `Deno.serve` and the upstream stream as the response body: nothing else on the path
 *   --mode hono   the same inside a Hono app with `bodyLimit` and one pass-through middleware, the
 *                 answer relayed through one more ReadableStream: the skeleton of Switchyard's path
 *
 * Usage: deno run -A bench/bare_relay.ts --engine-port N --mode deno|hono --host 127.0.0.1 --port P
 */
import { parseArgs } from "node:util";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { UpstreamPool } from "../router/upstream/http1.ts";

export type RelayMode = "deno" | "hono";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "engine-port": { type: "string" },
    mode: { type: "string", default: "deno" },
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
  },
});
const enginePort = Number(values["engine-port"]);
const mode = values.mode as RelayMode;
if (!Number.isInteger(enginePort) || enginePort <= 0 || (mode !== "deno" && mode !== "hono")) {
  console.error("usage: bare_relay.ts --engine-port N --mode deno|hono [--host H] [--port P]");
  Deno.exit(2);
}

const pool = new UpstreamPool();

/** The answer through one more stream, pulled chunk by chunk, as Switchyard's relay does. */
function relayed(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

async function forward(req: Request): Promise<Response> {
  const url = new URL(req.url);
  if (req.method === "GET" && url.pathname === "/health") return Response.json({ status: "ok" });
  const upstream = await pool.request({
    port: enginePort,
    method: req.method,
    pathAndQuery: url.pathname + url.search,
    headers: [["content-type", req.headers.get("content-type") ?? "application/json"]],
    body: req.body ? new Uint8Array(await req.arrayBuffer()) : null,
    signal: req.signal,
  });
  const body = upstream.bytes ??
    (upstream.stream && mode === "hono" ? relayed(upstream.stream) : upstream.stream);
  return new Response(body, { status: upstream.status, headers: upstream.headers });
}

const app = new Hono();
app.use("*", bodyLimit({ maxSize: 10 * 1024 * 1024 }));
app.use("*", async (_c, next) => {
  await next();
});
app.all("*", (c) => forward(c.req.raw));

Deno.serve(
  { hostname: values.host, port: Number(values.port), onListen: () => {} },
  mode === "hono" ? app.fetch : forward,
);
