// End-to-end check that the tiny GGUF fixture is a model the real llama-server loads and serves. Skipped (with
// the reason printed) when no llama-server binary is available, so the suite still passes without an engine.
import { splitPath, tinyLlamaVocab, writeTinyLlama, writeTinyLlamaSharded } from "../fixtures/gguf.ts";
import { assert } from "../helpers/assert.ts";
import { engineAvailable } from "../helpers/http.ts";
import { engineBinPath, type RunningEngine, startEngine } from "../helpers/llama_server.ts";

const ignore = !!await engineAvailable();

function startServer(model: string, extraArgs: string[] = []): Promise<RunningEngine> {
  return startEngine(engineBinPath(), ["-m", model, "-c", "512", "--no-webui", ...extraArgs]);
}

// deno-lint-ignore no-explicit-any
type Json = any;

async function post(
  server: RunningEngine,
  path: string,
  body: unknown,
): Promise<{ status: number; json: Json }> {
  const res = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let json: Json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${path}: ${res.status} non-JSON body ${text.slice(0, 300)}\n${server.log()}`);
  }
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${text.slice(0, 500)}\n${server.log()}`);
  return { status: res.status, json };
}

async function withModel(
  fn: (dir: string) => Promise<string>,
  body: (server: RunningEngine) => Promise<void>,
  extraArgs: string[] = [],
): Promise<RunningEngine> {
  const dir = await Deno.makeTempDir({ prefix: "switchyard_gguf_e2e_" });
  try {
    const model = await fn(dir);
    const server = await startServer(model, extraArgs);
    try {
      await body(server);
    } finally {
      await server.stop();
    }
    return server;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "tiny llama on llama-server: chat, completion, tokenize, streaming, many samples",
  ignore,
  async fn(t) {
    let modelBytes = 0;
    const server = await withModel(async (dir) => {
      const path = `${dir}/tiny.gguf`;
      await writeTinyLlama(path, { name: "tiny-e2e" });
      modelBytes = (await Deno.stat(path)).size;
      return path;
    }, async (s) => {
      await t.step("chat completion (non-streaming)", async () => {
        const { json } = await post(s, "/v1/chat/completions", {
          messages: [{ role: "system", content: "be brief" }, { role: "user", content: "hello" }],
          max_tokens: 8,
        });
        const c = json.choices?.[0];
        assert(typeof c?.message?.content === "string", `content: ${JSON.stringify(json)}`);
        // EOS can never be sampled by default, so every generation runs to max_tokens.
        assert(c.finish_reason === "length", `finish_reason ${c.finish_reason}`);
        assert(json.usage?.completion_tokens === 8, `usage ${JSON.stringify(json.usage)}`);
      });

      await t.step("completion", async () => {
        const { json } = await post(s, "/completion", { prompt: "hello world", n_predict: 8 });
        assert(typeof json.content === "string", `content: ${JSON.stringify(json)}`);
        assert(json.tokens_predicted === 8, `tokens_predicted ${json.tokens_predicted}`);
      });

      await t.step("tokenize uses the SPM vocabulary and round-trips", async () => {
        const vocab = tinyLlamaVocab();
        const { json } = await post(s, "/tokenize", { content: "hello world" });
        const want = [vocab.tokens.indexOf("\u2581hello"), vocab.tokens.indexOf("\u2581world")];
        assert(JSON.stringify(json.tokens) === JSON.stringify(want), `tokens ${JSON.stringify(json.tokens)}`);
        // Non-ASCII input falls back to byte tokens, which must all exist or tokenizing throws.
        const text = "h\u00e9llo \u65e5\u672c\n";
        const tok = await post(s, "/tokenize", { content: text });
        const back = await post(s, "/detokenize", { tokens: tok.json.tokens });
        assert(
          back.json.content.trimStart() === text,
          `detokenize gave ${JSON.stringify(back.json.content)}`,
        );
      });

      await t.step("streaming chat ends with [DONE]", async () => {
        const res = await fetch(`${s.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 8, stream: true }),
        });
        const text = await res.text();
        assert(res.status === 200, `status ${res.status}: ${text}`);
        assert((res.headers.get("content-type") ?? "").startsWith("text/event-stream"), "SSE content type");
        const data = text.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6));
        assert(data.at(-1) === "[DONE]", `last event ${data.at(-1)}`);
        const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
        const content = chunks.map((c) => c.choices?.[0]?.delta?.content ?? "").join("");
        assert(chunks.length >= 2 && typeof content === "string", `chunks ${text.slice(0, 500)}`);
        assert(
          chunks.some((c) => c.choices?.[0]?.finish_reason === "length"),
          "a chunk carries finish_reason",
        );
      });

      await t.step("many hot samples never produce invalid UTF-8 or stray tokens", async () => {
        for (let i = 0; i < 24; i++) {
          // Half of them disable every truncating sampler, so only the weights keep unsafe tokens out.
          const wide = i % 2 === 1 ? { top_k: 0, top_p: 1, min_p: 0, temperature: 2 } : { temperature: 1 };
          const { json } = await post(s, "/v1/chat/completions", {
            messages: [{ role: "user", content: `sample ${i}` }],
            max_tokens: 48,
            seed: 1000 + i,
            ...wide,
          });
          const content: string = json.choices[0].message.content;
          assert(/^[\x20-\x7e\n]*$/.test(content), `non-ASCII output ${JSON.stringify(content)}`);
          assert(json.choices[0].finish_reason === "length", `finish ${json.choices[0].finish_reason}`);
        }
      });

      await t.step("generation speed", async () => {
        const { json } = await post(s, "/completion", { prompt: "hello", n_predict: 256, temperature: 1 });
        assert(json.tokens_predicted === 256, `tokens_predicted ${json.tokens_predicted}`);
        console.log(
          `  model ${modelBytes} bytes; prompt ${json.timings.prompt_per_second.toFixed(0)} tok/s; ` +
            `generation ${json.timings.predicted_per_second.toFixed(0)} tok/s`,
        );
      });
    });
    console.log(`  llama-server healthy after ${server.healthyMs.toFixed(0)} ms`);
  },
});

Deno.test({
  name: "tiny llama on llama-server: --no-jinja still applies the built-in chatml template",
  ignore,
  async fn() {
    await withModel(async (dir) => {
      await writeTinyLlama(`${dir}/tiny.gguf`);
      return `${dir}/tiny.gguf`;
    }, async (s) => {
      const { json } = await post(s, "/apply-template", { messages: [{ role: "user", content: "hi" }] });
      const want = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n";
      assert(json.prompt === want, `prompt ${JSON.stringify(json.prompt)}`);
      const chat = await post(s, "/v1/chat/completions", {
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 4,
      });
      assert(typeof chat.json.choices[0].message.content === "string", "chat content");
    }, ["--no-jinja"]);
  },
});

Deno.test({
  name: "tiny llama on llama-server: emitEos lets generations stop on their own",
  ignore,
  async fn() {
    await withModel(async (dir) => {
      await writeTinyLlama(`${dir}/eos.gguf`, { emitEos: true });
      return `${dir}/eos.gguf`;
    }, async (s) => {
      // Roughly 40% of 300-token samples hit </s> or <|im_end|>; 16 seeded tries make a miss vanishingly rare.
      const reasons: string[] = [];
      for (let seed = 1; seed <= 16 && !reasons.includes("stop"); seed++) {
        const { json } = await post(s, "/v1/chat/completions", {
          messages: [{ role: "user", content: "hi" }],
          max_tokens: 300,
          temperature: 1,
          seed,
        });
        reasons.push(json.choices[0].finish_reason);
      }
      assert(reasons.includes("stop"), `finish reasons ${reasons}`);
    });
  },
});

Deno.test({
  name: "tiny llama on llama-server: sharded model loads from its first split",
  ignore,
  async fn() {
    await withModel(async (dir) => {
      const paths = await writeTinyLlamaSharded(dir, 3, { name: "tiny-sharded" });
      assert(paths[0] === splitPath(`${dir}/tiny-sharded`, 0, 3), `first split ${paths[0]}`);
      return paths[0];
    }, async (s) => {
      const { json } = await post(s, "/completion", { prompt: "hello", n_predict: 4 });
      assert(json.tokens_predicted === 4, `tokens_predicted ${json.tokens_predicted}`);
    });
  },
});

Deno.test({
  name: "tiny llama on llama-server: a 50 MB padded model loads and serves",
  ignore,
  async fn() {
    const size = 50 * 1024 * 1024;
    const server = await withModel(async (dir) => {
      const path = `${dir}/big.gguf`;
      await writeTinyLlama(path, { padToBytes: size, seed: 5 });
      assert((await Deno.stat(path)).size === size, "exact size");
      return path;
    }, async (s) => {
      const { json } = await post(s, "/completion", { prompt: "hello", n_predict: 64 });
      assert(json.tokens_predicted === 64, `tokens_predicted ${json.tokens_predicted}`);
      console.log(`  50 MB model: generation ${json.timings.predicted_per_second.toFixed(0)} tok/s`);
    });
    console.log(`  50 MB model healthy after ${server.healthyMs.toFixed(0)} ms`);
  },
});
