/**
 * The resumable-stream routes (`GET /v1/stream`, `POST /v1/streams/lookup`, `DELETE /v1/stream`)
 * against the real app in process: the status table, routing to the owner only, and a stop while the
 * owner is on its way. The engines are stubs that answer the engine-side routes from a table the test
 * fills (llama-server's own answers are checked end to end in tests/e2e/streams_test.ts), and that
 * hold generations until the test lets go, so no verdict waits on a timer.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../helpers/assert.ts";
import { type InProcessGateway, withInProcess } from "../helpers/in_process.ts";
import { chatBody, expectError } from "../helpers/openai.ts";
import { keyed } from "../helpers/requests.ts";
import type { SeenRequest, StubHttpEngine } from "../fixtures/stub_http_engine.ts";
import { waitFor } from "../helpers/wait.ts";
import { CANCELLED_WHILE_LOADING } from "../../router/streams/owners.ts";

const KEY = "sk-sy-test-streams-3f9a";

function send(gw: InProcessGateway, path: string, init: Parameters<typeof keyed>[0] = {}): Promise<Response> {
  return gw.send(path, keyed({ key: KEY, ...init }));
}

/** A streamed chat for `model` that belongs to `conversation`. */
function chat(gw: InProcessGateway, model: string, conversation: string, signal?: AbortSignal) {
  return send(gw, "/v1/chat/completions", {
    method: "POST",
    json: chatBody(model, { stream: true }),
    headers: { "X-Conversation-Id": conversation },
    signal,
  });
}

