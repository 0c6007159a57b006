/**
 * The gateway's limits against the real app in process: CORS only for --cors-origins, --body-limit,
 * --queue-max and --timeout. The engines are stubs that hold a generation until the test releases
 * it, so no verdict depends on how long a real generation would take on this machine.
 */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { type InProcessGateway, withInProcess } from "../helpers/in_process.ts";
import { chatBody, expectError, readSse } from "../helpers/openai.ts";
import { keyed } from "../helpers/requests.ts";
import type { Hold, StubHttpEngine } from "../fixtures/stub_http_engine.ts";
import { waitFor } from "../helpers/wait.ts";

const KEY = "sk-sy-test-cors-key-1c2d";

function post(gw: InProcessGateway, path: string, json: unknown, init: RequestInit = {}): Promise<Response> {
  return gw.send(path, keyed({ ...init, method: "POST", json }));
}

/** Loads `model` and returns its stub engine. */
async function loaded(gw: InProcessGateway, model: string) {
  const res = await post(gw, "/tokenize", { model, content: "x" });
  assertEquals(res.status, 200, `loading ${model}`);
  await res.body?.cancel();
  return gw.engine(model);
}

/**
 * Holds the engine's generations. Should --timeout not end a request, the hold lets go after a
 * minute, so that the test fails on the answer that then arrives instead of hanging.
 */
function holdWithFallback(engine: StubHttpEngine): Hold & { [Symbol.dispose](): void } {
  const hold = engine.hold();
  const fallback = setTimeout(() => hold.release(), 60_000);
  return Object.assign(hold, { [Symbol.dispose]: () => (clearTimeout(fallback), hold.release()) });
}

// ---- CORS --------------------------------------------------------------------------------------------

function preflight(gw: InProcessGateway, origin: string): Promise<Response> {
  return gw.send("/v1/chat/completions", {
    method: "OPTIONS",
    headers: {
      Origin: origin,
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "content-type,authorization",
    },
  });
}

Deno.test("no CORS headers without --cors-origins, not even those an engine sends", async () => {
  await withInProcess(["alpha"], {}, async (gw) => {
    const res = await preflight(gw, "http://a.example");
    await res.body?.cancel();
    assertEquals(res.headers.get("access-control-allow-origin"), null, "preflight");
    const get = await gw.send("/v1/models", { headers: { Origin: "http://a.example" } });
    await get.body?.cancel();
    assertEquals(get.headers.get("access-control-allow-origin"), null, "GET /v1/models");
    // the stub, as llama-server, allows any origin: the gateway must not pass that on
    const chat = await post(gw, "/v1/chat/completions", chatBody("alpha"), {
      headers: { Origin: "http://a.example" },
    });
    await chat.body?.cancel();
    assertEquals(chat.status, 200);
    assertEquals(gw.engine("alpha").requests.at(-1)?.path, "/v1/chat/completions", "the engine answered");
    assertEquals(chat.headers.get("access-control-allow-origin"), null, "a proxied answer");
  });
});

Deno.test("a proxied answer's head: the engine's own fields pass, its Server and CORS fields never", async () => {
  await withInProcess(["alpha"], {}, async (gw) => {
    const engine = await loaded(gw, "alpha");
    engine.respond = (req) =>
      req.path === "/tokenize"
        ? new Response('{"tokens":[1]}', {
          headers: { "Content-Type": "application/json", Server: "llama.cpp", "X-Engine-Note": "kept" },
        })
        : undefined;
    const whole = await post(gw, "/tokenize", { model: "alpha", content: "x" });
    assertEquals(await whole.json(), { tokens: [1] });
    assertEquals(whole.headers.get("x-engine-note"), "kept");
    assertEquals(whole.headers.get("server"), null);
    assertEquals(whole.headers.get("access-control-allow-origin"), null);
    // a whole answer needs no word to a buffering proxy in front; a stream does
    assertEquals(whole.headers.get("x-accel-buffering"), null);
    const stream = await post(gw, "/v1/chat/completions", chatBody("alpha", { stream: true }));
    assertMatch(stream.headers.get("content-type") ?? "", /text\/event-stream/);
    assertEquals(stream.headers.get("x-accel-buffering"), "no");
    assert((await readSse(stream)).length > 0, "the stream had events");
  });
});

