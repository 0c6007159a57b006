/**
 * Ollama's API against the real app in process (router/routes/ollama.ts): what reaches the engine
 * for each call, Ollama's framing of what comes back, errors in Ollama's shape with its status for
 * every bad input, keys and per-key model lists, keep_alive, and streams that pass each event on
 * as it comes and that abort the engine's request when the client leaves. The engines are stubs
 * that hold a generation until the test lets it go, so no verdict rests on a machine's speed.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { type InProcessGateway, withInProcess } from "../helpers/in_process.ts";
import { keyed } from "../helpers/requests.ts";
import { HANG_MS, waitFor, within } from "../helpers/wait.ts";
import { tinyLlamaGguf } from "../fixtures/gguf.ts";
import type { SeenRequest } from "../fixtures/stub_http_engine.ts";

const KEY = "sk-ollama-test-key-7f3e";
const ONLY_ALPHA = "sk-ollama-only-alpha-91c4";
const ADMIN = "sk-ollama-admin-5d2a";
const ARGS = ["--api-key", KEY, "-c", "512"];

type Json = Record<string, unknown>;

function send(
  gw: InProcessGateway,
  method: string,
  path: string,
  json?: unknown,
  init: RequestInit & { key?: string } = {},
) {
  const { key = KEY, ...rest } = init;
  return gw.send(path, keyed({ ...rest, key, method, json }));
}
const post = (gw: InProcessGateway, path: string, json: unknown, init: RequestInit & { key?: string } = {}) =>
  send(gw, "POST", path, json, init);

/** Asserts Ollama's error shape: `{"error": "message"}` and nothing else, with this status. */
async function expectOllamaError(
  res: Response,
  status: number,
  message: RegExp,
  context = "",
): Promise<string> {
  const text = await res.text();
  assertEquals(res.status, status, `${context}: ${text}`);
  assertMatch(res.headers.get("content-type") ?? "", /application\/json/, context);
  const body = JSON.parse(text);
  assertEquals(Object.keys(body), ["error"], `${context}: ${text}`);
  assertEquals(typeof body.error, "string", context);
  assertMatch(body.error, message, context);
  return body.error;
}

async function ndjson(res: Response): Promise<Json[]> {
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("content-type"), "application/x-ndjson");
  const text = await res.text();
  return text.trimEnd().split("\n").map((line) => JSON.parse(line));
}

/** The JSON body of the engine's last request on `path`. */
function lastBody(gw: InProcessGateway, model: string, path: string): Json {
  const req = gw.engine(model).requests.findLast((r) => r.path === path);
  assert(req, `the engine got no ${path}`);
  return JSON.parse(req.body);
}

const CHAT = { model: "alpha", messages: [{ role: "user", content: "hi" }] };

Deno.test("ollama: version, and chat streamed as NDJSON and whole, framed as Ollama frames them", async () => {
  await withInProcess(["alpha"], { args: ARGS }, async (gw) => {
    assertEquals(await (await send(gw, "GET", "/api/version")).json(), { version: "0.33.0" });
    const lines = await ndjson(await post(gw, "/api/chat", { ...CHAT, model: "alpha:latest" }));
    assertEquals(lines.map((l) => (l.message as Json).content), ["Hello", " from", " the", " stub", ""]);
    assertEquals(lines.map((l) => l.done), [false, false, false, false, true]);
    for (const line of lines) {
      assertEquals(line.model, "alpha:latest", "answered with the name it was sent");
      assertEquals((line.message as Json).role, "assistant");
      assert(!Number.isNaN(Date.parse(line.created_at as string)));
    }
    const done = lines.at(-1)!;
    assertEquals(done.done_reason, "stop");
    for (
      const key of ["total_duration", "load_duration", "prompt_eval_count", "eval_count", "eval_duration"]
    ) {
      assertEquals(typeof done[key], "number", key);
    }
    assert((done.total_duration as number) > 0);

    const whole = await post(gw, "/api/chat", { ...CHAT, stream: false });
    assertEquals(whole.headers.get("content-type"), "application/json");
    const body = await whole.json();
    assertEquals([body.message.content, body.done, body.done_reason], ["Hello from the stub", true, "stop"]);
    // the engine always streams; what it was sent, beyond the chat itself
    const sent = lastBody(gw, "alpha", "/v1/chat/completions");
    assertEquals([sent.model, sent.stream, sent.stream_options], ["alpha", true, { include_usage: true }]);
  });
});