function lookup(gw: InProcessGateway, body: unknown): Promise<Response> {
  return send(gw, "/v1/streams/lookup", {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const streamPath = (conversation: string, from?: number) =>
  `/v1/stream?conv_id=${encodeURIComponent(conversation)}${from === undefined ? "" : `&from=${from}`}`;

/**
 * Makes `engine` answer the engine-side stream routes as llama-server does, for the sessions in
 * `sessions` (conversation id → the SSE bytes it buffered), and returns the requests it got there.
 */
function serveSessions(engine: StubHttpEngine, sessions: Record<string, string>, prefix = ""): SeenRequest[] {
  const seen: SeenRequest[] = [];
  engine.respond = (req) => {
    if (req.path !== `${prefix}/v1/stream` && req.path !== `${prefix}/v1/streams/lookup`) return undefined;
    seen.push(req);
    const query = new URL(req.url, "http://engine").searchParams;
    const id = query.get("conv_id") ?? "";
    if (req.method === "POST") {
      const ids: string[] = JSON.parse(req.body).conversation_ids;
      return Response.json(
        ids.filter((c) => c in sessions).map((c) => ({
          conversation_id: c,
          is_done: true,
          total_bytes: sessions[c].length,
          started_at: 1,
          completed_at: 2,
        })),
      );
    }
    if (req.method === "DELETE") {
      delete sessions[id];
      return new Response(null, { status: 204 });
    }
    if (!(id in sessions)) {
      return Response.json({ error: { code: 404, message: "File Not Found", type: "not_found_error" } }, {
        status: 404,
      });
    }
    const from = Number(query.get("from") ?? 0);
    return new Response(sessions[id].slice(from), { headers: { "Content-Type": "text/event-stream" } });
  };
  return seen;
}

/** Runs a streamed chat for `conversation` to its end (the owner map learns it from this POST). */
async function chatToEnd(gw: InProcessGateway, model: string, conversation: string): Promise<void> {
  const res = await chat(gw, model, conversation);
  assertEquals(res.status, 200, `chat for ${conversation}`);
  await res.text();
}

Deno.test("streams: 400 without a conversation id, 404 for an unknown one, 204 for any stop", async () => {
  await withInProcess(["alpha"], { args: ["--api-key", KEY] }, async (gw) => {
    for (const path of ["/v1/stream", "/v1/stream?conv_id=", "/v1/stream?from=3"]) {
      const res = await send(gw, path);
      await expectError(res, 400, `GET ${path}`, { type: "invalid_request_error", exact: true });
    }
    const missing = await (await send(gw, "/v1/stream", { method: "DELETE" })).json();
    assertEquals(missing.error.message, "Missing conversation id in path");
    const unknown = await send(gw, streamPath("nobody"));
    assertEquals(unknown.status, 404);
    assertEquals((await unknown.json()).error, {
      code: 404,
      message: "Stream not found or expired",
      type: "not_found_error",
    });
    const stop = await send(gw, streamPath("nobody"), { method: "DELETE" });
    assertEquals([stop.status, await stop.text()], [204, ""], "a stop of an unknown stream");
    for (
      const body of ["not json", "[1]", "{}", { conversation_ids: "c" }, { conversation_ids: ["x", 3, ""] }]
    ) {
      const res = await lookup(gw, body);
      assertEquals([res.status, await res.json()], [200, []], `lookup ${JSON.stringify(body)}`);
    }
    assertEquals(gw.scheduler.find("alpha")!.state, "unloaded", "no lookup loads a model");
    const noKey = await gw.send("/v1/streams/lookup", { method: "POST", body: "{}" });
    await expectError(noKey, 401, "lookup without a key");
  });
});

Deno.test("streams: each call goes to the conversation's owner only, lookups grouped per engine", async () => {
  await withInProcess(["alpha", "beta"], { args: ["--api-key", KEY] }, async (gw) => {
    await chatToEnd(gw, "alpha", "conv-a");
    await chatToEnd(gw, "beta", "conv-b");
    // an id holding a model name with a slash travels in the query, encoded
    await chatToEnd(gw, "alpha", "conv-c::org/alpha");
    const sessions = { "conv-a": "data: a1\n\ndata: a2\n\n", "conv-c::org/alpha": "data: c\n\n" };
    const alpha = serveSessions(gw.engine("alpha"), sessions);
    const beta = serveSessions(gw.engine("beta"), { "conv-b": "data: b\n\n" });
    const posted = gw.engine("alpha").requests.find((r) => r.path === "/v1/chat/completions")!;
    assertEquals(posted.headers.get("x-conversation-id"), "conv-a", "the engine gets the conversation id");

    const found = await lookup(gw, { conversation_ids: ["conv-b", "nobody", "conv-a", "conv-c::org/alpha"] });
    assertEquals(found.status, 200);
    const entries: { conversation_id: string; total_bytes: number }[] = await found.json();
    assertEquals(entries.map((e) => e.conversation_id).sort(), ["conv-a", "conv-b", "conv-c::org/alpha"]);
    assertEquals(alpha.map((r) => JSON.parse(r.body)), [{
      conversation_ids: ["conv-a", "conv-c::org/alpha"],
    }]);
    assertEquals(beta.map((r) => JSON.parse(r.body)), [{ conversation_ids: ["conv-b"] }]);
    assert([...alpha, ...beta].every((r) => !r.headers.has("authorization")), "engines never see a key");

    const replay = await send(gw, streamPath("conv-a", 10));
    assertEquals(replay.status, 200);
    assertEquals(replay.headers.get("content-type"), "text/event-stream");
    assertEquals(await replay.text(), sessions["conv-a"].slice(10));
    assertEquals(alpha.at(-1)!.url, "/v1/stream?conv_id=conv-a&from=10");
    const slashed = await send(gw, streamPath("conv-c::org/alpha"));
    assertEquals(await slashed.text(), "data: c\n\n");
    assertEquals(alpha.at(-1)!.url, "/v1/stream?conv_id=conv-c%3A%3Aorg%2Falpha");

    // the engine lost it (its buffer expired): its bare 404 becomes the gateway's own
    await chatToEnd(gw, "alpha", "conv-expired");
    const expired = await send(gw, streamPath("conv-expired"));
    assertEquals((await expired.json()).error.message, "Stream not found or expired");
    assertEquals(alpha.at(-1)!.url, "/v1/stream?conv_id=conv-expired", "it was asked");

    const stop = await send(gw, streamPath("conv-a"), { method: "DELETE" });
    assertEquals(stop.status, 204);
    assertEquals([alpha.at(-1)!.method, alpha.at(-1)!.url], ["DELETE", "/v1/stream?conv_id=conv-a"]);
    assertEquals(beta.length, 1, "beta heard nothing of alpha's conversations");
    const gone = await send(gw, streamPath("conv-a"));
    assertEquals(gone.status, 404, "a stopped conversation is forgotten");
    assertEquals(alpha.length, 5, "and not asked for again");

    // a model removed from the table takes its conversations along
    gw.events.publish({ model: "beta", event: "model_remove" });
    assertEquals((await send(gw, streamPath("conv-b"))).status, 404);
  });
});

Deno.test("streams: with --api-prefix, engines (which get the prefix too) are asked under it", async () => {
  await withInProcess(["alpha"], { args: ["--api-key", KEY, "--api-prefix", "/api"] }, async (gw) => {
    // the stub knows no prefixed chat path: its 404 does not matter, the POST still names the owner
    const res = await send(gw, "/api/v1/chat/completions", {
      method: "POST",
      json: chatBody("alpha"),
      headers: { "X-Conversation-Id": "conv-a" },
    });
    await res.body?.cancel();
    const seen = serveSessions(gw.engine("alpha"), { "conv-a": "data: a\n\n" }, "/api");
    assertEquals(await (await send(gw, `/api${streamPath("conv-a")}`)).text(), "data: a\n\n");
    const found = await send(gw, "/api/v1/streams/lookup", {
      method: "POST",
      json: { conversation_ids: ["conv-a"] },
    });
    assertEquals((await found.json()).length, 1);
    assertEquals((await send(gw, `/api${streamPath("conv-a")}`, { method: "DELETE" })).status, 204);
    assertEquals(seen.map((r) => `${r.method} ${r.path}`), [
      "GET /api/v1/stream",
      "POST /api/v1/streams/lookup",
      "DELETE /api/v1/stream",
    ]);
  });
});

Deno.test("streams: an engine that fails or is slow is left out of a lookup", async () => {
  await withInProcess(["alpha", "beta"], { args: ["--api-key", KEY] }, async (gw) => {
    await chatToEnd(gw, "alpha", "conv-a");
    await chatToEnd(gw, "beta", "conv-b");
    // alpha answers its lookup with a body that never ends, beta with a 500
    const stalled = new ReadableStream<Uint8Array>({
      start: (c) => c.enqueue(new TextEncoder().encode("[")),
    });
    gw.engine("alpha").respond = (req) =>
      req.path === "/v1/streams/lookup"
        ? new Response(stalled, { headers: { "Content-Type": "application/json" } })
        : undefined;
    gw.engine("beta").respond = (req) =>
      req.path === "/v1/streams/lookup" ? new Response("oops", { status: 500 }) : undefined;
    const res = await lookup(gw, { conversation_ids: ["conv-a", "conv-b"] });
    assertEquals([res.status, await res.json()], [200, []]);
  });
});

/**
 * Runs `fn` with `alpha`'s POSTs parked: under `--models-max 1`, `beta` serves a generation the test
 * holds, so a request for `alpha` waits for room (the e2e test parks them in a real load instead).
 */
async function withAlphaParked(fn: (gw: InProcessGateway) => Promise<void>): Promise<void> {
  await withInProcess(["alpha", "beta"], { args: ["--api-key", KEY, "--models-max", "1"] }, async (gw) => {
    const warm = await send(gw, "/tokenize", { method: "POST", json: { model: "beta", content: "x" } });
    await warm.body?.cancel();
    const hold = gw.engine("beta").hold();
    const busy = await send(gw, "/v1/chat/completions", {
      method: "POST",
      json: chatBody("beta", { stream: true }),
    });
    await hold.arrived;
    try {
      await fn(gw);
    } finally {
      hold.release();
      await busy.body?.cancel();
    }
  });
}

/** Until `alpha` has `n` requests waiting for it (they reach the scheduler a few event-loop turns after sending). */
function waiting(gw: InProcessGateway, n: number): Promise<number> {
  return waitFor(() => gw.scheduler.find("alpha")!.waiting === n, 10_000, `${n} waiting for alpha`, 1);
}

Deno.test("streams: while the owner is on its way, a replay is told to retry and a stop cancels the POST", async () => {
  await withAlphaParked(async (gw) => {
    const parked = chat(gw, "alpha", "conv-a");
    await waiting(gw, 1);
    const retry = await send(gw, streamPath("conv-a"));
    await expectError(retry, 503, "replay while parked", { type: "unavailable_error" });
    const found = await lookup(gw, { conversation_ids: ["conv-a"] });
    assertEquals([found.status, await found.json()], [200, []], "no engine to ask yet");

    const stop = await send(gw, streamPath("conv-a"), { method: "DELETE" });
    assertEquals(stop.status, 204);
    const cancelled = await parked;
    assertEquals(cancelled.status, 400);
    assertEquals((await cancelled.json()).error, {
      code: 400,
      message: CANCELLED_WHILE_LOADING,
      type: "invalid_request_error",
    });
    assertEquals((await send(gw, streamPath("conv-a"))).status, 404, "the conversation is forgotten");
    assertEquals(gw.scheduler.find("alpha")!.waiting, 0, "nothing waits for the model any more");
    assertEquals(gw.scheduler.find("alpha")!.state, "unloaded", "and it was never started");
  });
});

Deno.test("streams: a parked POST outlives its client; a newer POST for the conversation replaces it", async () => {
  await withAlphaParked(async (gw) => {
    const client = new AbortController();
    const first = chat(gw, "alpha", "conv-a", client.signal);
    await waiting(gw, 1);
    client.abort();
    // a replay after the abort is a full trip through the app: the gateway had its chance to react
    await expectError(await send(gw, streamPath("conv-a")), 503, "still on its way");
    assertEquals(gw.scheduler.find("alpha")!.waiting, 1, "the POST still waits for its model");
    // the page reloaded and sent the conversation again: the older request gives way
    const second = chat(gw, "alpha", "conv-a");
    await expectError(await first, 400, "the older one, replaced");
    await waiting(gw, 1);
    await expectError(await send(gw, streamPath("conv-a")), 503, "the newer one is on its way");
    await send(gw, streamPath("conv-a"), { method: "DELETE" });
    await expectError(await second, 400, "the newer one, stopped");
  });
});

Deno.test("streams: a key limited to some models does not reach another model's streams", async () => {
  const setup = async (dir: string) => {
    const file = join(dir, "keys.txt");
    await Deno.writeTextFile(file, `${KEY}\nsk-sy-only-beta models=beta\n`);
    return { args: ["--api-key-file", file] };
  };
  await withInProcess(["alpha", "beta"], setup, async (gw) => {
    await chatToEnd(gw, "alpha", "conv-a");
    const seen = serveSessions(gw.engine("alpha"), { "conv-a": "data: a\n\n" });
    const other = (path: string, init: Parameters<typeof keyed>[0] = {}) =>
      gw.send(path, keyed({ ...init, key: "sk-sy-only-beta" }));
    await expectError(await other(streamPath("conv-a")), 403, "replay", { type: "permission_error" });
    await expectError(await other(streamPath("conv-a"), { method: "DELETE" }), 403, "stop");
    const found = await other("/v1/streams/lookup", {
      method: "POST",
      json: { conversation_ids: ["conv-a"] },
    });
    assertEquals(await found.json(), [], "lookup");
    assertEquals(seen.length, 0, "alpha was never asked");
  });
});
