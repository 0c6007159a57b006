/**
 * Bad requests against the real app in process: a table of malformed, hostile or merely wrong
 * requests (each must get its status and the `{"error":{"code","message","type"}}` shape, and the
 * gateway must keep answering), the error shape of what an engine answers, and that the requests
 * that are fine (a multipart body, a GET with `?model=`) reach the right engine. What only a real
 * llama-server judges (the rest of a chat body) stays in tests/e2e/bad_input_test.ts.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { type ErrorRow, errorRowFailures } from "../helpers/error_rows.ts";
import { type InProcessGateway, withInProcess } from "../helpers/in_process.ts";
import { assertErrorBody, chatBody } from "../helpers/openai.ts";
import { keyed } from "../helpers/requests.ts";

const BODY_LIMIT = 1000;
const ARGS = ["--body-limit", String(BODY_LIMIT), "--offline"];

const FORM = "application/x-www-form-urlencoded";
const chat = (model: unknown) => chatBody(model, { max_tokens: 2 });

/** A multipart body as a transcription client sends it; `model` is left out when not given. */
function form(model?: string): FormData {
  const data = new FormData();
  if (model !== undefined) data.set("model", model);
  data.set("file", new Blob([new Uint8Array(16)], { type: "audio/wav" }), "a.wav");
  return data;
}

const HOSTILE_NAMES: [string, string][] = [
  ["relative traversal", "../../etc/passwd"],
  ["absolute path", "/etc/passwd"],
  ["traversal inside", "a/../../b"],
  ["backslash traversal", "..\\..\\windows"],
  ["drive path", "C:\\models\\x"],
  ["NUL", "alpha\u0000.gguf"],
  ["newline", "alpha\nINJECTED log line"],
  ["carriage return", "alpha\r\nX-Header: 1"],
  ["DEL", "alpha\u007f"],
];