Deno.test("ollama: options, format, think, tools and images reach the engine as llama.cpp's parameters", async () => {
  await withInProcess(["alpha"], { args: ARGS }, async (gw) => {
    const tools = [{ type: "function", function: { name: "weather", parameters: { type: "object" } } }];
    await (await post(gw, "/api/chat", {
      model: "alpha",
      messages: [{ role: "user", content: "what is it?", images: ["iVBORw0KGgo="] }],
      options: { num_predict: 3, temperature: 0, seed: 7, stop: ["\n"], num_ctx: 512, num_gpu: 99 },
      format: "json",
      think: false,
      tools,
      stream: false,
    })).body?.cancel();
    const chat = lastBody(gw, "alpha", "/v1/chat/completions");
    assertEquals([chat.n_predict, chat.temperature, chat.seed, chat.stop], [3, 0, 7, ["\n"]]);
    assert(!("num_ctx" in chat) && !("num_gpu" in chat), "load-time options are not sampling parameters");
    assertEquals(chat.response_format, {
      type: "json_schema",
      json_schema: { name: "format", schema: { type: "object" } },
    });
    assertEquals(chat.chat_template_kwargs, { enable_thinking: false });
    assertEquals(chat.tools, tools);
    assertEquals((chat.messages as Json[])[0].content, [
      { type: "text", text: "what is it?" },
      { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } },
    ]);

    const lines = await ndjson(
      await post(gw, "/api/generate", { model: "alpha", prompt: "once", raw: true }),
    );
    assertEquals(lines.map((l) => l.response), ["Hello", " from", " the", " stub", ""]);
    assertEquals(lastBody(gw, "alpha", "/completion").prompt, "once");
    const templated =
      await (await post(gw, "/api/generate", { model: "alpha", prompt: "hi", system: "s", stream: false }))
        .json();
    assertEquals([templated.response, templated.done], ["Hello from the stub", true]);
    assertEquals(lastBody(gw, "alpha", "/v1/chat/completions").messages, [
      { role: "system", content: "s" },
      { role: "user", content: "hi" },
    ]);
  });
});

/** An OpenAI event stream, as a stub engine's answer. */
const sse = (...events: unknown[]) =>
  new Response(events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join("") + "data: [DONE]\n\n", {
    headers: { "Content-Type": "text/event-stream" },
  });
const delta = (d: Json, finish: string | null = null, extra: Json = {}) => ({
  choices: [{ index: 0, delta: d, finish_reason: finish }],
  ...extra,
});

Deno.test("ollama: tool calls, thinking and counts from the engine's chunks, streamed and whole", async () => {
  await withInProcess(["alpha"], { args: ARGS }, async (gw) => {
    await (await post(gw, "/api/generate", { model: "alpha" })).body?.cancel();
    gw.engine("alpha").respond = (req) =>
      req.path === "/v1/chat/completions"
        ? sse(
          delta({ reasoning_content: "rain?" }),
          delta({
            tool_calls: [{ index: 0, id: "c1", function: { name: "weather", arguments: '{"city":' } }],
          }),
          delta({ tool_calls: [{ index: 0, function: { arguments: '"Oslo"}' } }] }),
          delta({}, "tool_calls", {
            timings: { prompt_n: 2, prompt_ms: 2, predicted_n: 5, predicted_ms: 10 },
          }),
          { choices: [], usage: { prompt_tokens: 12, completion_tokens: 5 } },
        )
        : undefined;
    const calls = [{ id: "c1", function: { index: 0, name: "weather", arguments: { city: "Oslo" } } }];
    const lines = await ndjson(await post(gw, "/api/chat", CHAT));
    assertEquals(lines.map((l) => l.message), [
      { role: "assistant", content: "", thinking: "rain?" },
      { role: "assistant", content: "", tool_calls: calls },
      { role: "assistant", content: "" },
    ]);
    const done = lines.at(-1)!;
    assertEquals(
      [
        done.done_reason,
        done.prompt_eval_count,
        done.prompt_eval_duration,
        done.eval_count,
        done.eval_duration,
      ],
      ["stop", 12, 2_000_000, 5, 10_000_000],
    );
    const whole = await (await post(gw, "/api/chat", { ...CHAT, stream: false })).json();
    assertEquals(whole.message, { role: "assistant", content: "", thinking: "rain?", tool_calls: calls });
  });
});

