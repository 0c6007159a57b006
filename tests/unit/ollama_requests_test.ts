/**
 * Ollama's chat, generate and embedding requests as engine requests (router/ollama/requests.ts):
 * which route, and every field the translation carries.
 */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { ApiError } from "../../router/errors.ts";
import {
  chatCall,
  embedInputs,
  engineMessages,
  formatSchema,
  generateCall,
  imageUrl,
  thinkParams,
  truncateEmbedding,
} from "../../router/ollama/requests.ts";

function badRequestOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert(err instanceof ApiError && err.status === 400, `a 400, got ${err}`);
    return err.message;
  }
  throw new Error("expected a 400");
}

const PNG = "iVBORw0KGgoAAAANSUhEUg==";

Deno.test("chat: a /v1/chat/completions stream with usage, options, format, think and tools", () => {
  const tools = [{ type: "function", function: { name: "weather", parameters: { type: "object" } } }];
  const call = chatCall("alpha", {
    model: "alpha:latest",
    messages: [{ role: "User", content: "hi" }],
    options: { num_predict: 4, temperature: 0 },
    format: { type: "object", properties: { a: { type: "integer" } } },
    think: "low",
    tools,
    stream: false,
  });
  assertEquals(call.path, "/v1/chat/completions");
  assertEquals(call.dialect, "chat");
  assertEquals(call.body, {
    n_predict: 4,
    temperature: 0,
    model: "alpha",
    messages: [{ role: "user", content: "hi" }],
    // engines always stream: a client that wants the whole answer gets it gathered
    stream: true,
    stream_options: { include_usage: true },
    reasoning_effort: "low",
    chat_template_kwargs: { enable_thinking: true },
    response_format: {
      type: "json_schema",
      json_schema: { name: "format", schema: { type: "object", properties: { a: { type: "integer" } } } },
    },
    tools,
  });
});

Deno.test("chat messages: images as content parts, tool calls with ids and JSON arguments, tool answers tied to them", () => {
  const messages = engineMessages([
    { role: "system", content: "be brief" },
    { role: "user", content: "what is this?", images: [PNG, "/9j/4AAQ"] },
    {
      role: "assistant",
      content: "",
      thinking: "let me look",
      tool_calls: [{ function: { name: "weather", arguments: { city: "Oslo" } } }],
    },
    { role: "tool", content: "sunny", tool_name: "weather" },
    { role: "tool", content: "rain", tool_name: "other", tool_call_id: "given" },
  ]);
  assertEquals(messages, [
    { role: "system", content: "be brief" },
    {
      role: "user",
      content: [
        { type: "text", text: "what is this?" },
        { type: "image_url", image_url: { url: `data:image/png;base64,${PNG}` } },
        { type: "image_url", image_url: { url: "data:image/jpeg;base64,/9j/4AAQ" } },
      ],
    },
    {
      role: "assistant",
      content: "",
      reasoning_content: "let me look",
      tool_calls: [{
        id: "call_2_0",
        type: "function",
        function: { name: "weather", arguments: '{"city":"Oslo"}' },
      }],
    },
    { role: "tool", content: "sunny", name: "weather", tool_call_id: "call_2_0" },
    { role: "tool", content: "rain", name: "other", tool_call_id: "given" },
  ]);
});

Deno.test("chat messages: malformed ones are a 400 naming the message", () => {
  assertMatch(badRequestOf(() => engineMessages("hi")), /messages must be an array/);
  assertMatch(
    badRequestOf(() => engineMessages([{ content: "x" }])),
    /messages\[0\] must be an object with a string role/,
  );
  assertMatch(
    badRequestOf(() => engineMessages([{ role: "user", content: 1 }])),
    /messages\[0\]\.content must be a string/,
  );
  assertMatch(
    badRequestOf(() => engineMessages([{ role: "user", images: "x" }])),
    /messages\[0\]\.images must be an array/,
  );
});

