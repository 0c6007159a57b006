/**
 * Security, end to end: API keys (and that they never reach an engine), admin keys, per-key model
 * lists, the default bind address, CORS, the queue limit and the request timeout.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { type TestGateway, withGateway } from "../helpers/gateway.ts";
import { engineAvailable, getJson, postJson, postJsonWith } from "../helpers/http.ts";
import { assertErrorBody, chatBody, expectError } from "../helpers/openai.ts";
import { cmdlineOf, gatewayEngineOf, readProc } from "../helpers/processes.ts";
import { waitFor } from "../helpers/wait.ts";

const skip = await engineAvailable();
const base = { ignore: !!skip, sanitizeResources: false, sanitizeOps: false };

// ---- helpers -----------------------------------------------------------------------------------------

type Init = RequestInit & { key?: string; header?: string; json?: unknown };

/**
 * `fetch` with `key` sent as a Bearer token (or as X-Api-Key), `json` as the body, and a JSON
 * Content-Type for a body.
 */
function fetchWith(gw: TestGateway, path: string, init: Init) {
  const headers = new Headers(init.headers);
  if (init.key !== undefined) {
    if (init.header === "x-api-key") headers.set("X-Api-Key", init.key);
    else headers.set("Authorization", `Bearer ${init.key}`);
  }
  const body = init.json === undefined ? init.body : JSON.stringify(init.json);
  if (body && !headers.has("Content-Type")) headers.set("Content-Type", "application/json");
  return fetch(gw.url + path, { ...init, headers, body });
}

/** A chat request for `model` with `key` (see `fetchWith` for `header`). */
function chatAs(gw: TestGateway, key: string, model: string, header?: string) {
  return fetchWith(gw, "/v1/chat/completions", { method: "POST", key, header, json: chatBody(model) });
}

/** Asserts that the gateway refuses this request: 401 authentication_error or 403 permission_error. */
async function expectRefused(gw: TestGateway, status: 401 | 403, context: string, path: string, init: Init) {
  const type = status === 401 ? "authentication_error" : "permission_error";
  await expectError(await fetchWith(gw, path, init), status, context, { type });
}

const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });

/** Writes `<dir>/keys.txt` (an `--api-key-file`) and returns its path. */
async function writeKeyFile(dir: string, text: string): Promise<string> {
  const keyFile = join(dir, "keys.txt");
  await Deno.writeTextFile(keyFile, text);
  return keyFile;
}

// ---- 1. API keys -------------------------------------------------------------------------------------

const KEY1 = "sk-sy-test-key-one-7f3a";
const KEY2 = "sk-sy-test-key-two-9b2c";
const ENV_KEY = "sk-sy-test-env-key-3d4e";
const FILE_KEY = "sk-sy-test-file-key-5a6b";

Deno.test({
  ...base,
  name:
    "--api-key k1,k2: 401 without or with a wrong key, both keys work, /health is public, no key reaches the engine",
  fn: () =>
    withGateway(
      ["alpha"],
      { args: ["--api-key", `${KEY1},${KEY2}`, "-c", "256", "-np", "1"] },
      async (gw, dir) => {
        const unauthorized = [
          ["no key", "/v1/models", {}],
          ["wrong key", "/v1/models", { key: "sk-wrong" }],
          ["wrong X-Api-Key", "/v1/models", { key: "sk-wrong", header: "x-api-key" }],
          ["chat without a key", "/v1/chat/completions", { method: "POST", json: chatBody("alpha") }],
          ["the whole list is not a key", "/v1/models", { key: `${KEY1},${KEY2}` }],
        ] as const;
        for (const [context, path, init] of unauthorized) await expectRefused(gw, 401, context, path, init);
        assertEquals(await (await fetch(gw.url + "/health")).json(), { status: "ok" }, "/health is public");
        assertEquals((await fetch(gw.url + "/v1/health")).status, 200, "/v1/health is public");

        const accepted = [[KEY1, "bearer"], [KEY2, "bearer"], [KEY1, "x-api-key"], [KEY2, "x-api-key"]];
        for (const [key, header] of accepted) {
          const list = await fetchWith(gw, "/v1/models", { key, header });
          assertEquals(list.status, 200, `${key} as ${header}`);
          await list.body?.cancel();
          const res = await chatAs(gw, key, "alpha", header);
          assertEquals(res.status, 200, `chat with ${key} as ${header}`);
          await res.body?.cancel();
        }

        const entry = (await getJson(gw, "/models", bearer(KEY1))).data[0];
        assertEquals(entry.status.value, "loaded");
        const args = entry.status.args.join(" ");
        assert(!args.includes(KEY1) && !args.includes(KEY2), `status.args holds a key: ${args}`);
        assert(!args.includes("--api-key"), `status.args: ${args}`);
        const pid = gatewayEngineOf(gw.pid, join(dir, "alpha.gguf"));
        const cmdline = cmdlineOf(pid);
        assert(cmdline.includes("--alias alpha"), cmdline);
        assert(
          !cmdline.includes(KEY1) && !cmdline.includes(KEY2),
          `engine command line holds a key: ${cmdline}`,
        );
        const environ = readProc(pid, "environ");
        assert(environ.length > 0, "the engine's environment is readable");
        assert(!environ.includes(KEY1) && !environ.includes(KEY2), "engine environment holds a key");
      },
    ),
});