Deno.test("--cors-origins: CORS headers for those origins only; a preflight needs no key", async () => {
  const args = ["--cors-origins", "http://a.example", "--api-key", KEY];
  await withInProcess(["alpha"], { args }, async (gw) => {
    const allowed = await preflight(gw, "http://a.example");
    await allowed.body?.cancel();
    assert(allowed.status < 300, `preflight status ${allowed.status} (no key needed for OPTIONS)`);
    assertEquals(allowed.headers.get("access-control-allow-origin"), "http://a.example");
    assertMatch(allowed.headers.get("access-control-allow-methods") ?? "", /POST/);

    const other = await preflight(gw, "http://b.example");
    await other.body?.cancel();
    assertEquals(
      other.headers.get("access-control-allow-origin"),
      null,
      "another origin gets no CORS header",
    );

    const get = await gw.send("/v1/models", keyed({ key: KEY, headers: { Origin: "http://a.example" } }));
    await get.body?.cancel();
    assertEquals(get.status, 200);
    assertEquals(get.headers.get("access-control-allow-origin"), "http://a.example");

    const chat = await post(gw, "/v1/chat/completions", chatBody("alpha"), {
      headers: { Origin: "http://a.example", Authorization: `Bearer ${KEY}` },
    });
    await chat.body?.cancel();
    assertEquals(chat.status, 200);
    assertEquals(chat.headers.get("access-control-allow-origin"), "http://a.example", "not the engine's *");
  });
});

Deno.test("--cors-origins '*' allows every origin", async () => {
  await withInProcess(["alpha"], { args: ["--cors-origins", "*"] }, async (gw) => {
    const res = await preflight(gw, "http://anywhere.example");
    await res.body?.cancel();
    assertEquals(res.headers.get("access-control-allow-origin"), "*");
  });
});

// ---- --body-limit ------------------------------------------------------------------------------------

Deno.test("--body-limit N: a body of N bytes is served, N + 1 bytes get 413, with or without a Content-Length", async () => {
  const limit = 1000;
  await withInProcess(["alpha"], { args: ["--body-limit", String(limit)] }, async (gw) => {
    const ofSize = (size: number) => {
      const body = JSON.stringify({ model: "alpha", content: "" });
      return JSON.stringify({ model: "alpha", content: "x".repeat(size - body.length) });
    };
    // a client states the length of a body it has whole; a stream's length is only known at its end
    const send = (body: string | ReadableStream<Uint8Array>) => {
      const headers: Record<string, string> = { "Content-Type": "application/json" };
      if (typeof body === "string") headers["Content-Length"] = String(new TextEncoder().encode(body).length);
      return gw.send("/tokenize", { method: "POST", headers, body });
    };
    const atLimit = await send(ofSize(limit));
    assertEquals(atLimit.status, 200, await atLimit.text());
    assertEquals(gw.engine("alpha").requests.at(-1)?.body.length, limit, "the whole body reached the engine");
    const streamedAtLimit = await send(new Blob([ofSize(limit)]).stream());
    assertEquals(streamedAtLimit.status, 200, await streamedAtLimit.text());

    await expectError(await send(ofSize(limit + 1)), 413, "one byte over", { type: "invalid_request_error" });
    const streamed = new Blob([ofSize(limit + 1)]).stream();
    await expectError(await send(streamed), 413, "one byte over, streamed", {
      type: "invalid_request_error",
    });
    await expectError(
      await gw.send("/models/load", {
        method: "POST",
        body: `{"model":"alpha","pad":"${"x".repeat(limit)}"}`,
      }),
      413,
      "model management too",
    );
    assertEquals(gw.engine("alpha").requests.length, 2, "no oversized body reached the engine");
  });
});