Deno.test("ollama: a stream passes each event on as it comes; a client that leaves aborts the engine's request", async () => {
  await withInProcess(["alpha"], { args: ARGS }, async (gw) => {
    await (await post(gw, "/api/generate", { model: "alpha" })).body?.cancel();
    const engine = gw.engine("alpha");
    using _hold = holdFor(engine.hold());
    // the stub sends its first token and then holds: that line can only arrive if nothing is buffered
    const first = await within(post(gw, "/api/chat", CHAT), "the answer's head");
    const reader = first.body!.getReader();
    const line = JSON.parse(new TextDecoder().decode((await within(reader.read(), "the first line")).value));
    assertEquals([(line.message as Json).content, line.done], ["Hello", false]);

    const client = new AbortController();
    const leaving = await post(gw, "/api/generate", { model: "alpha", prompt: "x", raw: true }, {
      signal: client.signal,
    });
    const arrived = engine.requests.findLast((r) => r.path === "/completion") as SeenRequest;
    const leavingReader = leaving.body!.getReader();
    await within(leavingReader.read(), "the first line of the second stream");
    client.abort();
    await leavingReader.cancel().catch(() => {});
    await within(arrived.gone, "the engine saw its request go");
    await reader.cancel();
  });
});

/** A hold released when the test's scope ends (or after a minute, so a failure does not hang). */
function holdFor(hold: { release(): void }) {
  const fallback = setTimeout(() => hold.release(), HANG_MS);
  return { [Symbol.dispose]: () => (clearTimeout(fallback), hold.release()) };
}

Deno.test("ollama: an empty request loads the model, keep_alive 0 unloads it; keep_alive sets its TTL", async () => {
  await withInProcess(["alpha", "beta"], { args: ARGS }, async (gw) => {
    const load = await (await post(gw, "/api/chat", { model: "alpha" })).json();
    assertEquals([load.done, load.done_reason, load.message], [true, "load", {
      role: "assistant",
      content: "",
    }]);
    assertEquals(gw.scheduler.find("alpha")!.state, "loaded");
    const gen = await (await post(gw, "/api/generate", { model: "beta", prompt: "", keep_alive: "10m" }))
      .json();
    assertEquals([gen.done_reason, gen.response], ["load", ""]);

    const before = Date.now();
    const ps = await (await send(gw, "GET", "/api/ps")).json();
    assertEquals(ps.models.map((m: Json) => m.name), ["alpha", "beta"], "the longest time left first");
    assertEquals(ps.models[0].expires_at, "9999-12-31T23:59:59.999Z", "no TTL: it does not expire");
    assertEquals(ps.models[0].context_length, 512, "-c 512, one KV cache for every slot");
    const expires = Date.parse(ps.models[1].expires_at);
    assert(expires > before + 590_000 && expires <= Date.now() + 600_000, ps.models[1].expires_at);

    await (await post(gw, "/api/chat", { ...CHAT, keep_alive: -1 })).body?.cancel();
    assertEquals(gw.scheduler.ttlOf(gw.scheduler.find("alpha")!), 0, "negative: never");
    await (await post(gw, "/api/chat", { ...CHAT, keep_alive: 0, stream: false })).body?.cancel();
    await waitFor(
      () => gw.scheduler.find("alpha")!.state === "unloaded",
      HANG_MS,
      "alpha unloaded after the answer",
    );

    const unload = await (await post(gw, "/api/generate", { model: "beta", keep_alive: 0 })).json();
    assertEquals([unload.done, unload.done_reason], [true, "unload"]);
    await waitFor(() => gw.scheduler.find("beta")!.state === "unloaded", HANG_MS, "beta unloaded");
    assertEquals((await (await send(gw, "GET", "/api/ps")).json()).models, []);
  });
});