Deno.test({
  ...base,
  name: "LLAMA_API_KEY given to the gateway is enforced there and does not reach the engine's environment",
  fn: () =>
    withGateway(["alpha"], async (dir) => {
      const keyFile = await writeKeyFile(dir, `${FILE_KEY}\n`);
      return { args: ["--api-key-file", keyFile, "-c", "256", "-np", "1"], env: { LLAMA_API_KEY: ENV_KEY } };
    }, async (gw, dir) => {
      await expectRefused(gw, 401, "no key", "/v1/models", {});
      const res = await chatAs(gw, ENV_KEY, "alpha");
      assertEquals(res.status, 200, "the env key works");
      await res.body?.cancel();
      const pid = gatewayEngineOf(gw.pid, join(dir, "alpha.gguf"));
      const leaked = readProc(pid, "environ").split("\0").filter((v) =>
        v.startsWith("LLAMA_API_KEY=") || v.includes(ENV_KEY)
      );
      // The visible consequence of a leak: a key the gateway accepts from another source (the key
      // file) is forwarded to an engine that only knows LLAMA_API_KEY, and the engine refuses it.
      const viaFile = await chatAs(gw, FILE_KEY, "alpha");
      const viaFileText = await viaFile.text();
      // Regression test: before 0f8b85f runners and engines inherited the gateway's whole environment,
      // so llama-server read LLAMA_API_KEY itself and enforced it, contrary to auth.ts ("keys ... never
      // reach an engine"): it answered 401 "Invalid API Key" to a --api-key-file key the gateway accepted.
      assertEquals(
        { leaked, fileKeyStatus: viaFile.status },
        { leaked: [], fileKeyStatus: 200 },
        `LLAMA_API_KEY in the engine's environment; file key answer: ${viaFileText}`,
      );
    }),
});

Deno.test({
  ...base,
  name: "LLAMA_ARG_API_KEY_FILE (the env form of --api-key-file) works end to end",
  fn: () =>
    withGateway(["alpha"], async (dir) => {
      const keyFile = await writeKeyFile(dir, "userA models=alpha\n");
      return { args: ["-c", "256", "-np", "1"], env: { LLAMA_ARG_API_KEY_FILE: keyFile } };
    }, async (gw) => {
      await expectRefused(gw, 401, "no key", "/v1/models", {});
      const list = await (await fetchWith(gw, "/v1/models", { key: "userA" })).json();
      assertEquals(list.data.map((m: { id: string }) => m.id), ["alpha"], "the gateway read the file");
      const res = await chatAs(gw, "userA", "alpha");
      const text = await res.text();
      // Regression test: before 0f8b85f the engine inherited LLAMA_ARG_API_KEY_FILE, read the same
      // file as llama-server key lines (so its only key was "userA models=alpha") and answered 401
      // "Invalid API Key" to every request the gateway let through.
      assertEquals(res.status, 200, `chat with userA: ${text}`);
    }),
});

// ---- 2. admin keys -----------------------------------------------------------------------------------

