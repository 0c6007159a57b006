/**
 * Token counts from the tails of real llama-server answers: the samples below are what the pinned
 * engine wrote for a tiny model (streamed and whole, chat and `/completion`), trimmed of fields that
 * do not matter here.
 */
import { assertEquals } from "../helpers/assert.ts";
import { TAIL_BYTES, tailText, usageOf } from "../../router/metrics/usage.ts";

const encoder = new TextEncoder();

const CHAT_STREAM_END =
  `data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":" lla"}}],"object":"chat.completion.chunk"}

data: {"choices":[{"finish_reason":"length","index":0,"delta":{}}],"created":1796166981,"object":"chat.completion.chunk","timings":{"cache_n":0,"prompt_n":20,"prompt_ms":0.839,"prompt_per_token_ms":0.04195,"prompt_per_second":23837.902264600714,"predicted_n":4,"predicted_ms":0.727,"predicted_per_token_ms":0.24233333333333332,"predicted_per_second":4126.547455295737}}

data: [DONE]

`;
const COMPLETION_STREAM_END =
  `data: {"index":0,"content":" swi","tokens":[665],"stop":false,"id_slot":-1,"tokens_predicted":3,"tokens_evaluated":2}

data: {"index":0,"content":"","tokens":[],"id_slot":3,"stop":true,"tokens_predicted":3,"tokens_evaluated":2,"prompt":"<s> hi","stop_type":"limit","tokens_cached":4,"timings":{"cache_n":1,"prompt_n":1,"prompt_ms":0.487,"predicted_n":3,"predicted_ms":0.477,"predicted_per_second":4192.8721174004195}}

`;
const CHAT_WHOLE =
  `{"choices":[{"finish_reason":"length","index":0,"message":{"role":"assistant","content":"L hellh hi"}}],"object":"chat.completion","usage":{"completion_tokens":4,"prompt_tokens":20,"total_tokens":24,"prompt_tokens_details":{"cached_tokens":19}},"timings":{"cache_n":19,"prompt_n":1,"predicted_n":4,"predicted_per_second":3764.1154328732746}}`;

Deno.test("usageOf: llama-server's streamed and whole answers", () => {
  assertEquals(usageOf(CHAT_STREAM_END), { prompt: 20, generated: 4, generatedPerSecond: 4126.547455295737 });
  // timings count the cached prompt tokens apart: both are the prompt
  assertEquals(usageOf(COMPLETION_STREAM_END), {
    prompt: 2,
    generated: 3,
    generatedPerSecond: 4192.8721174004195,
  });
  // usage wins over timings when both are there; they agree here (19 cached + 1 processed)
  assertEquals(usageOf(CHAT_WHOLE), { prompt: 20, generated: 4, generatedPerSecond: 3764.1154328732746 });
});

Deno.test("usageOf: Anthropic's and the Responses API's names, /completion's counters alone, nothing at all", () => {
  assertEquals(usageOf('{"type":"message","usage":{"input_tokens":12,"output_tokens":5}}'), {
    prompt: 12,
    generated: 5,
  });
  assertEquals(usageOf('{"content":"x","tokens_evaluated":9,"tokens_predicted":2}'), {
    prompt: 9,
    generated: 2,
  });
  assertEquals(usageOf('{"tokens":[1,2,3]}'), {});
  assertEquals(usageOf(""), {});
});

Deno.test("usageOf: generated text cannot pose as a key, and the last occurrence counts", () => {
  const tricky = `{"usage":{"prompt_tokens":3,"completion_tokens":1},"content":"\\"prompt_tokens\\": 999"}`;
  assertEquals(usageOf(tricky), { prompt: 3, generated: 1 });
  const cumulative =
    '{"tokens_predicted":1,"tokens_evaluated":4}\n{"tokens_predicted":2,"tokens_evaluated":4}';
  assertEquals(usageOf(cumulative), { prompt: 4, generated: 2 });
  assertEquals(usageOf('{"prompt_tokens" : 1e2, "completion_tokens":\t2}'), { prompt: 100, generated: 2 });
});

Deno.test("tailText: the last TAIL_BYTES of the chunks, however they were cut", () => {
  const text = CHAT_STREAM_END;
  const bytes = encoder.encode(text);
  const cuts = [bytes.subarray(0, 10), bytes.subarray(10, 200), bytes.subarray(200)];
  assertEquals(tailText(cuts), text);
  assertEquals(usageOf(tailText(cuts)), usageOf(text));
  const long = encoder.encode("x".repeat(TAIL_BYTES * 2) + text);
  assertEquals(tailText([long]).length, TAIL_BYTES);
  assertEquals(tailText([long]).endsWith(text), true);
  assertEquals(tailText([long.subarray(0, TAIL_BYTES), long.subarray(TAIL_BYTES)]), tailText([long]));
  assertEquals(tailText([]), "");
});
