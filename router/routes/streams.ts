/**
 * llama.cpp's resumable streams, router side: `GET /v1/stream?conv_id=&from=` replays a conversation's
 * stream (then follows it live), `POST /v1/streams/lookup` says which of the given conversations have
 * a stream, and `DELETE /v1/stream?conv_id=` stops one. Each goes to the engine that owns the
 * conversation, known from the `X-Conversation-Id` of its POST (router/streams/), never to all.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { requireModelAllowed } from "../auth.ts";
import { Deadline } from "../deadline.ts";
import { badRequest, notFound, unavailable } from "../errors.ts";
import type { GatewayDeps } from "../deps.ts";
import { EngineUnreachableError, forward } from "../proxy.ts";
import type { ModelRecord } from "../scheduler/scheduler.ts";
import { ownersOf } from "../streams/conversations.ts";
import type { ConversationOwners } from "../streams/owners.ts";

/**
 * llama.cpp's STREAM_LOOKUP_TIMEOUT_MS for the router's own calls to an engine: a session lookup or
 * stop is answered from memory on loopback, so an engine that takes longer is skipped, not waited on.
 */
export const ENGINE_CALL_TIMEOUT_MS = 250;

const STREAM_NOT_FOUND = "Stream not found or expired";

/** Owner states in which the stream appears once the model is up: the client is told to retry. */
const ON_ITS_WAY = new Set(["loading", "downloading", "downloaded"]);

export function streamRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  const owners = ownersOf(deps);
  app.get("/v1/stream", (c) => replay(c, deps, owners));
  app.post("/v1/streams/lookup", (c) => lookup(c, deps, owners));
  app.delete("/v1/stream", (c) => stop(c, deps, owners));
  return app;
}

function conversationOf(c: Context): string {
  const conversation = c.req.query("conv_id");
  if (!conversation) throw badRequest("Missing conversation id in path");
  return conversation;
}

/**
 * The engine-side path for a conversation: its id may hold `/` and `::` (`<id>::org/model`). Engines
 * get `--api-prefix` too (llama.cpp's router forgets it here, so its stream routes miss with a prefix).
 */
function streamPath(deps: GatewayDeps, conversation: string, from?: string): string {
  const query = `conv_id=${encodeURIComponent(conversation)}`;
  return `${deps.config.apiPrefix}/v1/stream?${query}${from ? `&from=${encodeURIComponent(from)}` : ""}`;
}

async function replay(c: Context, deps: GatewayDeps, owners: ConversationOwners): Promise<Response> {
  const conversation = conversationOf(c);
  const record = ownerRecord(deps, owners, conversation);
  if (!record?.ready) {
    // llama.cpp counts a sleeping owner as gone (404); its engine still holds the session, so it is ready here
    if (record && (ON_ITS_WAY.has(record.state) || (owners.pending(conversation) && record.waiting > 0))) {
      throw unavailable("Stream owner model is loading, retry later");
    }
    throw notFound(STREAM_NOT_FOUND);
  }
  requireModelAllowed(c, record.names);
  // a replay of a live stream can last as long as the generation: it holds the model as a request does
  const deadline = new Deadline(c.req.raw.signal, deps.config.timeoutS * 1000);
  try {
    const held = await deps.scheduler.acquire(record.id, {
      autoload: false,
      signal: deadline.signal,
      touch: false,
    });
    const res = await forward(c.req.raw, {
      pool: deps.upstream,
      lease: { ...held, release: () => (held.release(), deadline.end()) },
      pathAndQuery: streamPath(deps, conversation, c.req.query("from")),
      body: null,
      signal: deadline.signal,
    });
    if (res.status !== 404) return res;
    // llama-server's HTTP layer turns the body of every 404 into "File Not Found": say what was not found
    await res.body?.cancel();
    throw notFound(STREAM_NOT_FOUND);
  } catch (err) {
    deadline.end();
    throw err instanceof EngineUnreachableError ? unavailable(err.message) : err;
  }
}

/**
 * Asks each owning engine about its own conversations only, all engines at once (llama.cpp asks one
 * after another), and merges their answers. Conversations nobody owns, or whose owner is not up, are
 * left out; so is an engine that fails or is slow. A body that is not JSON finds nothing, as there.
 */
async function lookup(c: Context, deps: GatewayDeps, owners: ConversationOwners): Promise<Response> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    return c.json([]);
  }
  const asked = (body as { conversation_ids?: unknown } | null)?.conversation_ids;
  const perEngine = new Map<number, string[]>();
  for (const conversation of Array.isArray(asked) ? asked : []) {
    if (typeof conversation !== "string" || conversation === "") continue;
    const record = readyOwner(c, deps, owners, conversation);
    if (!record) continue;
    const ids = perEngine.get(record.port!) ?? [];
    ids.push(conversation);
    perEngine.set(record.port!, ids);
  }
  const answers = await Promise.all(
    [...perEngine].map(([port, ids]) =>
      askEngine(deps, port, "POST", `${deps.config.apiPrefix}/v1/streams/lookup`, { conversation_ids: ids })
    ),
  );
  const sessions = answers.flatMap((a) =>
    Array.isArray(a) ? a.filter((s) => s && typeof s === "object") : []
  );
  return c.json(sessions);
}

/** Stops the stream at its engine, or cancels the request still waiting for its model; 204 either way. */
async function stop(c: Context, deps: GatewayDeps, owners: ConversationOwners): Promise<Response> {
  const conversation = conversationOf(c);
  const record = ownerRecord(deps, owners, conversation);
  if (record) requireModelAllowed(c, record.names);
  if (record?.ready) await askEngine(deps, record.port!, "DELETE", streamPath(deps, conversation), null);
  owners.forget(conversation);
  return new Response(null, { status: 204, headers: { "Content-Type": "application/json" } });
}

function ownerRecord(
  deps: GatewayDeps,
  owners: ConversationOwners,
  conversation: string,
): ModelRecord | undefined {
  const name = owners.ownerOf(conversation);
  return name === undefined ? undefined : deps.scheduler.find(name);
}

/** The conversation's owner when it is up and the request's key may use it. */
function readyOwner(
  c: Context,
  deps: GatewayDeps,
  owners: ConversationOwners,
  conversation: string,
): ModelRecord | undefined {
  const record = ownerRecord(deps, owners, conversation);
  if (!record?.ready) return undefined;
  try {
    requireModelAllowed(c, record.names);
  } catch {
    return undefined;
  }
  return record;
}

/**
 * One short call from the gateway to an engine, with no client headers (engines hold no keys): its
 * JSON answer, or undefined when it fails, is slow or answers anything but 200.
 */
async function askEngine(
  deps: GatewayDeps,
  port: number,
  method: string,
  pathAndQuery: string,
  json: unknown,
): Promise<unknown> {
  const body = json === null ? null : new TextEncoder().encode(JSON.stringify(json));
  const signal = AbortSignal.timeout(ENGINE_CALL_TIMEOUT_MS);
  try {
    const res = await deps.upstream.request({
      port,
      method,
      pathAndQuery,
      headers: body ? [["Content-Type", "application/json"]] : [],
      body,
      signal,
    });
    const bytes = res.bytes ??
      (res.stream ? new Uint8Array(await new Response(res.stream).arrayBuffer()) : null);
    if (res.status !== 200 || !bytes) return undefined;
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
}
