/**
 * Forwards one request to a model's llama-server and streams the answer back without buffering.
 * Connections to engines are pooled by Deno's fetch; a client that disconnects aborts the upstream
 * request (so the engine stops generating); the lease on the model is released when the response
 * body ends, fails or is cancelled, never earlier.
 */
import { errorBody, errorTypeOf } from "./errors.ts";
import type { Lease } from "./scheduler/scheduler.ts";

/**
 * Request headers not forwarded: those that describe the client's connection, and the client's
 * credentials, which are the gateway's business (engines never hold keys) and, as a browser's
 * cookies, can outgrow the engine's 8 KB header limit.
 */
const HOP_REQUEST = [
  "host",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
  "accept-encoding",
  "authorization",
  "x-api-key",
  "cookie",
];
/** Response headers the gateway sets itself. */
const HOP_RESPONSE = ["connection", "keep-alive", "transfer-encoding", "content-length", "server"];

export interface ForwardOptions {
  lease: Lease;
  /** path and query as the engine should see them */
  pathAndQuery: string;
  body: ArrayBuffer | null;
  /** aborts when the client goes away or the request times out */
  signal: AbortSignal;
}

export async function forward(req: Request, opts: ForwardOptions): Promise<Response> {
  const headers = new Headers(req.headers);
  for (const h of HOP_REQUEST) headers.delete(h);
  let upstream: Response;
  try {
    upstream = await fetch(`http://127.0.0.1:${opts.lease.port}${opts.pathAndQuery}`, {
      method: req.method,
      headers,
      body: opts.body,
      signal: opts.signal,
      redirect: "manual",
    });
  } catch (err) {
    opts.lease.release();
    if (opts.signal.aborted) throw opts.signal.reason ?? err;
    throw new UpstreamError(`model ${opts.lease.modelId} did not answer: ${(err as Error).message}`);
  }
  const out = new Headers(upstream.headers);
  for (const h of HOP_RESPONSE) out.delete(h);
  for (const h of [...out.keys()]) if (h.startsWith("access-control-")) out.delete(h);
  out.set("X-Accel-Buffering", "no");
  if (!upstream.body) {
    opts.lease.release();
    return new Response(null, { status: upstream.status, headers: out });
  }
  const type = out.get("content-type") ?? "";
  if (upstream.status >= 400 && !type.includes("json") && !type.includes("text/event-stream")) {
    // an engine's bare error (cpp-httplib answers some with an empty body) gets the error shape too
    const text = (await upstream.text()).trim().slice(0, 2000);
    opts.lease.release();
    const message = text || `model ${opts.lease.modelId} answered HTTP ${upstream.status}`;
    return new Response(errorBody(upstream.status, errorTypeOf(upstream.status), message), {
      status: upstream.status,
      headers: { "Content-Type": "application/json; charset=utf-8" },
    });
  }
  const isEventStream = type.includes("text/event-stream");
  return new Response(releasing(upstream.body, opts.lease, isEventStream, opts.lease.modelId), {
    status: upstream.status,
    headers: out,
  });
}

export class UpstreamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UpstreamError";
  }
}

/**
 * Passes the body through chunk by chunk, releasing the lease exactly once at its end. When the
 * engine dies mid-stream, an event stream gets a final error event so the client knows why it ended.
 */
function releasing(
  body: ReadableStream<Uint8Array>,
  lease: Lease,
  isEventStream: boolean,
  modelId: string,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          lease.release();
          controller.close();
        } else {
          controller.enqueue(value);
        }
      } catch (err) {
        lease.release();
        if (isEventStream) {
          const message = `model ${modelId} stopped answering: ${(err as Error).message}`;
          const event = { error: { code: 502, message, type: "server_error" } };
          controller.enqueue(new TextEncoder().encode(`data: ${JSON.stringify(event)}\n\n`));
          controller.close();
        } else {
          controller.error(err);
        }
      }
    },
    cancel(reason) {
      lease.release();
      return reader.cancel(reason);
    },
  });
}
