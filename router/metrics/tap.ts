/**
 * What the gateway sees of one proxied request, for the metrics and the activity ring: the model it
 * was routed to, how long it waited for that model, when the first streamed chunk went out, how it
 * ended, and the tokens the engine reported. The relay calls it at a handful of points and nothing it
 * does per chunk costs more than a time stamp and keeping a reference: tokens are read once, from the
 * last chunks (usage.ts).
 */
import type { Context, MiddlewareHandler } from "hono";
import { tailText, type TokenUsage, usageOf } from "./usage.ts";

/** A request as it ended. Times in milliseconds; the model is a model-table id, never a client's word. */
export interface FinishedRequest {
  /** epoch ms when the gateway got it */
  startedAt: number;
  /** the model it was routed to; undefined when none was (an unknown name, a malformed body) */
  model?: string;
  /** the route it came in on (`/v1/chat/completions`), never the raw path */
  endpoint: string;
  status: number;
  /** the answer was streamed (an event stream) */
  streamed: boolean;
  /** from the first attempt to be admitted to the lease on the model (a cold start's load included) */
  queueWaitMs?: number;
  /** to the first streamed chunk, from its arrival */
  firstChunkMs?: number;
  /** to the end of the answer's body (or of the error), from its arrival */
  durationMs: number;
  usage: TokenUsage;
}

/** Where finished requests go (the metrics and the activity ring). */
export type RequestSink = (request: FinishedRequest) => void;

const NO_USAGE: TokenUsage = Object.freeze({});

/** Stream chunks kept for the token count: the final event and a `[DONE]` after it, with margin. */
const TAIL_CHUNKS = 3;

export class RequestTap {
  readonly #start = performance.now();
  #model?: string;
  #waitStart?: number;
  #admittedAt?: number;
  #firstChunkAt?: number;
  #status?: number;
  #streaming = false;
  #streamEnded = false;
  #finished = false;
  /** the last chunks of a stream, from its first one on */
  #tail?: Uint8Array[];
  #body?: Uint8Array;

  /** `countsTokens`: the endpoint's answers carry usage (completions, chat, embeddings...) */
  constructor(readonly endpoint: string, readonly countsTokens: boolean, readonly sink: RequestSink) {}

  /** The request was routed to this model of the table. */
  routed(modelId: string): void {
    this.#model = modelId;
  }
  /** It asks the scheduler for its model (the first time counts). */
  acquiring(): void {
    this.#waitStart ??= performance.now();
  }
  /** It holds a lease on its model now. */
  admitted(): void {
    this.#admittedAt = performance.now();
  }
  /** A whole body, relayed as it is. */
  body(bytes: Uint8Array | null): void {
    if (this.countsTokens && bytes) this.#body = bytes;
  }
  /** The answer is a stream: the request ends when it does (`released`). */
  streaming(): void {
    this.#streaming = true;
  }
  /** A chunk of a streamed answer, on its way to the client. */
  chunk(bytes: Uint8Array): void {
    this.#firstChunkAt ??= performance.now();
    if (!this.countsTokens) return;
    const tail = this.#tail ??= [];
    if (tail.length === TAIL_CHUNKS) tail.shift();
    tail.push(bytes);
  }
  /** The lease was given back: after a stream, that is its end. */
  released(): void {
    if (!this.#streaming) return;
    this.#streamEnded = true;
    this.#finishWhenDone();
  }
  /** The response head (or the error) the client got. */
  answered(status: number): void {
    this.#status = status;
    this.#finishWhenDone();
  }

  #finishWhenDone(): void {
    if (this.#finished || this.#status === undefined || (this.#streaming && !this.#streamEnded)) return;
    this.#finished = true;
    const end = performance.now();
    const tail = this.#body ? [this.#body] : this.#tail;
    this.sink({
      startedAt: Math.round(performance.timeOrigin + this.#start),
      model: this.#model,
      endpoint: this.endpoint,
      status: this.#status,
      streamed: this.#streaming && this.#firstChunkAt !== undefined,
      queueWaitMs: this.#waitStart !== undefined && this.#admittedAt !== undefined
        ? this.#admittedAt - this.#waitStart
        : undefined,
      firstChunkMs: this.#firstChunkAt === undefined ? undefined : this.#firstChunkAt - this.#start,
      durationMs: end - this.#start,
      usage: tail ? usageOf(tailText(tail)) : NO_USAGE,
    });
  }
}

const TAP_VAR = "switchyardTap";

/**
 * Middleware for one proxied route: a `RequestTap` for each request, which the relay finds with
 * `tapOf`, and its status once the handler has answered (an error answer included, as the app's
 * error handler rendered it).
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * const seen: number[] = [];
 * const app = new Hono();
 * app.post("/tokenize", tapRequests("/tokenize", false, (r) => seen.push(r.status)));
 * app.post("/tokenize", (c) => c.json({ tokens: [] }));
 * await app.request("/tokenize", { method: "POST" });
 * if (seen[0] !== 200) throw new Error("not counted");
 * ```
 */
export function tapRequests(endpoint: string, countsTokens: boolean, sink: RequestSink): MiddlewareHandler {
  return async (c, next) => {
    const tap = new RequestTap(endpoint, countsTokens, sink);
    c.set(TAP_VAR as never, tap as never);
    await next();
    tap.answered(c.res.status);
  };
}

/** The request's tap; undefined when metrics are off (`--no-metrics`). */
export function tapOf(c: Context): RequestTap | undefined {
  return c.get(TAP_VAR as never) as RequestTap | undefined;
}
