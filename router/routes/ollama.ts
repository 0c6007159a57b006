/**
 * Ollama's API (`/api/*`), translated onto the gateway, so Ollama clients work unchanged. Generation
 * and embeddings are sent through the gateway's own routes (`dispatch`), as `/predict` does: keys,
 * per-key model lists, admission, retries and `--timeout` apply exactly as to any request, and
 * streams pass through one event at a time, re-framed as NDJSON. Listings come from the model table
 * and the models' GGUF headers. Errors answer in Ollama's shape (router/ollama/errors.ts).
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { modelVisible, requireAdmin, requireModelAllowed } from "../auth.ts";
import type { GatewayDeps } from "../deps.ts";
import { ApiError, badRequest, notFound, serverError } from "../errors.ts";
import { memoryArgs, optionsFromArgv } from "../memory/args.ts";
import { canonicalFlag, FLAG } from "../sources/spec.ts";
import type { ModelRecord } from "../scheduler/scheduler.ts";
import {
  Answer,
  type AnswerKind,
  chatDelta,
  completionDelta,
  doneFrame,
  type FrameContext,
  streamedAnswer,
} from "../ollama/answer.ts";
import { trainingContext } from "../ollama/details.ts";
import { psEntry, showBody, tagEntry } from "../ollama/entries.ts";
import { asOllamaError } from "../ollama/errors.ts";
import { ModelFileReader } from "../ollama/model_file.ts";
import { resolveOllamaName } from "../ollama/names.ts";
import { eventsToNdjson, ndjsonResponse, readEvents } from "../ollama/ndjson.ts";
import {
  checkNumCtx,
  contextPerRequest,
  launchParameters,
  parseKeepAlive,
  requestedContext,
} from "../ollama/options.ts";
import { pullProgress } from "../ollama/pull.ts";
import {
  chatCall,
  embedInputs,
  type EngineCall,
  generateCall,
  isObject,
  truncateEmbedding,
} from "../ollama/requests.ts";

/** The Ollama release whose API this mirrors (clients check it before using newer fields). */
export const OLLAMA_API_VERSION = "0.33.0";

type Json = Record<string, unknown>;
/** Sends a request through the gateway's own routes. */
export type Dispatch = (req: Request) => Promise<Response>;

/** The gateway's clock: the scheduler's `readyAt` is on the same scale. */
const now = (): number => performance.timeOrigin + performance.now();
const MS_NS = 1e6;
const EMBEDDINGS_FLAG = canonicalFlag("--embeddings");