function rows(): ErrorRow[] {
  const table: ErrorRow[] = [
    // --- request bodies of the proxied endpoints
    { name: "malformed JSON", path: "/v1/chat/completions", body: "{not json", status: 400 },
    { name: "truncated JSON", path: "/v1/chat/completions", body: '{"model": "alpha"', status: 400 },
    { name: "empty body", path: "/v1/chat/completions", body: "", status: 400 },
    { name: "JSON array body", path: "/v1/chat/completions", body: "[1,2]", status: 400 },
    { name: "JSON array of one object", path: "/v1/chat/completions", body: [chat("alpha")], status: 400 },
    { name: "JSON string body", path: "/v1/chat/completions", body: '"alpha"', status: 400 },
    { name: "JSON null body", path: "/v1/chat/completions", body: "null", status: 400 },
    {
      name: "invalid UTF-8 body",
      path: "/v1/chat/completions",
      body: new Uint8Array([0xff, 0xfe, 0x7b]),
      status: 400,
    },
    { name: "model is a number", path: "/v1/chat/completions", body: chat(5), status: 400 },
    { name: "model is null", path: "/v1/chat/completions", body: chat(null), status: 400 },
    { name: "model is an array", path: "/v1/chat/completions", body: chat(["alpha"]), status: 400 },
    { name: "model is an object", path: "/v1/chat/completions", body: chat({ id: "alpha" }), status: 400 },
    { name: "missing model", path: "/v1/chat/completions", body: { messages: [] }, status: 400 },
    { name: "empty model", path: "/v1/chat/completions", body: chat(""), status: 400 },
    { name: "unknown model", path: "/v1/chat/completions", body: chat("no-such-model"), status: 400 },
    {
      name: "unknown hub-style model, --offline",
      path: "/v1/chat/completions",
      body: chat("org/x-GGUF"),
      status: 400,
    },
    {
      name: "unknown model, completion",
      path: "/completion",
      body: { model: "nope", prompt: "x" },
      status: 400,
    },
    {
      name: "unknown model, tokenize",
      path: "/tokenize",
      body: { model: "nope", content: "x" },
      status: 400,
    },
    // --- model management bodies
    { name: "load: malformed JSON", path: "/models/load", body: "{not json", status: 400 },
    { name: "load: model is a number", path: "/models/load", body: { model: 5 }, status: 400 },
    // as llama.cpp: a missing name is looked up as "" and not found
    { name: "load: missing model", path: "/models/load", body: {}, status: 404 },
    { name: "load: unknown model", path: "/models/load", body: { model: "nope" }, status: 404 },
    { name: "unload: malformed JSON", path: "/models/unload", body: "{not json", status: 400 },
    { name: "unload: unknown model", path: "/models/unload", body: { model: "nope" }, status: 400 },
    { name: "unload: model not running", path: "/models/unload", body: { model: "beta" }, status: 400 },
    { name: "POST /models: missing model", path: "/models", body: {}, status: 400 },
    { name: "POST /models: model is a number", path: "/models", body: { model: 5 }, status: 400 },
    { name: "POST /models: existing model", path: "/models", body: { model: "alpha" }, status: 400 },
    { name: "DELETE /models: no model", method: "DELETE", path: "/models", status: 400 },
    { name: "DELETE /models: unknown model", method: "DELETE", path: "/models?model=nope", status: 404 },
    {
      name: "DELETE /models: not a cache model",
      method: "DELETE",
      path: "/models?model=alpha",
      status: 400,
    },
    { name: "GET /props: unknown model", method: "GET", path: "/props?model=nope", status: 400 },
    { name: "GET /models/logs: unknown model", method: "GET", path: "/models/logs?model=nope", status: 400 },
    // --- hostile model names everywhere a name is taken
    ...HOSTILE_NAMES.flatMap(([what, name]): ErrorRow[] => [
      { name: `chat: ${what}`, path: "/v1/chat/completions", body: chat(name), status: 400 },
      { name: `tokenize: ${what}`, path: "/tokenize", body: { model: name, content: "x" }, status: 400 },
      { name: `load: ${what}`, path: "/models/load", body: { model: name }, status: 400 },
      { name: `unload: ${what}`, path: "/models/unload", body: { model: name }, status: 400 },
      { name: `POST /models: ${what}`, path: "/models", body: { model: name }, status: 400 },
      // looked up by exact id only, never used as a path: simply not found
      {
        name: `DELETE /models: ${what}`,
        method: "DELETE",
        path: `/models?model=${encodeURIComponent(name)}`,
        status: 404,
      },
      {
        name: `GET /props: ${what}`,
        method: "GET",
        path: `/props?model=${encodeURIComponent(name)}`,
        status: 400,
      },
      {
        name: `GET /slots: ${what}`,
        method: "GET",
        path: `/slots?model=${encodeURIComponent(name)}`,
        status: 400,
      },
    ]),
    // --- body size (--body-limit 1000)
    {
      name: "oversized chat body",
      path: "/v1/chat/completions",
      body: { ...chat("alpha"), pad: "x".repeat(BODY_LIMIT) },
      status: 413,
    },
    {
      name: "oversized load body",
      path: "/models/load",
      body: { model: "alpha", pad: "x".repeat(BODY_LIMIT) },
      status: 413,
    },
    {
      name: "oversized body, unknown model (limit first)",
      path: "/tokenize",
      body: { model: "nope", content: "x".repeat(BODY_LIMIT * 5) },
      status: 413,
    },
    // --- content types: the body is JSON whatever the header says, except multipart
    ...([
      [
        "multipart Content-Type, JSON body",
        "/v1/chat/completions",
        chat("alpha"),
        "multipart/form-data; boundary=xyz",
      ],
      ["form Content-Type, form body", "/v1/chat/completions", "model=alpha&messages=hi", FORM],
      ["text/plain Content-Type, unknown model", "/v1/chat/completions", chat("nope"), "text/plain"],
      ["form Content-Type on /models/load", "/models/load", "model=alpha", FORM],
    ] as const).map(([name, path, body, type]): ErrorRow => ({
      name,
      path,
      body,
      headers: { "Content-Type": type },
      status: 400,
    })),
    {
      name: "multipart form, unknown model",
      path: "/v1/audio/transcriptions",
      body: form("nope"),
      status: 400,
    },
    { name: "multipart form, no model", path: "/v1/audio/transcriptions", body: form(), status: 400 },
    { name: "GET /slots without ?model", method: "GET", path: "/slots", status: 400 },
    // without ?model, /metrics is the gateway's own page (tests/unit/http_observability_test.ts)
    { name: "GET /metrics of an unknown model", method: "GET", path: "/metrics?model=nope", status: 400 },
    // --- unknown paths and methods
    { name: "unknown path", method: "GET", path: "/no/such/path", status: 404 },
    { name: "unknown POST path", path: "/v1/no-such-endpoint", body: chat("alpha"), status: 404 },
    { name: "GET on a POST-only route", method: "GET", path: "/v1/chat/completions", status: 404 },
    { name: "PUT /models/load", method: "PUT", path: "/models/load", body: { model: "alpha" }, status: 404 },
    { name: "traversal in the path", method: "GET", path: "/../../etc/passwd", status: 404 },
    { name: "encoded traversal in the path", method: "GET", path: "/%2e%2e/%2e%2e/etc/passwd", status: 404 },
    // --- ?autoload: only "true" and "1" turn it on (as llama.cpp); beta is never loaded
    ...["maybe", "TRUE", "yes", "0", "false", "%00", "1%0a"].map((value): ErrorRow => ({
      name: `?autoload=${value} on an unloaded model`,
      path: `/tokenize?autoload=${value}`,
      body: { model: "beta", content: "x" },
      status: 400,
    })),
    { name: "GET ?autoload=bogus", method: "GET", path: "/props?model=beta&autoload=bogus", status: 400 },
  ];
  return table;
}

