/**
 * llama.cpp router parity, end to end: a real gateway, real llama-server engines, real tiny models.
 */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { makeModelsDir } from "../helpers/models.ts";
import { writeTinyLlamaSharded } from "../fixtures/gguf.ts";
import { startGateway, stopAndCheck } from "../helpers/gateway.ts";
import { engineAvailable, getJson, postJson, postJsonWith, waitForStatus } from "../helpers/http.ts";
import { ENDLESS_ENGINE_ARGS, ENDLESS_GENERATION } from "../helpers/llama_server.ts";
import { chatBody } from "../helpers/openai.ts";
import { HANG_MS } from "../helpers/wait.ts";

const skip = await engineAvailable();

Deno.test({
  name: "router parity: listing, autoload, proxying, streaming, LRU, unload, errors",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const dir = await makeModelsDir(["alpha", "beta", "gamma"]);
    const gw = await startGateway({
      args: ["--models-dir", dir, "--models-max", "2", "-c", "512", "-np", "1"],
    });
    try {
      await t.step("health and router props", async () => {
        assertEquals(await getJson(gw, "/health"), { status: "ok" });
        const props = await getJson(gw, "/props");
        assertEquals(props.role, "router");
        assertEquals(props.max_instances, 2);
        assertEquals(props.models_autoload, true);
        assertMatch(props.build_info, /^b\d+/);
      });

      await t.step("models are listed unloaded, with their args", async () => {
        const list = await getJson(gw, "/v1/models");
        assertEquals(list.object, "list");
        assertEquals(list.data.map((m: { id: string }) => m.id), ["alpha", "beta", "gamma"]);
        for (const m of list.data) {
          assertEquals(m.status.value, "unloaded");
          assertEquals(m.source, "models_dir");
          assertEquals(m.can_remove, false);
          assert(
            m.status.args.includes("--ctx-size") && m.status.args.includes("512"),
            m.status.args.join(" "),
          );
          assert(m.status.args.includes("--alias") && m.status.args.includes(m.id));
        }
      });

      await t.step("a chat request autoloads its model and is answered", async () => {
        const res = await postJson(gw, "/v1/chat/completions", {
          model: "alpha",
          messages: [{ role: "user", content: "hi" }],
          max_tokens: 8,
        });
        assertEquals(res.status, 200);
        const body = await res.json();
        assertEquals(typeof body.choices[0].message.content, "string");
        assertEquals(body.model, "alpha");
        const list = await getJson(gw, "/models");
        const alpha = list.data.find((m: { id: string }) => m.id === "alpha");
        assertEquals(alpha.status.value, "loaded");
        assert(alpha.meta?.n_vocab > 0, "the engine's model info is merged into the entry");
      });

      await t.step("streaming passes through as SSE and ends with [DONE]", async () => {
        const res = await postJson(gw, "/v1/chat/completions", {
          model: "alpha",
          messages: [{ role: "user", content: "hi" }],
          max_tokens: 8,
          stream: true,
        });
        assertEquals(res.status, 200);
        assertMatch(res.headers.get("content-type") ?? "", /text\/event-stream/);
        const text = await res.text();
        const events = text.split("\n").filter((l) => l.startsWith("data: "));
        assert(events.length >= 2, text);
        assertEquals(events.at(-1), "data: [DONE]");
      });

      await t.step("completion, tokenize and GET routes by ?model=", async () => {
        const completion = await postJson(gw, "/completion", {
          model: "alpha",
          prompt: "hello",
          n_predict: 4,
        });
        assertEquals(completion.status, 200);
        assertEquals(typeof (await completion.json()).content, "string");
        const tok = await postJson(gw, "/tokenize", { model: "alpha", content: "hello world" });
        assertEquals(tok.status, 200);
        assert((await tok.json()).tokens.length > 0);
        const props = await getJson(gw, "/props?model=alpha");
        assert(props.default_generation_settings, "engine props are proxied");
        assertEquals(props.role, undefined);
      });

      await t.step("--models-max evicts the least recently used idle model", async () => {
        assertEquals((await postJson(gw, "/tokenize", { model: "beta", content: "x" })).status, 200);
        assertEquals((await postJson(gw, "/tokenize", { model: "gamma", content: "x" })).status, 200);
        await waitForStatus(gw, "alpha", "unloaded");
        const list = await getJson(gw, "/models");
        const states = Object.fromEntries(
          list.data.map((m: { id: string; status: { value: string } }) => [m.id, m.status.value]),
        );
        assertEquals(states, { alpha: "unloaded", beta: "loaded", gamma: "loaded" });
      });

      await t.step("explicit unload and load", async () => {
        assertEquals(await (await postJson(gw, "/models/unload", { model: "gamma" })).json(), {
          success: true,
        });
        await waitForStatus(gw, "gamma", "unloaded");
        const again = await postJson(gw, "/models/unload", { model: "gamma" });
        assertEquals(again.status, 400);
        assertEquals((await again.json()).error.message, "model is not running");
        assertEquals(await (await postJson(gw, "/models/load", { model: "gamma" })).json(), {
          success: true,
        });
        await waitForStatus(gw, "gamma", "loaded");
        const twice = await postJson(gw, "/models/load", { model: "gamma" });
        assertEquals(twice.status, 400);
        assertEquals((await twice.json()).error.message, "model is already running");
      });

      await t.step("errors have the OpenAI shape and the right status", async () => {
        const cases: [string, string, BodyInit, number, string][] = [
          ["/v1/chat/completions", "POST", "{not json", 400, "invalid_request_error"],
          ["/v1/chat/completions", "POST", JSON.stringify({ messages: [] }), 400, "invalid_request_error"],
          [
            "/v1/chat/completions",
            "POST",
            JSON.stringify({ model: "nope", messages: [] }),
            400,
            "invalid_request_error",
          ],
          ["/v1/chat/completions", "POST", "[1,2]", 400, "invalid_request_error"],
          ["/models/load", "POST", JSON.stringify({ model: "nope" }), 404, "not_found_error"],
          ["/models/unload", "POST", JSON.stringify({ model: "nope" }), 400, "invalid_request_error"],
          ["/no/such/path", "GET", "", 404, "not_found_error"],
        ];
        for (const [path, method, body, status, type] of cases) {
          const res = await fetch(gw.url + path, { method, body: method === "GET" ? undefined : body });
          const json = await res.json();
          assertEquals(res.status, status, `${method} ${path} ${body}`);
          assertEquals(json.error.type, type, `${method} ${path} ${body}`);
          assertEquals(json.error.code, status);
          assertEquals(typeof json.error.message, "string");
        }
      });

      await t.step("?autoload=false refuses an unloaded model", async () => {
        const res = await postJson(gw, "/tokenize?autoload=false", { model: "alpha", content: "x" });
        assertEquals(res.status, 400);
        assertEquals((await res.json()).error.message, "model is not loaded");
      });
    } finally {
      await stopAndCheck(gw);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a model that fails to load gives 500 with the engine's last log lines, and is marked failed",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await makeModelsDir(["good"]);
    await Deno.writeTextFile(`${dir}/broken.gguf`, "this is not a gguf file");
    const gw = await startGateway({ args: ["--models-dir", dir, "-c", "512"] });
    try {
      const res = await postJson(gw, "/v1/chat/completions", { model: "broken", messages: [] });
      assertEquals(res.status, 500);
      const body = await res.json();
      assertEquals(body.error.type, "server_error");
      assertMatch(body.error.message, /failed to load/);
      assertMatch(body.error.message, /gguf|model/i);
      const entry = (await getJson(gw, "/models")).data.find((m: { id: string }) => m.id === "broken");
      assertEquals(entry.status.value, "unloaded");
      assertEquals(entry.status.failed, true);
      assert(entry.status.exit_code !== 0);
      const ok = await postJson(gw, "/tokenize", { model: "good", content: "x" });
      assertEquals(ok.status, 200, "other models are untouched");
    } finally {
      await stopAndCheck(gw);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a client that disconnects mid-stream aborts the generation upstream, freeing the engine's slot",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await makeModelsDir(["solo"]);
    // One slot, and a generation that never ends by itself: unless the abort reaches the engine, the next
    // request waits for the slot forever, however fast the machine is.
    const gw = await startGateway({
      args: ["--models-dir", dir, "-c", "512", "-np", "1", ...ENDLESS_ENGINE_ARGS],
    });
    try {
      const client = new AbortController();
      const res = await postJsonWith(
        gw,
        "/v1/chat/completions",
        chatBody("solo", { ...ENDLESS_GENERATION, stream: true }),
        { signal: client.signal },
      );
      const reader = res.body!.getReader();
      await reader.read();
      client.abort();
      await reader.cancel().catch(() => {});
      const next = await postJsonWith(gw, "/completion", { model: "solo", prompt: "hello", n_predict: 4 }, {
        signal: AbortSignal.timeout(HANG_MS),
      });
      assertEquals(next.status, 200, "the slot was freed: the next request was served");
      assertEquals((await next.json()).tokens_predicted, 4);
      const slots = await getJson(gw, "/slots?model=solo");
      assertEquals(slots.filter((s: { is_processing: boolean }) => s.is_processing).length, 0);
    } finally {
      await stopAndCheck(gw);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "--models-dir: a sub-folder with a multi-shard model and top-level shards are one model each, and serve",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await makeModelsDir(["plain"]);
    await writeTinyLlamaSharded(`${dir}/folder-model`, 3, { baseName: "weights-Q8_0" });
    await writeTinyLlamaSharded(dir, 2, { baseName: "top-split" });
    const gw = await startGateway({ args: ["--models-dir", dir, "-c", "256"] });
    try {
      const list = await getJson(gw, "/models");
      assertEquals(list.data.map((m: { id: string }) => m.id), ["folder-model", "plain", "top-split"]);
      for (const id of ["folder-model", "top-split"]) {
        const entry = list.data.find((m: { id: string }) => m.id === id);
        const model = entry.status.args[entry.status.args.indexOf("--model") + 1];
        assertMatch(model, /-00001-of-0000\d\.gguf$/, "the first shard is the model path");
        const res = await postJson(gw, "/tokenize", { model: id, content: "hello" });
        assertEquals(res.status, 200, `${id}: ${await res.clone().text()}`);
        assert((await res.json()).tokens.length > 0);
      }
    } finally {
      await stopAndCheck(gw);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