export function ollamaRoutes(deps: GatewayDeps, dispatch: Dispatch): Hono {
  const app = new Hono();
  const files = new ModelFileReader();
  const { scheduler } = deps;

  /** A request to one of the gateway's routes, with the client's headers (its key) and signal. */
  const relay = (c: Context, method: string, path: string, body?: Json): Promise<Response> => {
    const headers = new Headers(c.req.raw.headers);
    headers.delete("Content-Length");
    if (body) headers.set("Content-Type", "application/json");
    const url = new URL(deps.config.apiPrefix + path, c.req.url);
    return dispatch(
      new Request(url, { method, headers, body: body && JSON.stringify(body), signal: c.req.raw.signal }),
    );
  };

  /** The model table's models a client may name: not hidden, not a download in progress. */
  const models = (c: Context): ModelRecord[] =>
    scheduler.records().filter((r) =>
      !r.spec.hidden && r.state !== "downloading" && r.state !== "downloaded" && modelVisible(c, r.names)
    );

  /** The record a request's `model` (or older clients' `name`) names, or Ollama's 400/404. */
  const named = (c: Context, req: Json): ModelRecord => {
    const name = req.model ?? req.name;
    if (typeof name !== "string" || name === "") throw badRequest("model is required");
    const match = resolveOllamaName(name, models(c));
    if (match.kind === "ambiguous") {
      throw badRequest(
        `model '${name}' is ambiguous: it names ${match.candidates.join(", ")}; use one of these`,
      );
    }
    const id = match.kind === "found" ? match.id : deps.defaultModel;
    const record = id === undefined ? undefined : scheduler.find(id);
    if (!record) throw notFound(`model '${name}' not found`);
    requireModelAllowed(c, record.names);
    return record;
  };

  /** The engine's options as it is (or will be) launched. */
  const launchOptions = (record: ModelRecord) => optionsFromArgv(scheduler.launchOf(record.spec).args);

  /** Tokens one request may use on the model; 0 when not known. */
  const contextOf = async (record: ModelRecord): Promise<number> => {
    let layout;
    try {
      layout = memoryArgs(launchOptions(record));
    } catch {
      return 0;
    }
    const meta = isObject(record.info?.meta) ? record.info.meta : {};
    const engineCtx = record.alive && typeof meta.n_ctx === "number" ? meta.n_ctx : undefined;
    const trainCtx = engineCtx || layout.ctx
      ? undefined
      : trainingContext((await files.read(record.spec))?.header);
    return contextPerRequest(layout, engineCtx, trainCtx);
  };

  /** `keep_alive` takes effect once the answer is over: while it runs, the model is in use anyway. */
  const keepAlive = (record: ModelRecord, seconds: number | undefined) =>
    scheduler.keepAlive(record.id, seconds);

  const durations = (started: number, record: ModelRecord) => () => {
    const ready = record.readyAt;
    return {
      total: (now() - started) * MS_NS,
      load: ready !== undefined && ready > started ? (ready - started) * MS_NS : 0,
    };
  };

  /**
   * Loads the model through the gateway's own admission, with the cheapest request that does; an
   * error answer when it cannot.
   */
  const loadModel = async (c: Context, record: ModelRecord, seconds: number | undefined) => {
    const res = await relay(c, "POST", "/tokenize", { model: record.id, content: "" });
    if (!res.ok) return asOllamaError(res);
    await res.body?.cancel();
    keepAlive(record, seconds);
  };

  /** A chat or generate with nothing to answer loads the model, or with `keep_alive: 0` unloads it. */
  const loadOrUnload = async (c: Context, record: ModelRecord, kind: AnswerKind, req: Json) => {
    const seconds = parseKeepAlive(req.keep_alive);
    if (seconds === 0) {
      // an unload asked for: as POST /models/unload, it needs an admin key where there are admin keys
      requireAdmin(c, deps.config.adminKeysConfigured);
      if (record.alive && !record.stopping) scheduler.unload(record.id);
    } else {
      const failed = await loadModel(c, record, seconds);
      if (failed) return failed;
    }
    return c.json({
      model: askedName(req, record),
      created_at: new Date().toISOString(),
      ...(kind === "chat" ? { message: { role: "assistant", content: "" } } : { response: "" }),
      done: true,
      done_reason: seconds === 0 ? "unload" : "load",
    });
  };

  /** Runs `call` on the engine and answers as Ollama does, streamed (NDJSON) or whole. */
  const answer = async (c: Context, record: ModelRecord, call: EngineCall, req: Json, kind: AnswerKind) => {
    const started = now();
    const seconds = parseKeepAlive(req.keep_alive);
    const numCtx = requestedContext(req.options);
    if (numCtx !== undefined) checkNumCtx(numCtx, record.id, await contextOf(record));
    const res = await relay(c, "POST", call.path, call.body);
    if (!res.ok || !res.body) {
      keepAlive(record, seconds);
      return asOllamaError(res);
    }
    const ctx: FrameContext = {
      kind,
      model: askedName(req, record),
      durations: durations(started, record),
    };
    const deltaOf = call.dialect === "chat" ? chatDelta : completionDelta;
    if (req.stream !== false) {
      const translation = streamedAnswer(ctx, deltaOf, () => keepAlive(record, seconds));
      return ndjsonResponse(res.body.pipeThrough(eventsToNdjson(translation)));
    }
    const whole = new Answer();
    try {
      await readEvents(res.body, (data) => whole.add(deltaOf(data)));
    } finally {
      keepAlive(record, seconds);
    }
    if (whole.error !== undefined) throw serverError(whole.error);
    return c.json(doneFrame(ctx, whole, true));
  };

  app.get("/api/version", (c) => c.json({ version: OLLAMA_API_VERSION }));

  app.get("/api/tags", async (c) => {
    const listed = await Promise.all(models(c).map(async (r) => tagEntry(r.id, await files.read(r.spec))));
    return c.json({ models: listed });
  });

  app.get("/api/ps", async (c) => {
    const running = models(c).filter((r) => r.state === "loaded" || r.state === "sleeping");
    const entries = await Promise.all(running.map(async (r) => {
      const memory = scheduler.memoryOf(r);
      return psEntry(r.id, await files.read(r.spec), {
        memory: memory ? memory.actual ?? memory.projected : undefined,
        expiresAt: scheduler.expiresAt(r),
        contextLength: await contextOf(r),
      });
    }));
    // as Ollama: the longest time left first
    entries.sort((a, b) => b.expires_at.localeCompare(a.expires_at));
    return c.json({ models: entries });
  });

  app.post("/api/show", async (c) => {
    const req = await jsonBody(c);
    const record = named(c, req);
    const options = launchOptions(record);
    const launch = {
      embeddings: options.get(EMBEDDINGS_FLAG) === true,
      vision: options.has(FLAG.mmproj),
      parameters: launchParameters(options),
    };
    return c.json(showBody(record.id, await files.read(record.spec), launch, req.verbose === true));
  });

  app.post("/api/chat", async (c) => {
    const req = await jsonBody(c);
    const record = named(c, req);
    const messages = req.messages;
    if (messages === undefined || messages === null || (Array.isArray(messages) && messages.length === 0)) {
      return loadOrUnload(c, record, "chat", req);
    }
    return answer(c, record, chatCall(record.id, req), req, "chat");
  });

  app.post("/api/generate", async (c) => {
    const req = await jsonBody(c);
    const record = named(c, req);
    if (req.prompt === undefined || req.prompt === null || req.prompt === "") {
      return loadOrUnload(c, record, "generate", req);
    }
    if (typeof req.prompt !== "string") throw badRequest("prompt must be a string");
    return answer(c, record, generateCall(record.id, req), req, "generate");
  });

  /** Embeddings of `inputs` from the engine (`normalize`: to unit length, as `/api/embed` has them). */
  const embeddings = async (c: Context, record: ModelRecord, inputs: string[], normalize: boolean) => {
    const body = { model: record.id, input: inputs, ...(normalize ? {} : { embd_normalize: -1 }) };
    const res = await relay(c, "POST", "/v1/embeddings", body);
    if (!res.ok) return { error: await asOllamaError(res) };
    const out = await res.json() as { data?: { index?: number; embedding?: number[] }[]; usage?: Json };
    const data = [...out.data ?? []].sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
    const promptTokens = typeof out.usage?.prompt_tokens === "number" ? out.usage.prompt_tokens : 0;
    return { vectors: data.map((d) => d.embedding ?? []), promptTokens };
  };

  app.post("/api/embed", async (c) => {
    const started = now();
    const req = await jsonBody(c);
    const record = named(c, req);
    const inputs = embedInputs(req.input);
    const seconds = parseKeepAlive(req.keep_alive);
    if (inputs.length === 0) {
      return await loadModel(c, record, seconds) ?? c.json({ model: askedName(req, record), embeddings: [] });
    }
    const result = await embeddings(c, record, inputs, true);
    keepAlive(record, seconds);
    if ("error" in result) return result.error;
    const dimensions = typeof req.dimensions === "number" ? req.dimensions : undefined;
    const { total, load } = durations(started, record)();
    return c.json({
      model: askedName(req, record),
      embeddings: result.vectors.map((v) => truncateEmbedding(v, dimensions)),
      total_duration: Math.round(total),
      load_duration: Math.round(load),
      prompt_eval_count: result.promptTokens,
    });
  });

  // the older endpoint: one prompt, the embedding as the model gives it (not normalized)
  app.post("/api/embeddings", async (c) => {
    const req = await jsonBody(c);
    const record = named(c, req);
    const seconds = parseKeepAlive(req.keep_alive);
    if (req.prompt !== undefined && typeof req.prompt !== "string") {
      throw badRequest("prompt must be a string");
    }
    if (!req.prompt) return await loadModel(c, record, seconds) ?? c.json({ embedding: [] });
    const result = await embeddings(c, record, [req.prompt as string], false);
    keepAlive(record, seconds);
    if ("error" in result) return result.error;
    return c.json({ embedding: result.vectors[0] ?? [] });
  });

  app.post("/api/pull", async (c) => {
    requireAdmin(c, deps.config.adminKeysConfigured);
    const req = await jsonBody(c);
    const name = req.model ?? req.name;
    if (typeof name !== "string" || name === "") throw badRequest("model is required");
    return pullProgress(c, deps, name, req.stream !== false);
  });

  app.delete("/api/delete", async (c) => {
    requireAdmin(c, deps.config.adminKeysConfigured);
    const record = named(c, await jsonBody(c));
    const res = await relay(c, "DELETE", `/models?model=${encodeURIComponent(record.id)}`);
    if (!res.ok) return asOllamaError(res);
    await res.body?.cancel();
    return c.body(null, 200);
  });

  const unsupported = (what: string, instead: string) => () => {
    throw new ApiError("not_supported_error", `${what} is not supported by Switchyard: ${instead}`, 501);
  };
  app.post("/api/copy", unsupported("copy", "give the model another name with an alias in its preset"));
  app.post("/api/push", unsupported("push", "models come from its model sources and the Hugging Face Hub"));
  app.post("/api/create", unsupported("create", "describe the model in a preset section (--models-preset)"));
  app.on(
    ["HEAD", "POST"],
    "/api/blobs/:digest",
    unsupported("blobs", "models are GGUF files in its model sources"),
  );
  return app;
}

/** Ollama answers with the name the client used (`model`, or older clients' `name`). */
function askedName(req: Json, record: ModelRecord): string {
  return String(req.model ?? req.name ?? record.id);
}

/** The request's JSON object; Ollama's "missing request body" when there is none. */
async function jsonBody(c: Context): Promise<Json> {
  const text = await c.req.text();
  if (!text.trim()) throw badRequest("missing request body");
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw badRequest(`invalid JSON in request body: ${(err as Error).message}`);
  }
  if (!isObject(body)) throw badRequest("request body must be a JSON object");
  return body;
}
