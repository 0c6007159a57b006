/**
 * Engine answers as Ollama frames them (router/ollama/answer.ts, ndjson.ts): OpenAI chat chunks and
 * llama.cpp completion chunks, tool calls gathered from their fragments, counts and durations, and
 * the SSE → NDJSON stream, which passes each event on as it comes and lets a cancel through.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import {
  Answer,
  chatDelta,
  completionDelta,
  doneFrame,
  type FrameContext,
  streamedAnswer,
} from "../../router/ollama/answer.ts";
import { eventsToNdjson, SseDataParser } from "../../router/ollama/ndjson.ts";

const ctx = (kind: FrameContext["kind"]): FrameContext => ({
  kind,
  model: "alpha:latest",
  durations: () => ({ total: 5_000_000, load: 1_000_000 }),
});

const chunk = (delta: Record<string, unknown>, finish: string | null = null, extra = {}) => ({
  object: "chat.completion.chunk",
  choices: [{ index: 0, delta, finish_reason: finish }],
  ...extra,
});

const TIMINGS = { prompt_n: 3, prompt_ms: 1.5, predicted_n: 4, predicted_ms: 2.25 };

Deno.test("answer: chat chunks become text, thinking, whole tool calls and counts", () => {
  const answer = new Answer();
  for (
    const event of [
      chunk({ role: "assistant", content: null }),
      chunk({ reasoning_content: "hmm" }),
      chunk({ content: "Hel" }),
      chunk({ content: "lo" }),
      chunk({ tool_calls: [{ index: 0, id: "call_1", function: { name: "weather", arguments: '{"ci' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: 'ty":"Oslo"}' } }] }),
      chunk({ tool_calls: [{ index: 1, function: { name: "time", arguments: "not json" } }] }),
      chunk({}, "tool_calls", { timings: TIMINGS }),
      { choices: [], usage: { prompt_tokens: 20, completion_tokens: 4 } },
    ]
  ) answer.add(chatDelta(event));
  assertEquals(answer.content, "Hello");
  assertEquals(answer.thinking, "hmm");
  assertEquals(answer.doneReason, "stop", "a tool call is a stop to Ollama");
  assertEquals(answer.toolCalls(), [
    { id: "call_1", function: { index: 0, name: "weather", arguments: { city: "Oslo" } } },
    { function: { index: 1, name: "time", arguments: {} } },
  ]);
  const done = doneFrame(ctx("chat"), answer, true);
  assertEquals({ ...done, created_at: "" }, {
    model: "alpha:latest",
    created_at: "",
    message: { role: "assistant", content: "Hello", thinking: "hmm", tool_calls: answer.toolCalls() },
    done: true,
    done_reason: "stop",
    total_duration: 5_000_000,
    load_duration: 1_000_000,
    // usage counts the whole prompt (cached tokens too), timings only what was evaluated
    prompt_eval_count: 20,
    prompt_eval_duration: 1_500_000,
    eval_count: 4,
    eval_duration: 2_250_000,
  });
  assert(!Number.isNaN(Date.parse(done.created_at as string)));
});

Deno.test("answer: a whole chat completion reads as one delta; length stays length", () => {
  const delta = chatDelta({
    choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "length" }],
    usage: { prompt_tokens: 9, completion_tokens: 2 },
  });
  assertEquals(delta.content, "ok");
  assertEquals(delta.doneReason, "length");
  assertEquals(delta.counts, { promptTokens: 9, promptMs: undefined, evalTokens: 2, evalMs: undefined });
});

Deno.test("answer: completion chunks, stop_type as done_reason, counts from the last one", () => {
  const limit = new Answer();
  for (
    const e of [
      { content: "once", stop: false },
      { content: " upon", stop: false },
      {
        content: "",
        stop: true,
        stop_type: "limit",
        tokens_evaluated: 5,
        tokens_predicted: 2,
        timings: TIMINGS,
      },
    ]
  ) limit.add(completionDelta(e));
  assertEquals([limit.content, limit.doneReason], ["once upon", "length"]);
  assertEquals(limit.counts, { promptTokens: 5, promptMs: 1.5, evalTokens: 2, evalMs: 2.25 });
  for (const stopType of ["eos", "word"]) {
    assertEquals(completionDelta({ content: "", stop: true, stop_type: stopType }).doneReason, "stop");
  }
  const generate = doneFrame(ctx("generate"), limit, true);
  assertEquals([generate.response, generate.done_reason, "message" in generate], [
    "once upon",
    "length",
    false,
  ]);
});

Deno.test("answer: an error event, the engine's or the gateway's, is the error", () => {
  assertEquals(
    chatDelta({ error: { code: 502, message: "model alpha stopped answering", type: "server_error" } }),
    {
      error: "model alpha stopped answering",
    },
  );
  assertEquals(completionDelta({ error: "plain" }), { error: "plain" });
});

const encoder = new TextEncoder();

/** An SSE body that sends `text` in pieces of `size` bytes, and says when it was cancelled. */
function sseSource(text: string, size: number, opts: { hang?: boolean } = {}) {
  const bytes = encoder.encode(text);
  let at = 0;
  const cancelled = Promise.withResolvers<void>();
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (at < bytes.length) {
        c.enqueue(bytes.slice(at, at + size));
        at += size;
      } else if (opts.hang) return new Promise(() => {});
      else c.close();
    },
    cancel: () => cancelled.resolve(),
  });
  return { stream, cancelled: cancelled.promise };
}

