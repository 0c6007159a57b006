/**
 * The official `ollama` npm client, unchanged, against Switchyard on real engines and tiny models:
 * every call of the client a user makes (version, list, show, ps, chat, generate, embed, embeddings,
 * pull, delete), with the gateway's API key, and a cancelled stream that must abort the engine's
 * generation. One gateway for the file: `alpha` and `beta` from a models dir (beta without jinja,
 * whose JSON grammars this llama.cpp builds for the tiny model's template), and a fake Hub on
 * loopback to pull from.
 */
import { join } from "node:path";
import { Ollama } from "ollama";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { type TestGateway, withGateway } from "../helpers/gateway.ts";
import { engineAvailable, getJson, postJsonWith } from "../helpers/http.ts";
import { ENDLESS_ENGINE_ARGS } from "../helpers/llama_server.ts";
import { HANG_MS, waitFor, within } from "../helpers/wait.ts";
import { startFakeHub } from "../fixtures/fake_hub.ts";
import { tinyLlamaGguf } from "../fixtures/gguf.ts";

const skip = await engineAvailable();
const KEY = "sk-ollama-e2e-4b1d";
const AUTH = { Authorization: `Bearer ${KEY}` };
const REPO = "me/tiny-GGUF";
const Q8 = tinyLlamaGguf({ seed: 11 });
const Q4 = tinyLlamaGguf({ seed: 12 });
/** Ollama's shape of a model that does not expire now */
const NEVER = "9999-12-31T23:59:59.999Z";

/** What the client throws for an error answer: its `error` message and the status. */
async function refusal(call: () => Promise<unknown>): Promise<{ message: string; status?: number }> {
  try {
    await call();
  } catch (err) {
    return { message: (err as Error).message, status: (err as { status_code?: number }).status_code };
  }
  throw new Error("the call was expected to fail");
}

const running = async (ollama: Ollama) => (await ollama.ps()).models.map((m) => m.name);

Deno.test({
  name: "the official ollama client works unchanged against Switchyard",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const hub = await startFakeHub({
      repos: { [REPO]: { files: { "tiny-Q8_0.gguf": Q8, "tiny-Q4_K_M.gguf": Q4 } } },
    });
    try {
      await withGateway(["alpha", "beta"], async (dir) => {
        await Deno.writeTextFile(join(dir, "preset.ini"), "[beta]\njinja = false\n");
        return {
          args: [
            "--models-preset",
            join(dir, "preset.ini"),
            "--api-key",
            KEY,
            ...["-c", "512", "-np", "1", "--embeddings", "--pooling", "mean", ...ENDLESS_ENGINE_ARGS],
          ],
          env: { HF_ENDPOINT: hub.url, MODEL_ENDPOINT: hub.url },
        };
      }, async (gw, dir) => {
        const ollama = new Ollama({ host: gw.url, headers: AUTH });
        await steps(t, gw, dir, ollama);
      });
    } finally {
      await hub.close();
    }
  },
});

