/**
 * Forwards one request to a model's llama-server and relays the answer. Connections to engines are
 * kept alive in a pool of our own HTTP/1.1 client (router/upstream/), which costs a fraction of
 * `fetch` per request. Streams (SSE) pass through chunk by chunk as they arrive; a short answer of
 * known length (up to 1 MiB) is relayed whole. A client that disconnects aborts the upstream request,
 * so the engine stops generating; the lease on the model is released when the answer has been
 * relayed, or failed, never earlier.
 */
import { errorBody, errorTypeOf } from "./errors.ts";
import type { RequestTap } from "./metrics/tap.ts";
import type { Lease } from "./scheduler/scheduler.ts";
import { UpstreamError, type UpstreamPool } from "./upstream/http1.ts";

/**
 * Request headers not forwarded: those that describe the client's connection, and the client's
 * credentials, which are the gateway's business (engines never hold keys) and, as a browser's
 * cookies, can outgrow the engine's 8 KB header limit.
 */
export const HOP_REQUEST = new Set([
  "host",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
  "accept-encoding",
  "authorization",
  "x-api-key",
  "cookie",
]);

export interface ForwardOptions {
  pool: UpstreamPool;
  lease: Lease;
  /** path and query as the engine should see them */
  pathAndQuery: string;
  body: ArrayBuffer | null;
  /** aborts when the client goes away or the request times out */
  signal: AbortSignal;
  /** observes the answer for the metrics (absent with --no-metrics) */
  tap?: RequestTap;
}

export async function forward(req: Request, opts: ForwardOptions): Promise<Response> {
  const { lease } = opts;
  const headers: [string, string][] = [];
  for (const header of req.headers) if (!HOP_REQUEST.has(header[0])) headers.push(header);
  let upstream;
  try {
    upstream = await opts.pool.request({
      port: lease.port,
      method: req.method,
      pathAndQuery: opts.pathAndQuery,
      headers,
      body: opts.body ? new Uint8Array(opts.body) : null,
      signal: opts.signal,
    });
  } catch (err) {
    lease.release();
    if (opts.signal.aborted) throw opts.signal.reason ?? err;
    const message = `model ${lease.modelId} did not answer: ${(err as Error).message}`;
    // only a request the engine never began to answer may be sent again
    throw new EngineUnreachableError(message, !(err instanceof UpstreamError) || err.beforeResponse);
  }
  // framing, `Server` and CORS fields are left out by the upstream client (head.ts)
  const out = upstream.headers;
  const type = out.get("content-type") ?? "";
  const isEventStream = type.includes("text/event-stream");
  if (upstream.status >= 400 && !type.includes("json") && !isEventStream) {
    // an engine's bare error (cpp-httplib answers some with an empty body) gets the error shape too
    const raw = upstream.bytes ??
      (upstream.stream ? new Uint8Array(await new Response(upstream.stream).arrayBuffer()) : null);
    lease.release();
    const text = raw ? new TextDecoder().decode(raw).trim().slice(0, 2000) : "";
    const message = text || `model ${lease.modelId} answered HTTP ${upstream.status}`;
    return new Response(errorBody(upstream.status, errorTypeOf(upstream.status), message), {
      status: upstream.status,
      headers: { "Content-Type": "application/json; charset=utf-8" },
    });
  }
  const { tap } = opts;
  if (!upstream.stream) {
    lease.release();
    tap?.body(upstream.bytes);
    return new Response(upstream.bytes, { status: upstream.status, headers: out });
  }
  tap?.streaming();
  // only what arrives in parts needs a buffering proxy in front told not to wait for the whole; a whole
  // answer keeps its head to the content type alone, which Deno's server sends by its fastest path
  out.set("X-Accel-Buffering", "no");
  if (!isEventStream) {
    // a long plain body passes through untouched; the lease ends when the client has it all (or left)
    upstream.done.then(() => lease.release(), () => lease.release());
    return new Response(upstream.stream, { status: upstream.status, headers: out });
  }
  return new Response(withErrorEvent(upstream.stream, lease, tap), { status: upstream.status, headers: out });
}

/**
 * The engine could not be reached, or failed before answering. `retryable`: no byte of an answer had
 * arrived, so a fresh engine may be asked again without duplicating work.
 */
export class EngineUnreachableError extends Error {
  constructor(message: string, readonly retryable: boolean) {
    super(message);
    this.name = "EngineUnreachableError";
  }
}

/**
 * Passes an event stream through chunk by chunk, releasing the lease exactly once at its end. When
 * the engine dies mid-stream, the client gets a final error event, so it knows why the stream ended.
 */
function withErrorEvent(
  body: ReadableStream<Uint8Array>,
  lease: Lease,
  tap?: RequestTap,
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
          tap?.chunk(value);
          controller.enqueue(value);
        }
      } catch (err) {
        lease.release();
        const message = `model ${lease.modelId} stopped answering: ${(err as Error).message}`;
        const event = { error: { code: 502, message, type: "server_error" } };
        controller.enqueue(new TextEncoder().encode(`data: ${JSON.stringify(event)}\n\n`));
        controller.close();
      }
    },
    cancel(reason) {
      lease.release();
      return reader.cancel(reason);
    },
  });
}