Deno.test("ollama: tags, show and ps read the model's GGUF header", async () => {
  await withInProcess(["alpha", "beta"], async (dir) => {
    await Deno.writeFile(join(dir, "alpha.gguf"), tinyLlamaGguf({ seed: 7 }));
    return { args: ARGS };
  }, async (gw) => {
    const tags = await (await send(gw, "GET", "/api/tags")).json();
    assertEquals(tags.models.map((m: Json) => m.name), ["alpha", "beta"]);
    const [alpha, beta] = tags.models;
    assertEquals(alpha.model, "alpha");
    assertEquals(alpha.size, tinyLlamaGguf({ seed: 7 }).length);
    assertMatch(alpha.digest, /^[0-9a-f]{64}$/);
    assert(!Number.isNaN(Date.parse(alpha.modified_at)));
    assertEquals(alpha.details, {
      parent_model: "",
      format: "gguf",
      family: "llama",
      families: ["llama"],
      parameter_size: "170K",
      quantization_level: "F32",
    });
    assertEquals([beta.size, beta.details.family], [0, ""], "an empty file: nothing to read, still listed");

    const show = await (await post(gw, "/api/show", { model: "alpha:latest" })).json();
    assertEquals(show.details, alpha.details);
    assertEquals(show.model_info["llama.context_length"], 4096);
    assertEquals(show.model_info["general.parameter_count"], 170_048);
    assertMatch(show.template, /<\|im_start\|>/);
    assertEquals(show.capabilities, ["completion"]);
    assertMatch(show.parameters, /^num_ctx\s+512$/m);
    assertMatch(show.modelfile, /^FROM .*alpha\.gguf$/m);
    // older clients send `name`
    assertEquals((await (await post(gw, "/api/show", { name: "beta" })).json()).details.format, "gguf");
  });
});

Deno.test("ollama: embed and the older embeddings, through /v1/embeddings", async () => {
  await withInProcess(["alpha"], { args: ARGS }, async (gw) => {
    const empty = await (await post(gw, "/api/embed", { model: "alpha", input: [] })).json();
    assertEquals(empty, { model: "alpha", embeddings: [] });
    const engine = gw.engine("alpha");
    engine.respond = (req) => {
      if (req.path !== "/v1/embeddings") return undefined;
      const inputs = JSON.parse(req.body).input as string[];
      // out of order on purpose: the answer is put back in the order of the inputs
      const data = inputs.map((_, i) => ({ index: i, embedding: [3 * (i + 1), 4 * (i + 1), 0] })).reverse();
      return Response.json({ data, usage: { prompt_tokens: 7 } });
    };
    const embed = await (await post(gw, "/api/embed", { model: "alpha", input: ["a", "b"], dimensions: 2 }))
      .json();
    assertEquals(embed.embeddings, [[0.6, 0.8], [0.6, 0.8]]);
    assertEquals([embed.model, embed.prompt_eval_count], ["alpha", 7]);
    assertEquals(typeof embed.total_duration, "number");
    assertEquals(lastBody(gw, "alpha", "/v1/embeddings"), { model: "alpha", input: ["a", "b"] });

    const old = await (await post(gw, "/api/embeddings", { model: "alpha", prompt: "a" })).json();
    assertEquals(old, { embedding: [3, 4, 0] });
    assertEquals(
      lastBody(gw, "alpha", "/v1/embeddings").embd_normalize,
      -1,
      "the older endpoint does not normalize",
    );

    engine.respond = () =>
      Response.json(
        {
          error: {
            code: 501,
            message: "This server does not support embeddings. Start it with `--embeddings`",
            type: "not_supported_error",
          },
        },
        { status: 501 },
      );
    await expectOllamaError(
      await post(gw, "/api/embed", { model: "alpha", input: "a" }),
      501,
      /--embeddings/,
    );
  });
});