Deno.test("generate: with the model's template, a chat of system and user; raw is /completion, a suffix /infill", () => {
  const templated = generateCall("alpha", { prompt: "hi", system: "sys", images: [PNG], format: "json" });
  assertEquals(templated.path, "/v1/chat/completions");
  assertEquals(templated.body.messages, [
    { role: "system", content: "sys" },
    {
      role: "user",
      content: [{ type: "text", text: "hi" }, {
        type: "image_url",
        image_url: { url: `data:image/png;base64,${PNG}` },
      }],
    },
  ]);
  assertEquals(templated.body.response_format, {
    type: "json_schema",
    json_schema: { name: "format", schema: { type: "object" } },
  });

  const raw = generateCall("alpha", {
    prompt: "once upon",
    raw: true,
    format: "json",
    options: { num_predict: 3 },
  });
  assertEquals(raw, {
    path: "/completion",
    dialect: "completion",
    body: {
      n_predict: 3,
      model: "alpha",
      stream: true,
      json_schema: { type: "object" },
      prompt: "once upon",
    },
  });

  const infill = generateCall("alpha", { prompt: "def f(", suffix: "):\n  pass" });
  assertEquals(infill.path, "/infill");
  assertEquals(infill.body.input_prefix, "def f(");
  assertEquals(infill.body.input_suffix, "):\n  pass");
});

Deno.test("generate: what cannot be translated is a clear 400", () => {
  assertMatch(
    badRequestOf(() => generateCall("a", { prompt: "x", context: [1, 2] })),
    /context is not supported/,
  );
  assertMatch(
    badRequestOf(() => generateCall("a", { prompt: "x", template: "{{ .Prompt }}" })),
    /template is not supported/,
  );
  assertMatch(
    badRequestOf(() => generateCall("a", { prompt: "x", raw: true, system: "s" })),
    /raw mode does not support template, system, or context/,
  );
  assertMatch(
    badRequestOf(() => generateCall("a", { prompt: "x", raw: true, images: [PNG] })),
    /images need/,
  );
  assertMatch(badRequestOf(() => generateCall("a", { prompt: "x", format: 3 })), /invalid format/);
});

Deno.test("format and think: Ollama's values, and a 400 for others", () => {
  assertEquals(formatSchema(undefined), undefined);
  assertEquals(formatSchema(""), undefined);
  assertEquals(formatSchema("json"), { type: "object" });
  assertMatch(badRequestOf(() => formatSchema("yaml")), /invalid format/);
  assertEquals(thinkParams(undefined), {});
  assertEquals(thinkParams(false), { chat_template_kwargs: { enable_thinking: false } });
  assertEquals(thinkParams(true), { chat_template_kwargs: { enable_thinking: true } });
  assertEquals(thinkParams("max"), {
    reasoning_effort: "high",
    chat_template_kwargs: { enable_thinking: true },
  });
  assertMatch(badRequestOf(() => thinkParams("extreme")), /invalid think value/);
});

Deno.test("images: bare base64 becomes a data URL typed by its first bytes; a data URL stays", () => {
  assertEquals(imageUrl("R0lGODlh"), "data:image/gif;base64,R0lGODlh");
  assertEquals(imageUrl("UklGRiQ"), "data:image/webp;base64,UklGRiQ");
  assertEquals(imageUrl("data:image/png;base64,AAAA"), "data:image/png;base64,AAAA");
});

Deno.test("embed: inputs and Ollama's dimensions (cut, then back to unit length)", () => {
  assertEquals(embedInputs("hi"), ["hi"]);
  assertEquals(embedInputs(""), []);
  assertEquals(embedInputs(undefined), []);
  assertEquals(embedInputs(["a", "b"]), ["a", "b"]);
  assertEquals(badRequestOf(() => embedInputs([1])), "invalid input type");
  assertEquals(truncateEmbedding([0.6, 0.8, 0], undefined), [0.6, 0.8, 0]);
  assertEquals(truncateEmbedding([3, 4, 12], 2), [0.6, 0.8]);
  assertEquals(truncateEmbedding([1, 2], 5), [1, 2]);
});