async function lines(stream: ReadableStream<Uint8Array>): Promise<Record<string, unknown>[]> {
  const text = await new Response(stream).text();
  assert(text.endsWith("\n"), "every object ends its line");
  return text.trimEnd().split("\n").map((l) => JSON.parse(l));
}

const sse = (...events: unknown[]) =>
  events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join("") + "data: [DONE]\n\n";

Deno.test("ndjson: an SSE stream cut anywhere comes out as Ollama's chunks, then tool calls, then done", async () => {
  const body = sse(
    chunk({ content: "Hé" }),
    chunk({ content: "llo" }),
    chunk({ tool_calls: [{ index: 0, function: { name: "f", arguments: "{}" } }] }),
    chunk({}, "stop", { timings: TIMINGS }),
  );
  for (const size of [1, 3, 7, body.length]) {
    let settled = 0;
    const { stream } = sseSource(body, size);
    const out = await lines(
      stream.pipeThrough(eventsToNdjson(streamedAnswer(ctx("chat"), chatDelta, () => settled++))),
    );
    assertEquals(
      out.map((o) => (o.message as { content: string }).content),
      ["Hé", "llo", "", ""],
      `pieces of ${size}`,
    );
    assertEquals(out.map((o) => o.done), [false, false, false, true]);
    assertEquals((out[2].message as { tool_calls: unknown }).tool_calls, [{
      function: { index: 0, name: "f", arguments: {} },
    }]);
    assertEquals([out[3].eval_count, out[3].done_reason], [4, "stop"]);
    assertEquals(settled, 1, "settled once, at the end");
  }
});

Deno.test("ndjson: an error event ends the answer with Ollama's error line and nothing after it", async () => {
  const body = sse(
    { content: "a", stop: false },
    { error: { code: 502, message: "engine died", type: "server_error" } },
    { content: "b", stop: false },
  );
  const { stream } = sseSource(body, 5);
  const out = await lines(
    stream.pipeThrough(eventsToNdjson(streamedAnswer(ctx("generate"), completionDelta))),
  );
  assertEquals(out.map((o) => o.response ?? o.error), ["a", "engine died"]);
});

Deno.test("ndjson: each event goes on as it arrives, and a cancel reaches the engine's stream", async () => {
  let settled = 0;
  const { stream, cancelled } = sseSource(
    sse(chunk({ content: "first" })).replace("data: [DONE]\n\n", ""),
    1000,
    {
      hang: true,
    },
  );
  const reader = stream.pipeThrough(eventsToNdjson(streamedAnswer(ctx("chat"), chatDelta, () => settled++)))
    .getReader();
  // the source never ends: the first chunk can only come out if nothing waits for more
  const first = await reader.read();
  assertEquals(JSON.parse(new TextDecoder().decode(first.value)).message.content, "first");
  await reader.cancel();
  await cancelled;
  assertEquals(settled, 1);
});

Deno.test("sse parser: data lines only, CRLF, [DONE] and comments skipped, a last line without newline", () => {
  const parser = new SseDataParser();
  assertEquals(parser.push(': ping\r\ndata: {"a":1}\r\n\r\nevent: x\ndata:{"b"'), ['{"a":1}']);
  assertEquals(parser.push(':2}\n\ndata: [DONE]\n\ndata: {"c":3}'), ['{"b":2}']);
  assertEquals(parser.end(), ['{"c":3}']);
});