Deno.test("ollama: every bad input is an error in Ollama's shape with its status", async () => {
  await withInProcess(["alpha"], async (dir) => {
    await Deno.writeTextFile(
      join(dir, "preset.ini"),
      `[one]\nmodel = ${join(dir, "alpha.gguf")}\nalias = team:one\n[two]\nmodel = ${
        join(dir, "alpha.gguf")
      }\nalias = team:two\n`,
    );
    return { args: [...ARGS, "--models-preset", join(dir, "preset.ini"), "--body-limit", "4096"] };
  }, async (gw) => {
    const rows: [string, string, unknown, number, RegExp][] = [
      ["POST", "/api/chat", undefined, 400, /^missing request body$/],
      ["POST", "/api/generate", "[1]", 400, /must be a JSON object/],
      ["POST", "/api/chat", { messages: [] }, 400, /^model is required$/],
      ["POST", "/api/chat", { model: "nope", messages: [] }, 404, /^model 'nope' not found$/],
      ["POST", "/api/chat", { model: "team", messages: [] }, 400, /'team' is ambiguous: it names one, two/],
      ["POST", "/api/chat", { ...CHAT, messages: "hi" }, 400, /messages must be an array/],
      [
        "POST",
        "/api/chat",
        { ...CHAT, options: { temperature: "hot" } },
        400,
        /"temperature" must be of type float32/,
      ],
      ["POST", "/api/chat", { ...CHAT, keep_alive: "soon" }, 400, /time: invalid duration "soon"/],
      ["POST", "/api/chat", { ...CHAT, think: "deeply" }, 400, /invalid think value/],
      ["POST", "/api/chat", { ...CHAT, format: "yaml" }, 400, /invalid format/],
      ["POST", "/api/chat", { ...CHAT, options: { num_ctx: 8192 } }, 400, /num_ctx 8192 .*runs with \(512/],
      ["POST", "/api/generate", { model: "alpha", prompt: 3 }, 400, /prompt must be a string/],
      [
        "POST",
        "/api/generate",
        { model: "alpha", prompt: "x", context: [1] },
        400,
        /context is not supported/,
      ],
      ["POST", "/api/embed", { model: "alpha", input: [1] }, 400, /^invalid input type$/],
      ["POST", "/api/show", { model: "nope" }, 404, /not found/],
      ["POST", "/api/pull", { model: "llama3.2" }, 400, /cannot be pulled: .*Hugging Face/],
      ["DELETE", "/api/delete", { model: "alpha" }, 400, /not removable \(not from cache\)/],
      ["DELETE", "/api/delete", { model: "nope" }, 404, /not found/],
      ["POST", "/api/copy", { source: "alpha", destination: "b" }, 501, /copy is not supported/],
      ["POST", "/api/push", { model: "alpha" }, 501, /push is not supported/],
      ["POST", "/api/create", { model: "x", from: "alpha" }, 501, /create is not supported/],
      ["POST", "/api/nope", {}, 404, /^File Not Found$/],
      ["POST", "/api/chat", { ...CHAT, pad: "x".repeat(5000) }, 413, /exceeds 4096 bytes/],
    ];
    for (const [method, path, body, status, message] of rows) {
      const init = typeof body === "string" ? { body, headers: { "Content-Type": "application/json" } } : {};
      const res = await send(gw, method, path, typeof body === "string" ? undefined : body, init);
      await expectOllamaError(
        res,
        status,
        message,
        `${method} ${path} ${JSON.stringify(body)?.slice(0, 60)}`,
      );
    }
    await (await post(gw, "/api/generate", { model: "alpha" })).body?.cancel();
    gw.engine("alpha").respond = (req) =>
      req.path === "/v1/chat/completions"
        ? Response.json({
          error: { code: 400, message: "the prompt is too long", type: "invalid_request_error" },
        }, {
          status: 400,
        })
        : undefined;
    await expectOllamaError(
      await post(gw, "/api/chat", CHAT),
      400,
      /^the prompt is too long$/,
      "an engine's error",
    );
    await expectOllamaError(
      await post(gw, "/api/chat", CHAT, { key: "wrong" }),
      401,
      /^Invalid API Key$/,
      "a bad key",
    );
  });
});

Deno.test("ollama: per-key model lists and admin keys apply as to every route", async () => {
  await withInProcess(["alpha", "beta"], async (dir) => {
    await Deno.writeTextFile(join(dir, "keys"), `${KEY}\n${ONLY_ALPHA} models=alpha\n`);
    await Deno.writeTextFile(join(dir, "admin"), `${ADMIN}\n`);
    return { args: ["--api-key-file", join(dir, "keys"), "--admin-api-key-file", join(dir, "admin")] };
  }, async (gw) => {
    const tags = await (await send(gw, "GET", "/api/tags", undefined, { key: ONLY_ALPHA })).json();
    assertEquals(tags.models.map((m: Json) => m.name), ["alpha"]);
    await expectOllamaError(
      await post(gw, "/api/chat", { ...CHAT, model: "beta" }, { key: ONLY_ALPHA }),
      404,
      /'beta' not found/,
      "a model the key may not see is not there",
    );
    assertEquals((await post(gw, "/api/chat", { ...CHAT, stream: false }, { key: ONLY_ALPHA })).status, 200);
    for (
      const [method, path, body] of [
        ["POST", "/api/generate", { model: "alpha", keep_alive: 0 }],
        ["POST", "/api/pull", { model: "org/repo:Q8_0" }],
        ["DELETE", "/api/delete", { model: "alpha" }],
      ] as const
    ) {
      await expectOllamaError(await send(gw, method, path, body), 403, /admin API key/, `${method} ${path}`);
    }
    const unload = await (await post(gw, "/api/generate", { model: "alpha", keep_alive: 0 }, { key: ADMIN }))
      .json();
    assertEquals(unload.done_reason, "unload");
  });
});