/** Loads `model` with a first request, so that its engine can be told what to answer. */
async function tokenize(gw: InProcessGateway, model: string): Promise<Response> {
  return await gw.send("/tokenize", keyed({ method: "POST", json: { model, content: "x" } }));
}

Deno.test("bad requests get the right status and the OpenAI error shape, and the gateway keeps answering", async (t) => {
  await withInProcess(["alpha", "beta"], { args: ARGS }, async (gw) => {
    const table = rows();
    assertEquals(await errorRowFailures(gw.send, table), [], "rows that did not get the expected error");

    await t.step("the log is not forged by a model name with a newline", () => {
      assertEquals(gw.logs.filter((l) => l.startsWith("INJECTED") || l.startsWith("X-Header")), []);
    });

    await t.step(
      "the gateway is healthy, alpha still serves, and no bad request started an engine",
      async () => {
        assertEquals(await (await gw.send("/health")).json(), { status: "ok" });
        const res = await tokenize(gw, "alpha");
        assertEquals(res.status, 200);
        assertEquals((await res.json()).tokens.length, 1);
        assertEquals(gw.starter.starts, ["alpha"], "only the good request loaded a model");
        assertEquals(
          gw.scheduler.find("beta")!.state,
          "unloaded",
          "no ?autoload value but true/1 loaded beta",
        );
      },
    );
  });
});

Deno.test("an engine's error page without JSON reaches the client in the OpenAI error shape", async () => {
  await withInProcess(["alpha"], { args: ARGS }, async (gw) => {
    assertEquals((await tokenize(gw, "alpha")).status, 200);
    const answers: Record<string, Response> = {
      "/completion": new Response("slot unavailable", {
        status: 500,
        headers: { "Content-Type": "text/plain" },
      }),
      // cpp-httplib answers some errors with no body at all
      "/v1/chat/completions": new Response(null, { status: 503 }),
    };
    gw.engine("alpha").respond = (req) => answers[req.path];
    const plain = await gw.send(
      "/completion",
      keyed({ method: "POST", json: { model: "alpha", prompt: "x" } }),
    );
    const plainBody = await plain.json();
    assertEquals(plain.status, 500);
    assertErrorBody(plainBody, 500, "text/plain 500", { exact: true, type: "server_error" });
    assertEquals(plainBody.error.message, "slot unavailable");

    const empty = await gw.send("/v1/chat/completions", keyed({ method: "POST", json: chatBody("alpha") }));
    const emptyBody = await empty.json();
    assertEquals(empty.status, 503);
    assertErrorBody(emptyBody, 503, "empty 503", { exact: true, type: "unavailable_error" });
    assertEquals(emptyBody.error.message, "model alpha answered HTTP 503");
  });
});

Deno.test("a multipart body is routed by its model field and reaches the engine whole", async () => {
  await withInProcess(["alpha"], { args: ARGS }, async (gw) => {
    assertEquals((await tokenize(gw, "alpha")).status, 200);
    const engine = gw.engine("alpha");
    engine.respond = (req) =>
      req.path === "/v1/audio/transcriptions" ? Response.json({ text: "hi" }) : undefined;
    const arrived = engine.nextRequest("/v1/audio/transcriptions");
    const res = await gw.send("/v1/audio/transcriptions", { method: "POST", body: form("alpha") });
    assertEquals(res.status, 200);
    assertEquals(await res.json(), { text: "hi" });
    const req = await arrived;
    assert(
      req.headers.get("content-type")?.startsWith("multipart/form-data; boundary="),
      "content type kept",
    );
    assert(req.body.includes('name="file"; filename="a.wav"'), "the file part arrived");
  });
});

Deno.test("GET /props, /slots and /metrics with ?model= reach that model's engine, the query kept", async () => {
  // llama-server serves its own /metrics only when started with --metrics
  await withInProcess(["alpha"], { args: [...ARGS, "--metrics"] }, async (gw) => {
    assertEquals((await tokenize(gw, "alpha")).status, 200);
    const props = await gw.send("/props?model=alpha");
    assertEquals(await props.json(), { model_alias: "alpha", role: "model" });
    assertEquals((await (await gw.send("/slots?model=alpha&fields=id")).json())[0].id, 0);
    const metrics = await gw.send("/metrics?model=alpha");
    assertEquals(await metrics.text(), "llamacpp:requests_processing 0\n");
    const urls = gw.engine("alpha").requests.map((r) => r.url);
    assertEquals(urls.slice(1), [
      "/props?model=alpha",
      "/slots?model=alpha&fields=id",
      "/metrics?model=alpha",
    ]);
  });
});