async function steps(t: Deno.TestContext, gw: TestGateway, dir: string, ollama: Ollama): Promise<void> {
  await t.step("version, list and show, from the models' GGUF headers", async () => {
    assertMatch((await ollama.version()).version, /^\d+\.\d+\.\d+$/);
    const { models } = await ollama.list();
    assertEquals(models.map((m) => m.name), ["alpha", "beta"]);
    const alpha = models[0];
    assertEquals(alpha.size, (await Deno.stat(join(dir, "alpha.gguf"))).size);
    assertMatch(alpha.digest, /^[0-9a-f]{64}$/);
    assertEquals(alpha.details.family, "llama");
    assertEquals(alpha.details.parameter_size, "170K");
    assertEquals(alpha.details.quantization_level, "F32");
    const show = await ollama.show({ model: "alpha:latest" });
    assertEquals(show.details.format, "gguf");
    assertEquals((show.model_info as unknown as Record<string, unknown>)["llama.context_length"], 4096);
    assertMatch(show.template, /<\|im_start\|>/);
    assertEquals(show.capabilities, ["completion", "embedding"]);
    assertMatch(show.parameters, /^num_ctx\s+512$/m);
  });

  await t.step("chat and generate, whole and streamed, with Ollama's counts", async () => {
    const chat = await ollama.chat({
      model: "alpha",
      messages: [{ role: "user", content: "hello" }],
      options: { num_predict: 4 },
    });
    assertEquals([chat.done, chat.done_reason, chat.eval_count], [true, "length", 4]);
    assertEquals(chat.message.role, "assistant");
    assert(chat.message.content.length > 0, "an answer");
    assert(
      chat.prompt_eval_count > 0 && chat.total_duration > 0 && chat.eval_duration > 0,
      JSON.stringify(chat),
    );

    const parts: string[] = [];
    let last;
    for await (
      const part of await ollama.chat({
        model: "alpha",
        messages: [{ role: "user", content: "hi" }],
        stream: true,
        options: { num_predict: 5 },
      })
    ) {
      parts.push(part.message.content);
      last = part;
    }
    assertEquals([last?.done, last?.done_reason, last?.eval_count], [true, "length", 5]);
    assert(parts.length >= 2 && parts.join("").length > 0, `streamed in pieces: ${JSON.stringify(parts)}`);

    const generated = await ollama.generate({
      model: "alpha",
      prompt: "the model",
      system: "be brief",
      options: { num_predict: 3 },
    });
    assertEquals([generated.done, generated.eval_count], [true, 3]);
    let raw = "";
    for await (
      const part of await ollama.generate({
        model: "alpha",
        prompt: "once upon",
        raw: true,
        stream: true,
        options: { num_predict: 4 },
      })
    ) {
      raw += part.response;
      if (part.done) assertEquals([part.done_reason, part.eval_count], ["length", 4]);
    }
    assert(raw.length > 0);
  });

  await t.step(
    "options reach the engine: num_predict, seed; num_ctx beyond the context is refused",
    async () => {
      const sample = (seed: number) =>
        ollama.generate({
          model: "alpha",
          prompt: "hello",
          raw: true,
          options: { seed, temperature: 1, num_predict: 8 },
        });
      const [a, b, c] = [await sample(1), await sample(1), await sample(2)];
      assertEquals(a.response, b.response, "the same seed samples the same");
      assert(a.response !== c.response, "another seed samples otherwise");
      const tooBig = await refusal(() =>
        ollama.chat({
          model: "alpha",
          messages: [{ role: "user", content: "hi" }],
          options: { num_ctx: 8192 },
        })
      );
      assertEquals(tooBig.status, 400);
      assertMatch(tooBig.message, /num_ctx 8192 .*runs with \(512 tokens per request\)/);
    },
  );

  await t.step("format: JSON, and a JSON schema", async () => {
    const json = await ollama.generate({
      model: "alpha",
      prompt: "hi",
      raw: true,
      format: "json",
      options: { temperature: 0, num_predict: 12 },
    });
    assertMatch(json.response ?? "", /^\s*\{/);
    const schema = { type: "object", properties: { a: { type: "integer" } }, required: ["a"] };
    const shaped = await ollama.chat({
      model: "beta",
      messages: [{ role: "user", content: "hi" }],
      format: schema,
      options: { temperature: 0, num_predict: 16 },
    });
    assertMatch(shaped.message.content, /^\s*\{\s*"a"\s*:\s*-?\d/);
  });

  await t.step(
    "tools and think are passed on; images on a model without a projector are a clear error",
    async () => {
      const tools = [{
        type: "function",
        function: {
          name: "weather",
          description: "the weather in a city",
          parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
        },
      }];
      const withTools = await ollama.chat({
        model: "alpha",
        messages: [{ role: "user", content: "weather in Oslo?" }],
        tools,
        think: false,
        options: { num_predict: 3 },
      });
      assertEquals(withTools.done, true);
      const image = await refusal(() =>
        ollama.chat({
          model: "alpha",
          messages: [{ role: "user", content: "what?", images: [Q8.subarray(0, 64)] }],
        })
      );
      assertMatch(image.message, /image input is not supported/);
    },
  );

  await t.step(
    "embed (normalized, dimensions) and the older embeddings (as the model gives them)",
    async () => {
      const embed = await ollama.embed({ model: "alpha", input: ["hello", "the world"] });
      assertEquals(embed.embeddings.length, 2);
      for (const v of embed.embeddings) {
        assertEquals(v.length, 64, "n_embd of the tiny model");
        assert(Math.abs(Math.hypot(...v) - 1) < 1e-4, "unit length");
      }
      assert(embed.prompt_eval_count > 0);
      const cut = await ollama.embed({ model: "alpha", input: "hello", dimensions: 8 });
      assertEquals(cut.embeddings[0].length, 8);
      assert(Math.abs(Math.hypot(...cut.embeddings[0]) - 1) < 1e-4);
      const old = await ollama.embeddings({ model: "alpha", prompt: "hello" });
      assertEquals(old.embedding.length, 64);
      assert(Math.abs(Math.hypot(...old.embedding) - 1) > 1e-3, "not normalized");
    },
  );

  await t.step(
    "ps, and keep_alive: a duration, forever, 0 after the answer, and load and unload requests",
    async () => {
      const ps = await ollama.ps();
      const alpha = ps.models.find((m) => m.name === "alpha");
      assert(alpha, JSON.stringify(ps));
      assert(alpha.size > 0, "the memory it was booked for");
      assertEquals(alpha.size_vram, 0, "no GPU here");
      assertEquals(String(alpha.expires_at), NEVER, "no TTL");
      assertEquals((alpha as unknown as { context_length: number }).context_length, 512);

      const sent = Date.now();
      await ollama.chat({
        model: "alpha",
        messages: [{ role: "user", content: "hi" }],
        keep_alive: "10m",
        options: { num_predict: 1 },
      });
      const expires = Date.parse(
        String((await ollama.ps()).models.find((m) => m.name === "alpha")?.expires_at),
      );
      assert(expires >= sent + 600_000 && expires <= Date.now() + 600_000, String(expires));
      await ollama.chat({
        model: "alpha",
        messages: [{ role: "user", content: "hi" }],
        keep_alive: -1,
        options: { num_predict: 1 },
      });
      assertEquals(String((await ollama.ps()).models.find((m) => m.name === "alpha")?.expires_at), NEVER);

      const loaded = await ollama.generate({ model: "beta", prompt: "" });
      assertEquals([loaded.done, loaded.done_reason], [true, "load"]);
      assert((await running(ollama)).includes("beta"));
      await ollama.generate({ model: "beta", prompt: "hi", keep_alive: 0, options: { num_predict: 1 } });
      await waitFor(
        async () => !(await running(ollama)).includes("beta"),
        HANG_MS,
        "beta unloaded after its answer",
      );

      await ollama.chat({ model: "beta", messages: [] });
      assert((await running(ollama)).includes("beta"), "an empty chat loads the model");
      const unloaded = await ollama.chat({ model: "beta", messages: [], keep_alive: 0 });
      assertEquals(unloaded.done_reason, "unload");
      await waitFor(async () => !(await running(ollama)).includes("beta"), HANG_MS, "beta unloaded");
    },
  );

  await t.step("pull from the Hub with progress; Hub names, an ambiguous name, delete", async () => {
    const progress = [];
    for await (const p of await ollama.pull({ model: `hf.co/${REPO}:Q8_0`, stream: true })) progress.push(p);
    assertEquals(progress[0].status, "pulling manifest");
    assertEquals(progress.at(-1)?.status, "success");
    const file = progress.filter((p) => p.status === "pulling tiny-Q8_0.gguf");
    assert(file.length > 0, JSON.stringify(progress));
    assertEquals([file.at(-1)?.total, file.at(-1)?.completed], [Q8.length, Q8.length]);
    assertEquals((await ollama.pull({ model: `${REPO}:Q4_K_M` })).status, "success");
    const names = (await ollama.list()).models.map((m) => m.name);
    assertEquals(names.filter((n) => n.startsWith(REPO)).sort(), [`${REPO}:Q4_K_M`, `${REPO}:Q8_0`]);

    const ambiguous = await refusal(() => ollama.generate({ model: REPO, prompt: "hi" }));
    assertEquals(ambiguous.status, 400);
    assertMatch(ambiguous.message, new RegExp(`ambiguous: it names ${REPO}:Q4_K_M, ${REPO}:Q8_0`));
    const byHubName = await ollama.generate({
      model: `hf.co/${REPO}:q8_0`,
      prompt: "hi",
      options: { num_predict: 2 },
    });
    assertEquals([byHubName.model, byHubName.eval_count], [`hf.co/${REPO}:q8_0`, 2]);

    assertEquals(await ollama.delete({ model: `${REPO}:Q8_0` }), { status: "success" });
    assert(!(await ollama.list()).models.some((m) => m.name === `${REPO}:Q8_0`));
    const again = await refusal(() => ollama.delete({ model: `${REPO}:Q8_0` }));
    assertEquals(again.status, 404);
  });

  await t.step("errors in Ollama's shape: unknown model, no key, what Switchyard does not do", async () => {
    const unknown = await refusal(() =>
      ollama.chat({ model: "nope", messages: [{ role: "user", content: "hi" }] })
    );
    assertEquals(unknown, { message: "model 'nope' not found", status: 404 });
    const keyless = await refusal(() => new Ollama({ host: gw.url }).list());
    assertEquals(keyless, { message: "Invalid API Key", status: 401 });
    for (
      const call of [
        () => ollama.copy({ source: "alpha", destination: "a2" }),
        () => ollama.push({ model: "alpha" }),
      ]
    ) {
      const refused = await refusal(call);
      assertEquals(refused.status, 501);
      assertMatch(refused.message, /is not supported by Switchyard/);
    }
  });

  await t.step("a cancelled stream aborts the engine's generation, freeing its only slot", async () => {
    // num_predict -1 on a model that never samples an end, with context shift: it never ends by itself,
    // so unless the abort reaches the engine, the next request waits for the slot forever
    const stream = await ollama.generate({
      model: "alpha",
      prompt: "hello",
      raw: true,
      stream: true,
      options: { num_predict: -1 },
    });
    const it = stream[Symbol.asyncIterator]();
    assertEquals((await within(it.next(), "the first piece")).done, false);
    stream.abort();
    await it.next().catch(() => {});
    const next = await postJsonWith(gw, "/completion", { model: "alpha", prompt: "hello", n_predict: 4 }, {
      headers: AUTH,
      signal: AbortSignal.timeout(HANG_MS),
    });
    assertEquals(next.status, 200, "the slot was freed: the next request was served");
    assertEquals((await next.json()).tokens_predicted, 4);
    const slots = await getJson(gw, "/slots?model=alpha", AUTH);
    assertEquals(slots.filter((s: { is_processing: boolean }) => s.is_processing).length, 0);
  });
}
