/**
 * Bad input, end to end: a table of malformed, hostile or merely wrong requests against one gateway
 * (each must get the right status and the `{"error":{"code","message","type"}}` shape, and the
 * gateway must keep answering), then bad start-up configurations (each must exit non-zero with a
 * message that says what is wrong and where).
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { fakeServerBin, runMain, withGateway } from "../helpers/gateway.ts";
import { engineAvailable, getJson, postJson } from "../helpers/http.ts";
import { assertErrorBody, chatBody } from "../helpers/openai.ts";

const skip = await engineAvailable();
const BODY_LIMIT = 1000;

// ---- the request table -------------------------------------------------------------------------------

interface Row {
  name: string;
  method?: string;
  path: string;
  /** a string or bytes are sent as is; anything else as JSON */
  body?: unknown;
  headers?: Record<string, string>;
  status: number;
}

const json = { "Content-Type": "application/json" };
const FORM = "application/x-www-form-urlencoded";
const chat = (model: unknown) => chatBody(model, { max_tokens: 2 });

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

function rows(): Row[] {
  const table: Row[] = [
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
    // the engine judges the rest of the body; its answer must still be a JSON error
    {
      name: "messages not an array (engine)",
      path: "/v1/chat/completions",
      body: { model: "alpha", messages: "hi" },
      status: 400,
    },
    {
      name: "messages missing (engine)",
      path: "/v1/chat/completions",
      body: { model: "alpha" },
      status: 400,
    },
    {
      name: "max_tokens is a string (engine)",
      path: "/v1/chat/completions",
      body: { ...chat("alpha"), max_tokens: "lots" },
      status: 400,
    },
    {
      name: "content is a number (engine)",
      path: "/v1/chat/completions",
      body: { model: "alpha", messages: [{ role: "user", content: 3 }] },
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
    ...HOSTILE_NAMES.flatMap(([what, name]): Row[] => [
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
    ] as const).map(([name, path, body, type]): Row => ({
      name,
      path,
      body,
      headers: { "Content-Type": type },
      status: 400,
    })),
    // --- unknown paths and methods
    { name: "unknown path", method: "GET", path: "/no/such/path", status: 404 },
    { name: "unknown POST path", path: "/v1/no-such-endpoint", body: chat("alpha"), status: 404 },
    { name: "GET on a POST-only route", method: "GET", path: "/v1/chat/completions", status: 404 },
    { name: "PUT /models/load", method: "PUT", path: "/models/load", body: { model: "alpha" }, status: 404 },
    { name: "traversal in the path", method: "GET", path: "/../../etc/passwd", status: 404 },
    { name: "encoded traversal in the path", method: "GET", path: "/%2e%2e/%2e%2e/etc/passwd", status: 404 },
    // --- ?autoload: only "true" and "1" turn it on (as llama.cpp); beta is never loaded
    ...["maybe", "TRUE", "yes", "0", "false", "%00", "1%0a"].map((value): Row => ({
      name: `?autoload=${value} on an unloaded model`,
      path: `/tokenize?autoload=${value}`,
      body: { model: "beta", content: "x" },
      status: 400,
    })),
    { name: "GET ?autoload=bogus", method: "GET", path: "/props?model=beta&autoload=bogus", status: 400 },
  ];
  return table;
}

Deno.test({
  name: "bad requests get the right status and the OpenAI error shape, and the gateway keeps answering",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const args = ["--body-limit", String(BODY_LIMIT), "--offline", "-c", "256", "-np", "1"];
    await withGateway(["alpha", "beta"], { args }, async (gw) => {
      const table = rows();
      const failures: string[] = [];
      for (const row of table) {
        const method = row.method ?? "POST";
        const raw = row.body === undefined || typeof row.body === "string" || row.body instanceof Uint8Array;
        const body = raw ? row.body as BodyInit | undefined : JSON.stringify(row.body);
        const headers = { ...(raw ? {} : json), ...row.headers };
        try {
          const res = await fetch(gw.url + row.path, {
            method,
            headers,
            body,
            signal: AbortSignal.timeout(30_000),
          });
          const text = await res.text();
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            throw new Error(`body is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
          }
          assertEquals(res.status, row.status, `status (body ${text.slice(0, 200)})`);
          assertErrorBody(parsed, row.status, "body", { exact: true });
          assertMatch(res.headers.get("content-type") ?? "", /application\/json/);
        } catch (err) {
          failures.push(`${row.name} (${method} ${JSON.stringify(row.path)}): ${(err as Error).message}`);
        }
      }
      console.log(`  ${table.length - failures.length}/${table.length} rows as expected`);
      assertEquals(failures, [], "rows that did not get the expected error");

      await t.step("the log is not forged by a model name with a newline", () => {
        assertEquals(gw.logs.filter((l) => l.startsWith("INJECTED") || l.startsWith("X-Header")), []);
      });

      await t.step("a 100 KB header is refused with a 4xx, and the gateway still answers", async () => {
        for (const path of ["/health", "/v1/models"]) {
          const res = await fetch(gw.url + path, { headers: { Cookie: `big=${"x".repeat(100_000)}` } });
          await res.body?.cancel();
          assert(res.status >= 400 && res.status < 500, `${path} with a 100 KB cookie: ${res.status}`);
        }
        const res = await postJson(gw, "/v1/chat/completions", chat("alpha"), {
          "X-Big": "y".repeat(100_000),
        });
        await res.body?.cancel();
        assert(res.status >= 400 && res.status < 500, `chat with a 100 KB header: ${res.status}`);
        assertEquals(await getJson(gw, "/health"), { status: "ok" });
      });

      await t.step(
        "a 10 KB cookie (a browser on the web UI's origin) does not break a proxied request",
        async () => {
          const res = await postJson(gw, "/tokenize", { model: "alpha", content: "hello" }, {
            Cookie: `session=${"c".repeat(10_000)}`,
          });
          const text = await res.text();
          // credentials and cookies are the gateway's business: they never reach the engine
          assertEquals(
            res.status,
            200,
            `tokenize with a 10 KB cookie: body ${JSON.stringify(text.slice(0, 200))}`,
          );
          assert(JSON.parse(text).tokens.length > 0);
        },
      );

      await t.step("the gateway is healthy and alpha still serves", async () => {
        assertEquals(await getJson(gw, "/health"), { status: "ok" });
        const res = await postJson(gw, "/tokenize", { model: "alpha", content: "x" });
        assertEquals(res.status, 200);
        await res.body?.cancel();
        const beta = (await getJson(gw, "/models")).data.find((m: { id: string }) => m.id === "beta");
        assertEquals(beta.status.value, "unloaded", "no ?autoload value but true/1 loaded beta");
      });
    });
  },
});

// ---- bad configurations at start-up ------------------------------------------------------------------

interface StartupCase {
  name: string;
  /** preset text, written to <tmp>/preset.ini and passed with --models-preset */
  preset?: string;
  /** key file text, written to <tmp>/keys.txt and passed with --api-key-file */
  keyFile?: string;
  args?: string[];
  /** what the log must say; `FILE` stands for the file's path */
  expect: RegExp[];
}

const STARTUP_CASES: StartupCase[] = [
  {
    name: "preset: unknown key",
    preset: "[alpha]\nmodel = /models/alpha.gguf\nctx-size = 512\nbogus-key = 1\n",
    expect: [/FILE:4\b/, /bogus-key/, /not a llama-server option/],
  },
  {
    name: "preset: duplicate section",
    preset: "[alpha]\nmodel = /models/alpha.gguf\n\n[alpha]\nmodel = /models/other.gguf\n",
    expect: [/FILE:4\b/, /duplicate section \[alpha\]/, /first at line 1/],
  },
  {
    name: "preset: section without a model source",
    preset: "[*]\nctx-size = 512\n\n[lonely]\nctx-size = 1024\n",
    expect: [/FILE:4\b/, /\[lonely\]/, /no model source/],
  },
  {
    name: "preset: bad stop-timeout",
    preset: "[alpha]\nmodel = /models/alpha.gguf\nstop-timeout = soon\n",
    expect: [/FILE:3\b/, /stop-timeout/, /soon/],
  },
  {
    name: "preset: negative stop-timeout",
    preset: "[alpha]\nmodel = /models/alpha.gguf\nstop-timeout = -5\n",
    expect: [/FILE:3\b/, /stop-timeout/],
  },
  {
    name: "preset: switch with a non-boolean value",
    preset: "[alpha]\nmodel = /models/alpha.gguf\nno-mmap = maybe\n",
    expect: [/FILE:3\b/, /no-mmap/, /boolean/],
  },
  {
    name: "preset: indented key",
    preset: "[alpha]\n  model = /models/alpha.gguf\n",
    expect: [/FILE:2\b/, /column 0/],
  },
  {
    name: "preset: unsafe section name",
    preset: "[../../etc/passwd]\nmodel = /models/alpha.gguf\n",
    expect: [/FILE:1\b/, /not a safe model name/],
  },
  {
    name: "preset: file missing",
    args: ["--models-preset", "/nonexistent/switchyard/preset.ini"],
    expect: [/\/nonexistent\/switchyard\/preset\.ini/],
  },
  {
    name: "--api-key-file: unknown field",
    keyFile: "sk-good\nsk-bad foo=bar\n",
    expect: [/FILE:2\b/, /unknown field 'foo=bar'/],
  },
  {
    name: "--api-key-file: missing file",
    args: ["--api-key-file", "/nonexistent/switchyard/keys.txt"],
    expect: [/cannot read --api-key-file/, /\/nonexistent\/switchyard\/keys\.txt/],
  },
  { name: "unknown flag", args: ["--bogus-flag"], expect: [/invalid argument: --bogus-flag/, /usage:/] },
  {
    name: "flag without its value",
    args: ["--models-max"],
    expect: [/missing value for argument: --models-max/],
  },
  {
    name: "--models-max not a number",
    args: ["--models-max", "lots"],
    expect: [/--models-max expects an integer/],
  },
  { name: "--port out of range", args: ["--port", "70000"], expect: [/invalid --port 70000/] },
  {
    name: "--body-limit 0",
    args: ["--body-limit", "0"],
    expect: [/--body-limit expects a positive integer/],
  },
  { name: "--queue-max -1", args: ["--queue-max", "-1"], expect: [/--queue-max expects a positive integer/] },
  { name: "switch given a value", args: ["--offline=perhaps"], expect: [/--offline takes no value/] },
  {
    name: "--server-bin not executable",
    args: ["--server-bin", "/nonexistent/llama-server"],
    expect: [/--server-bin/],
  },
];

Deno.test({
  name: "bad start-up configurations exit non-zero with a message naming the file, line and key",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "switchyard-bad-startup-" });
    try {
      const { bin } = await fakeServerBin("exit 1", tmp);
      const models = join(tmp, "models");
      await Deno.mkdir(models);
      const failures: string[] = [];
      for (const c of STARTUP_CASES) {
        let file = "";
        const args = ["--models-dir", models, "--server-bin", bin, "--port", "0"];
        if (c.preset !== undefined) {
          file = join(tmp, "preset.ini");
          await Deno.writeTextFile(file, c.preset);
          args.push("--models-preset", file);
        }
        if (c.keyFile !== undefined) {
          file = join(tmp, "keys.txt");
          await Deno.writeTextFile(file, c.keyFile);
          args.push("--api-key-file", file);
        }
        // last, so that a flag missing its value is the last argument; later values win
        args.push(...c.args ?? []);
        const { code, out } = await runMain(args, { LLAMA_CACHE: join(tmp, "cache") });
        const problems: string[] = [];
        if (code !== 1) problems.push(`exit code ${code}, expected 1`);
        if (/listening on/.test(out)) problems.push("it started listening");
        for (const re of c.expect) {
          const pattern = new RegExp(re.source.replace("FILE", file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")));
          if (!pattern.test(out)) problems.push(`no ${pattern}`);
        }
        if (problems.length) {
          failures.push(`${c.name}: ${problems.join("; ")}; output:\n${out.slice(0, 600)}`);
        }
      }
      assertEquals(failures, [], "start-up cases that did not fail as expected");
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