Deno.test({
  ...base,
  name: "admin keys: a user key infers but gets 403 on model management; the admin key may do it all",
  fn: () =>
    withGateway(["alpha", "beta"], {
      args: ["--api-key", "user1", "--admin-api-key", "adm", "-c", "256", "-np", "1"],
    }, async (gw) => {
      const management = [
        ["POST", "/models/load", { model: "beta" }],
        ["POST", "/models/unload", { model: "alpha" }],
        ["POST", "/models", { model: "ggml-org/some-model-GGUF" }],
        ["DELETE", "/models?model=alpha", undefined],
        ["GET", "/models?reload=1", undefined],
      ] as const;
      const res = await chatAs(gw, "user1", "alpha");
      assertEquals(res.status, 200, "user1 can chat (and autoload)");
      await res.body?.cancel();
      assertEquals((await fetchWith(gw, "/models", { key: "user1" })).status, 200, "user1 can list");

      for (const [method, path, body] of management) {
        await expectRefused(gw, 403, `user1 ${method} ${path}`, path, { method, key: "user1", json: body });
      }
      assertEquals(
        gw.logs.filter((l) => /downloading|loading beta|models reloaded/.test(l)),
        [],
        "nothing ran",
      );

      const expected: Record<string, number> = {
        "/models/load": 200,
        "/models/unload": 200,
        // a download starts (and fails at once: the hub is a closed port on 127.0.0.1)
        "/models": 200,
        // alpha is not a cache model: not removable, but the request got past the permission check
        "/models?model=alpha": 400,
        "/models?reload=1": 200,
      };
      for (const [method, path, body] of management) {
        const r = await fetchWith(gw, path, { method, key: "adm", json: body });
        const text = await r.text();
        assert(r.status !== 401 && r.status !== 403, `adm ${method} ${path}: ${r.status} ${text}`);
        assertEquals(r.status, expected[path], `adm ${method} ${path}: ${text}`);
        if (r.status !== 200) assertErrorBody(JSON.parse(text), r.status, `adm ${method} ${path}`);
      }
      const chatAdm = await chatAs(gw, "adm", "beta");
      assertEquals(chatAdm.status, 200, "the admin key also infers");
      await chatAdm.body?.cancel();
    }),
});

// ---- 3. per-key model lists --------------------------------------------------------------------------

Deno.test({
  ...base,
  name: "--api-key-file 'userA models=alpha': userA uses and sees only alpha, gets 403 for beta",
  fn: () =>
    withGateway(["alpha", "beta"], async (dir) => {
      const keyFile = await writeKeyFile(dir, "# team keys\nuserA models=alpha\nuserB   # every model\n");
      return { args: ["--api-key-file", keyFile, "-c", "256", "-np", "1"] };
    }, async (gw) => {
      const ok = await chatAs(gw, "userA", "alpha");
      assertEquals(ok.status, 200);
      await ok.body?.cancel();
      for (const path of ["/v1/models", "/models"]) {
        const list = await (await fetchWith(gw, path, { key: "userA" })).json();
        assertEquals(list.data.map((m: { id: string }) => m.id), ["alpha"], `${path} for userA`);
      }
      const all = await (await fetchWith(gw, "/v1/models", { key: "userB" })).json();
      assertEquals(all.data.map((m: { id: string }) => m.id), ["alpha", "beta"], "userB sees every model");

      const forbidden = [
        ["userA chat beta", "/v1/chat/completions", { method: "POST", json: chatBody("beta") }],
        ["userA tokenize beta", "/tokenize", { method: "POST", json: { model: "beta", content: "x" } }],
        ["userA GET /props?model=beta", "/props?model=beta", {}],
        ["userA load beta", "/models/load", { method: "POST", json: { model: "beta" } }],
        ["userA logs of beta", "/models/logs?model=beta", {}],
      ] as const;
      for (const [context, path, init] of forbidden) {
        await expectRefused(gw, 403, context, path, { ...init, key: "userA" });
      }
      const models = (await getJson(gw, "/models", bearer("userB"))).data;
      const beta = models.find((m: { id: string }) => m.id === "beta");
      assertEquals(beta.status.value, "unloaded", "beta was never loaded for userA");
    }),
});

// ---- 4. bind address and CORS ------------------------------------------------------------------------

Deno.test({
  ...base,
  name: "the default bind is 127.0.0.1; CORS headers only for --cors-origins origins",
  async fn() {
    const preflight = (gw: TestGateway, origin: string) =>
      fetch(gw.url + "/v1/chat/completions", {
        method: "OPTIONS",
        headers: {
          Origin: origin,
          "Access-Control-Request-Method": "POST",
          "Access-Control-Request-Headers": "content-type,authorization",
        },
      });
    await withGateway(["alpha"], {}, async (plain) => {
      assertMatch(await plain.waitForLog(/listening on/), /listening on http:\/\/127\.0\.0\.1:\d+$/);
      assertMatch(plain.url, /^http:\/\/127\.0\.0\.1:/);
      const res = await preflight(plain, "http://a.example");
      await res.body?.cancel();
      assertEquals(res.headers.get("access-control-allow-origin"), null, "no CORS without --cors-origins");
      const get = await fetch(plain.url + "/v1/models", { headers: { Origin: "http://a.example" } });
      await get.body?.cancel();
      assertEquals(get.headers.get("access-control-allow-origin"), null);
    });

    const cors = { args: ["--cors-origins", "http://a.example", "--api-key", KEY1] };
    await withGateway(["alpha"], cors, async (gw) => {
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

      const get = await fetch(gw.url + "/v1/models", {
        headers: { Origin: "http://a.example", Authorization: `Bearer ${KEY1}` },
      });
      await get.body?.cancel();
      assertEquals(get.status, 200);
      assertEquals(get.headers.get("access-control-allow-origin"), "http://a.example");
    });
  },
});

