/**
 * The official `openai` npm SDK, unchanged, against Switchyard on real engines and tiny models:
 * models, chat (whole and streamed), completions, responses, embeddings, errors as the SDK's own
 * error classes, and a stream aborted mid-way that must stop the engine's generation. One gateway
 * for the file, with an API key, one slot per engine, embeddings on.
 */
import OpenAI from "openai";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { type TestGateway, withGateway } from "../helpers/gateway.ts";
import { engineAvailable, getJson, postJsonWith } from "../helpers/http.ts";
import { ENDLESS_ENGINE_ARGS, ENDLESS_GENERATION } from "../helpers/llama_server.ts";
import { HANG_MS, within } from "../helpers/wait.ts";

const skip = await engineAvailable();
const KEY = "sk-openai-e2e-8c5a";
const ARGS = [
  "--api-key",
  KEY,
  "-c",
  "512",
  "-np",
  "1",
  "--embeddings",
  "--pooling",
  "mean",
  ...ENDLESS_ENGINE_ARGS,
];

/** What the SDK throws for an error answer. */
async function apiError(call: () => Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await call();
  } catch (err) {
    assert(err instanceof OpenAI.APIError, `an APIError, got ${err}`);
    return err;
  }
  throw new Error("the call was expected to fail");
}

Deno.test({
  name: "the official openai SDK works unchanged against Switchyard",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await withGateway(["alpha", "beta"], { args: ARGS }, async (gw) => {
      // no retries: a verdict must rest on one answer
      const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
      await steps(t, gw, openai);
    });
  },
});

async function steps(t: Deno.TestContext, gw: TestGateway, openai: OpenAI): Promise<void> {
  await t.step("models", async () => {
    const ids = [];
    for await (const model of openai.models.list()) ids.push(model.id);
    assertEquals(ids, ["alpha", "beta"]);
  });

  await t.step("chat, whole and streamed with usage", async () => {
    const chat = await openai.chat.completions.create({
      model: "alpha",
      messages: [{ role: "user", content: "hello" }],
      max_tokens: 4,
    });
    assertEquals([chat.model, chat.choices[0].finish_reason, chat.usage?.completion_tokens], [
      "alpha",
      "length",
      4,
    ]);
    assertEquals(typeof chat.choices[0].message.content, "string");

    const stream = await openai.chat.completions.create({
      model: "beta",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 5,
      stream: true,
      stream_options: { include_usage: true },
    });
    const pieces: string[] = [];
    let usage;
    let finish;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) pieces.push(chunk.choices[0].delta.content);
      finish ??= chunk.choices[0]?.finish_reason ?? undefined;
      usage ??= chunk.usage ?? undefined;
    }
    assert(pieces.length >= 2, `streamed in pieces: ${JSON.stringify(pieces)}`);
    assertEquals([finish, usage?.completion_tokens], ["length", 5]);
  });

  await t.step("completions and responses", async () => {
    const completion = await openai.completions.create({
      model: "alpha",
      prompt: "once upon",
      max_tokens: 3,
    });
    assertEquals([completion.choices[0].finish_reason, completion.usage?.completion_tokens], ["length", 3]);
    assert(completion.choices[0].text.length > 0);
    const response = await openai.responses.create({ model: "alpha", input: "hello", max_output_tokens: 4 });
    assertEquals(response.status, "completed");
    assertEquals(typeof response.output_text, "string");
    assertEquals(response.usage?.output_tokens, 4);
  });

  await t.step("embeddings, as the SDK asks for them (base64) and as floats", async () => {
    const base64 = await openai.embeddings.create({ model: "alpha", input: ["hello", "the world"] });
    assertEquals(base64.data.map((d) => d.index), [0, 1]);
    for (const d of base64.data) {
      assertEquals(d.embedding.length, 64);
      assert(Math.abs(Math.hypot(...d.embedding) - 1) < 1e-4, "unit length");
    }
    const floats = await openai.embeddings.create({
      model: "alpha",
      input: "hello",
      encoding_format: "float",
    });
    assertEquals(floats.data[0].embedding.length, 64);
    assert(floats.data[0].embedding.every((x, i) => Math.abs(x - base64.data[0].embedding[i]) < 1e-5));
  });

  await t.step("errors as the SDK's own classes, with the gateway's status and message", async () => {
    const unknown = await apiError(() =>
      openai.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "hi" }] })
    );
    assert(unknown instanceof OpenAI.BadRequestError, String(unknown));
    assertEquals(unknown.status, 400);
    assertMatch(unknown.message, /nope/);
    const keyless = await apiError(() =>
      new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "wrong", maxRetries: 0 }).models.list()
    );
    assert(keyless instanceof OpenAI.AuthenticationError, String(keyless));
    assertEquals(keyless.status, 401);
    const bad = await apiError(() =>
      openai.chat.completions.create({ model: "alpha", messages: "hi" as unknown as [] })
    );
    assertEquals(bad.status, 400);
  });

  await t.step("a stream aborted mid-way stops the engine's generation, freeing its only slot", async () => {
    const client = new AbortController();
    // a generation that never ends by itself: unless the abort reaches the engine, the next one waits forever
    const stream = await openai.chat.completions.create(
      { model: "alpha", messages: [{ role: "user", content: "hi" }], stream: true, ...ENDLESS_GENERATION },
      { signal: client.signal },
    );
    const it = stream[Symbol.asyncIterator]();
    assertEquals((await within(it.next(), "the first chunk")).done, false);
    client.abort();
    await it.next().catch(() => {});
    const next = await postJsonWith(gw, "/completion", { model: "alpha", prompt: "hello", n_predict: 4 }, {
      headers: { Authorization: `Bearer ${KEY}` },
      signal: AbortSignal.timeout(HANG_MS),
    });
    assertEquals(next.status, 200, "the slot was freed: the next request was served");
    assertEquals((await next.json()).tokens_predicted, 4);
    const slots = await getJson(gw, "/slots?model=alpha", { Authorization: `Bearer ${KEY}` });
    assertEquals(slots.filter((s: { is_processing: boolean }) => s.is_processing).length, 0);
  });
}
