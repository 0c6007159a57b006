/**
 * The proxied llama.cpp/OpenAI endpoints: POSTs are routed by the body's `model`, GETs by `?model=`.
 * Each request holds a lease on its model from admission until its response body ends.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { abortable, sleep } from "../abort.ts";
import { Deadline } from "../deadline.ts";
import { requireAdmin, requireModelAllowed } from "../auth.ts";
import { badRequest, unavailable } from "../errors.ts";
import { isSafeModelName } from "../sources/names.ts";
import { EngineUnreachableError, forward } from "../proxy.ts";
import { FAKE_TIMING_DELAY_MS } from "../config.ts";
import type { GatewayDeps } from "../deps.ts";
import { catalogModel } from "../metrics/families.ts";
import { tapOf } from "../metrics/tap.ts";
import { conversationTicket } from "../streams/conversations.ts";
import type { ConversationTicket } from "../streams/owners.ts";

/**
 * llama.cpp's router routes these by the `model` field of the body (README: routing list); `true` where
 * the answers carry token usage, which the metrics read from their last bytes.
 */
const BODY_ROUTED: Readonly<Record<string, boolean>> = {
  "/props": false,
  "/completion": true,
  "/completions": true,
  "/v1/completions": true,
  "/chat/completions": true,
  "/v1/chat/completions": true,
  "/v1/chat/completions/control": false,
  "/v1/responses": true,
  "/responses": true,
  "/v1/responses/input_tokens": false,
  "/v1/audio/transcriptions": false,
  "/audio/transcriptions": false,
  "/v1/messages": true,
  "/v1/messages/count_tokens": false,
  "/infill": true,
  "/embedding": true,
  "/embeddings": true,
  "/v1/embeddings": true,
  "/rerank": true,
  "/reranking": true,
  "/v1/rerank": true,
  "/v1/reranking": true,
  "/tokenize": false,
  "/detokenize": false,
  "/apply-template": false,
  "/lora-adapters": false,
  "/slots/:id_slot": false,
};
export const POST_ROUTES: readonly string[] = Object.keys(BODY_ROUTED);
/** Those of `POST_ROUTES` whose answers carry token usage. */
export const USAGE_ROUTES: ReadonlySet<string> = new Set(POST_ROUTES.filter((path) => BODY_ROUTED[path]));
/** Routed by `?model=`; `GET /props` without it is the gateway's own. */
export const GET_ROUTES = ["/props", "/metrics", "/slots", "/lora-adapters"];

export function inferenceRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  // each proxied request is observed (metrics, /activity) unless --no-metrics
  const { observer } = deps;
  for (const path of POST_ROUTES) {
    if (observer) app.post(path, observer.tap(path, USAGE_ROUTES.has(path)));
    app.post(path, (c) => proxyPost(c, deps));
  }
  for (const path of GET_ROUTES) {
    if (observer) app.get(path, observer.tap(path, false));
    app.get(path, (c) => proxyGet(c, deps));
  }
  return app;
}

async function proxyPost(c: Context, deps: GatewayDeps): Promise<Response> {
  const body = await c.req.arrayBuffer();
  const model = await modelOfBody(c.req.raw, body);
  return proxy(c, deps, model, body, true);
}

function proxyGet(c: Context, deps: GatewayDeps): Promise<Response> {
  return proxy(c, deps, c.req.query("model"), null, false);
}

async function proxy(
  c: Context,
  deps: GatewayDeps,
  model: unknown,
  body: ArrayBuffer | null,
  touch: boolean,
): Promise<Response> {
  const wanted = checkedModelName(deps, model);
  // a resumable stream's POST outlives its client (llama.cpp detaches it): the stream is for a later
  // GET /v1/stream; a stop (DELETE /v1/stream) cancels it until it reaches its engine
  const ticket = conversationTicket(c.req.raw, deps, wanted);
  const deadline = new Deadline(ticket?.signal ?? c.req.raw.signal, deps.config.timeoutS * 1000);
  try {
    const name = await resolveModel(c, deps, wanted, deadline.signal);
    ticket?.routedTo(name);
    return await proxyTo(c, deps, name, body, touch, deadline, ticket);
  } catch (err) {
    deadline.end();
    throw err;
  }
}