// ---- 5. --queue-max ----------------------------------------------------------------------------------

Deno.test({
  ...base,
  name: "--queue-max 1: with one request already waiting for a model, the next one gets 503 with Retry-After",
  fn: () =>
    withGateway(
      ["a", "b"],
      { args: ["--models-max", "1", "--queue-max", "1", "-c", "4096", "-np", "1"] },
      async (gw) => {
        const busy = new AbortController();
        try {
          // a is busy with a long stream: it cannot be evicted, so b must wait for room
          const stream = await postJsonWith(
            gw,
            "/v1/chat/completions",
            chatBody("a", { max_tokens: 4000, ignore_eos: true, stream: true }),
            { signal: busy.signal },
          );
          assertEquals(stream.status, 200);
          const reader = stream.body!.getReader();
          await reader.read();

          const waiting = postJsonWith(gw, "/tokenize", { model: "b", content: "x" }, {
            signal: AbortSignal.timeout(60_000),
          });
          await waitFor(
            async () => (await getJson(gw, "/props")).switchyard?.queue === 1,
            5_000,
            "one request queued for b",
          );
          const refused = await postJson(gw, "/tokenize", { model: "b", content: "x" });
          assertEquals(refused.headers.get("retry-after"), "1");
          await expectError(refused, 503, "second request for b", { type: "unavailable_error" });

          busy.abort();
          await reader.cancel().catch(() => {});
          const served = await waiting;
          assertEquals(served.status, 200, "the waiting request is served once a is released");
          assert((await served.json()).tokens.length > 0);
        } finally {
          busy.abort();
        }
      },
    ),
});

// ---- 6. --timeout ------------------------------------------------------------------------------------

Deno.test({
  ...base,
  name: "--timeout 2: a long non-streaming generation ends with an error within ~5 s",
  fn: () =>
    withGateway(["alpha"], { args: ["--timeout", "2", "-c", "4096", "-np", "1"] }, async (gw) => {
      const long = { model: "alpha", prompt: "hi", n_predict: 100000, ignore_eos: true };
      // the same request sent straight to the engine really takes longer than 2 s (it is not answered
      // within 2.5 s), so what ends the request through the gateway is --timeout
      const load = await postJson(gw, "/tokenize", { model: "alpha", content: "x" });
      assertEquals(load.status, 200);
      await load.body?.cancel();
      const args: string[] = (await getJson(gw, "/models")).data[0].status.args;
      const port = Number(args[args.lastIndexOf("--port") + 1]);
      assert(port > 0, `engine port from status.args: ${args.join(" ")}`);
      const engine = { url: `http://127.0.0.1:${port}` };
      const direct = await postJsonWith(engine, "/completion", long, { signal: AbortSignal.timeout(2_500) })
        .then((r) => `answered ${r.status}`, (err) => (err as Error).name);
      assertEquals(direct, "TimeoutError", "the long generation takes more than 2.5 s on the engine itself");

      const started = performance.now();
      const res = await postJsonWith(gw, "/completion", long, { signal: AbortSignal.timeout(30_000) });
      const text = await res.text();
      const elapsed = performance.now() - started;
      assert(elapsed < 5_000, `ended after ${Math.round(elapsed)} ms`);
      assert(elapsed >= 1_900, `ended after ${Math.round(elapsed)} ms, before the timeout`);
      assert(res.status >= 500, `status ${res.status}: ${text.slice(0, 200)}`);
      assertErrorBody(JSON.parse(text), res.status, "timed out request");
      assertMatch(JSON.parse(text).error.message, /timed out/);
      // the engine is still usable afterwards
      const after = await postJson(gw, "/tokenize", { model: "alpha", content: "x" });
      assertEquals(after.status, 200);
      await after.body?.cancel();
    }),
});