// ---- --queue-max -------------------------------------------------------------------------------------

Deno.test("--queue-max 1: with one request already waiting for a model, the next one gets 503 with Retry-After", async () => {
  await withInProcess(["a", "b"], { args: ["--models-max", "1", "--queue-max", "1"] }, async (gw) => {
    const hold = (await loaded(gw, "a")).hold();
    // a is busy with a stream it does not finish: it cannot be evicted, so b must wait for room
    const stream = await post(gw, "/v1/chat/completions", chatBody("a", { stream: true }));
    assertEquals(stream.status, 200);
    await hold.arrived;

    const waiting = post(gw, "/tokenize", { model: "b", content: "xy" });
    const b = gw.scheduler.find("b")!;
    await waitFor(() => b.waiting === 1, 10_000, "one request waiting for b");
    // were it queued too, it would wait for a, which never ends: that is seen, not waited out
    let answered = false;
    const second = post(gw, "/tokenize", { model: "b", content: "x" }).finally(() => (answered = true));
    await waitFor(() => answered || b.waiting > 1, 10_000, "the second request for b answered or queued");
    assert(answered, "the second request for b was queued, not refused");
    const refused = await second;
    assertEquals(refused.headers.get("retry-after"), "1");
    await expectError(refused, 503, "second request for b", { type: "unavailable_error" });
    assertEquals(gw.starter.starts, ["a"], "b did not start while a was busy");

    hold.release();
    const events = await readSse(stream);
    assertEquals(events.at(-1), "[DONE]", "a's stream ends whole");
    const served = await waiting;
    assertEquals(served.status, 200, "the waiting request is served once a is released");
    assertEquals((await served.json()).tokens.length, 2);
    assertEquals(gw.starter.stops, ["a"], "a was evicted for b");
  });
});

// ---- --timeout ---------------------------------------------------------------------------------------

Deno.test("--timeout 1: a generation the engine never answers ends with a 503 'timed out'; the engine is still usable", async () => {
  await withInProcess(["alpha"], { args: ["--timeout", "1"] }, async (gw) => {
    const engine = await loaded(gw, "alpha");
    using hold = holdWithFallback(engine);
    const started = performance.now();
    const res = await post(gw, "/completion", { model: "alpha", prompt: "hi", n_predict: 100000 });
    const elapsed = performance.now() - started;
    await expectError(res.clone(), 503, "timed out request", { type: "unavailable_error" });
    assertMatch((await res.json()).error.message, /timed out/);
    // a deadline is never early; how late it may be depends on the machine, so that is not checked
    assert(elapsed >= 950, `ended after ${Math.round(elapsed)} ms, before the timeout`);
    await (await hold.arrived).gone;
    hold.release();

    assertEquals(
      (await post(gw, "/tokenize", { model: "alpha", content: "x" })).status,
      200,
      "tokenize after",
    );
    const again = await post(gw, "/completion", { model: "alpha", prompt: "hi" });
    assertEquals(again.status, 200, "a generation after");
    assertEquals((await again.json()).content, "Hello from the stub");
    assertEquals(gw.starter.starts, ["alpha"], "the same engine served them");
  });
});

Deno.test("--timeout 1: a stream that outlives it is cut with a final error event", async () => {
  await withInProcess(["alpha"], { args: ["--timeout", "1"] }, async (gw) => {
    using hold = holdWithFallback(await loaded(gw, "alpha"));
    const res = await post(gw, "/v1/chat/completions", chatBody("alpha", { stream: true }));
    assertEquals(res.status, 200);
    const events = await readSse(res);
    await (await hold.arrived).gone;
    assertEquals(events.length, 2, `the first token, then the error: ${events.join(" | ")}`);
    const last = JSON.parse(events[1]);
    assertEquals(last.error.code, 502);
    assertMatch(last.error.message, /timed out/);
    assertEquals(gw.scheduler.find("alpha")!.inflight, 0, "the lease ended with the stream");
  });
});