/**
 * The model a request names, checked. On a single-model command line a request without a `model` the
 * gateway knows goes to the default model, as llama-server ignores the field.
 */
function checkedModelName(deps: GatewayDeps, model: unknown): string {
  const known = typeof model === "string" && model !== "" && deps.scheduler.find(model) !== undefined;
  if (deps.defaultModel && !known) return deps.defaultModel;
  if (typeof model !== "string" || model === "") throw badRequest("model name is missing from the request");
  if (!isSafeModelName(model)) throw badRequest("invalid model name");
  return model;
}

/** The model id to route to: a first request for an uncached hub model pulls it first. */
async function resolveModel(
  c: Context,
  deps: GatewayDeps,
  model: string,
  signal: AbortSignal,
): Promise<string> {
  let name = model;
  const known = deps.scheduler.find(name);
  // a download entry (in progress, or ended) is not a model yet: pull() joins or restarts the download
  const pulling = known?.state === "downloading" || known?.state === "downloaded";
  if ((!known || pulling) && autoloadOf(c, deps) && deps.puller.canPull(name)) {
    requireAdmin(c, deps.config.adminKeysConfigured);
    requireModelAllowed(c, [name]);
    name = await abortable(deps.puller.pull(name), signal);
  }
  const record = deps.scheduler.find(name);
  if (record && catalogModel(record)) tapOf(c)?.routed(record.id);
  if (record) requireModelAllowed(c, record.names);
  return name;
}

async function proxyTo(
  c: Context,
  deps: GatewayDeps,
  name: string,
  body: ArrayBuffer | null,
  touch: boolean,
  deadline: Deadline,
  ticket?: ConversationTicket,
): Promise<Response> {
  const { signal } = deadline;
  const pathAndQuery = pathAndQueryOf(c.req.url);
  const tap = tapOf(c);
  // an engine that dies before answering costs the client nothing: the request is retried once on a fresh load
  for (let attempt = 0;; attempt++) {
    tap?.acquiring();
    const held = await deps.scheduler.acquire(name, { autoload: autoloadOf(c, deps), signal, touch });
    tap?.admitted();
    // the deadline ends with the lease: when the response body has been relayed, or the request failed
    const lease = { ...held, release: () => (held.release(), deadline.end(), tap?.released()) };
    try {
      if (deps.config.fakeTiming) await sleep(FAKE_TIMING_DELAY_MS, signal);
      ticket?.admitted();
    } catch (err) {
      held.release();
      throw err;
    }
    try {
      return await forward(c.req.raw, {
        pool: deps.upstream,
        lease,
        pathAndQuery,
        body,
        signal,
        tap,
      });
    } catch (err) {
      if (!(err instanceof EngineUnreachableError)) throw err;
      if (attempt === 0 && err.retryable && await deps.scheduler.engineGone(held.modelId, held.port, 3000)) {
        deps.log(`${held.modelId} died before answering a request; retrying it on a fresh load`);
        continue;
      }
      throw unavailable(err.message);
    }
  }
}

/** `/path?query` of a request's URL, which the server gives as a serialized absolute URL (no parse needed). */
export function pathAndQueryOf(url: string): string {
  const path = url.indexOf("/", url.indexOf("//") + 2);
  return path === -1 ? "/" : url.slice(path);
}

/** `?autoload=true|1` forces it on, any other value off; absent: the gateway's setting. */
function autoloadOf(c: Context, deps: GatewayDeps): boolean {
  const raw = c.req.query("autoload");
  if (raw === undefined || raw === "") return deps.config.autoload;
  return raw === "true" || raw === "1";
}

const UTF8 = new TextDecoder();

async function modelOfBody(req: Request, body: ArrayBuffer): Promise<unknown> {
  const type = req.headers.get("content-type") ?? "";
  if (type.startsWith("multipart/form-data")) {
    try {
      const form = await new Request(req.url, { method: "POST", headers: req.headers, body }).formData();
      return form.get("model");
    } catch {
      throw badRequest("malformed multipart body");
    }
  }
  const text = UTF8.decode(body);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw badRequest(`request body is not valid JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw badRequest("request body must be a JSON object");
  }
  return (parsed as Record<string, unknown>).model;
}
