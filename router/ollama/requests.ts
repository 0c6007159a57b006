/**
 * Ollama's `/api/chat`, `/api/generate` and embedding requests as requests to an engine, the way
 * llama-swap's Ollama translation maps them: a chat, or a generate with the model's template, is a
 * `/v1/chat/completions` (tools, images, `format` and `think` are OpenAI's and llama.cpp's there); a
 * `raw` generate is a `/completion` of the prompt as it is, and one with a `suffix` an `/infill`.
 * Engines are always asked to stream; a client that wants the whole answer gets it gathered.
 */
import { badRequest } from "../errors.ts";
import { samplingParams } from "./options.ts";

type Json = Record<string, unknown>;

/** Which chunks the engine will answer with (answer.ts reads each). */
export type EngineDialect = "chat" | "completion";

export interface EngineCall {
  /** the gateway route that proxies it to the model's engine */
  path: string;
  body: Json;
  dialect: EngineDialect;
}

export interface OllamaToolCallIn {
  id?: string;
  function?: { name?: string; arguments?: unknown };
}

export interface OllamaMessage {
  role: string;
  content?: string;
  thinking?: string;
  images?: string[];
  tool_calls?: OllamaToolCallIn[];
  tool_name?: string;
  tool_call_id?: string;
}

export const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** Ollama's image data is bare base64; engines take data URLs. The type is read from the first bytes. */
export function imageUrl(image: string): string {
  if (image.startsWith("data:")) return image;
  const type = image.startsWith("/9j/")
    ? "image/jpeg"
    : image.startsWith("R0lG")
    ? "image/gif"
    : image.startsWith("UklGR")
    ? "image/webp"
    : "image/png";
  return `data:${type};base64,${image}`;
}

function strings(value: unknown, what: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw badRequest(`${what} must be an array of base64 strings`);
  }
  return value;
}

function content(text: string, images: string[]): unknown {
  if (images.length === 0) return text;
  return [
    ...(text ? [{ type: "text", text }] : []),
    ...images.map((image) => ({ type: "image_url", image_url: { url: imageUrl(image) } })),
  ];
}

/** Ollama's messages as OpenAI's: images as content parts, tool calls with ids and JSON arguments. */
export function engineMessages(messages: unknown): Json[] {
  if (!Array.isArray(messages)) throw badRequest("messages must be an array");
  /** tool call ids by function name, for tool answers that name their tool but not the call */
  const callIds = new Map<string, string>();
  return messages.map((raw, i) => {
    if (!isObject(raw) || typeof raw.role !== "string") {
      throw badRequest(`messages[${i}] must be an object with a string role`);
    }
    const m = raw as unknown as OllamaMessage;
    if (m.content !== undefined && typeof m.content !== "string") {
      throw badRequest(`messages[${i}].content must be a string`);
    }
    const role = m.role.toLowerCase();
    const out: Json = { role, content: content(m.content ?? "", strings(m.images, `messages[${i}].images`)) };
    if (m.thinking && role === "assistant") out.reasoning_content = m.thinking;
    if (Array.isArray(m.tool_calls) && m.tool_calls.length > 0) {
      out.tool_calls = m.tool_calls.map((call, k) => {
        const name = call?.function?.name ?? "";
        const id = call?.id ?? `call_${i}_${k}`;
        callIds.set(name, id);
        return {
          id,
          type: "function",
          function: { name, arguments: JSON.stringify(call?.function?.arguments ?? {}) },
        };
      });
    }
    if (role === "tool") {
      if (m.tool_name) out.name = m.tool_name;
      const id = m.tool_call_id ?? (m.tool_name ? callIds.get(m.tool_name) : undefined);
      if (id) out.tool_call_id = id;
    }
    return out;
  });
}

/** `format`: `"json"` (any JSON object, as Ollama's JSON grammar) or a JSON schema. */
export function formatSchema(format: unknown): Json | undefined {
  if (format === undefined || format === null || format === "") return undefined;
  if (format === "json") return { type: "object" };
  if (isObject(format)) return format;
  throw badRequest(`invalid format: ${JSON.stringify(format)}; use "json" or a JSON schema`);
}

const THINK_LEVELS = new Set(["high", "medium", "low", "max"]);

/**
 * `think` as llama.cpp's chat parameters: `true`/`false` switch the template's thinking on or off,
 * a level is OpenAI's `reasoning_effort` (`max` is the highest there is, `high`).
 */
export function thinkParams(think: unknown): Json {
  if (think === undefined || think === null) return {};
  if (typeof think === "boolean") return { chat_template_kwargs: { enable_thinking: think } };
  if (typeof think === "string" && THINK_LEVELS.has(think)) {
    return {
      reasoning_effort: think === "max" ? "high" : think,
      chat_template_kwargs: { enable_thinking: true },
    };
  }
  throw badRequest(
    `invalid think value: ${JSON.stringify(think)} (must be "high", "medium", "low", "max", true, or false)`,
  );
}

function chatCompletion(model: string, messages: Json[], req: Json): EngineCall {
  const schema = formatSchema(req.format);
  const body: Json = {
    ...samplingParams(req.options),
    model,
    messages,
    stream: true,
    // the usage chunk counts the whole prompt, cached tokens included, as Ollama's prompt_eval_count does
    stream_options: { include_usage: true },
    ...thinkParams(req.think),
  };
  if (schema) body.response_format = { type: "json_schema", json_schema: { name: "format", schema } };
  if (req.tools !== undefined && req.tools !== null) {
    if (!Array.isArray(req.tools)) throw badRequest("tools must be an array");
    if (req.tools.length > 0) body.tools = req.tools;
  }
  return { path: "/v1/chat/completions", body, dialect: "chat" };
}

/** `/api/chat` with at least one message. */
export function chatCall(model: string, req: Json): EngineCall {
  return chatCompletion(model, engineMessages(req.messages), req);
}

/** `/api/generate` with a prompt. */
export function generateCall(model: string, req: Json): EngineCall {
  const prompt = typeof req.prompt === "string" ? req.prompt : "";
  const images = strings(req.images, "images");
  if (Array.isArray(req.context) && req.context.length > 0) {
    throw badRequest("context is not supported: send the conversation to /api/chat instead");
  }
  if (typeof req.template === "string" && req.template !== "") {
    throw badRequest("template is not supported: the model's own chat template applies (or use raw)");
  }
  const suffix = typeof req.suffix === "string" ? req.suffix : "";
  if (req.raw === true || suffix) {
    if (req.raw === true && typeof req.system === "string" && req.system !== "") {
      throw badRequest("raw mode does not support template, system, or context");
    }
    if (images.length > 0) throw badRequest("images need the model's chat template: send them without raw");
    const schema = formatSchema(req.format);
    const body: Json = {
      ...samplingParams(req.options),
      model,
      stream: true,
      ...(schema ? { json_schema: schema } : {}),
    };
    if (suffix) {
      return {
        path: "/infill",
        body: { ...body, input_prefix: prompt, input_suffix: suffix },
        dialect: "completion",
      };
    }
    return { path: "/completion", body: { ...body, prompt }, dialect: "completion" };
  }
  const messages: Json[] = [];
  if (typeof req.system === "string" && req.system !== "") {
    messages.push({ role: "system", content: req.system });
  }
  messages.push({ role: "user", content: content(prompt, images) });
  return chatCompletion(model, messages, req);
}

/** `/api/embed`'s `input`: a string or an array of strings; an empty string is no input at all. */
export function embedInputs(input: unknown): string[] {
  if (input === undefined || input === null) return [];
  if (typeof input === "string") return input ? [input] : [];
  if (Array.isArray(input) && input.every((v) => typeof v === "string")) return input;
  throw badRequest("invalid input type");
}

/**
 * An embedding cut to `dimensions` and scaled back to unit length, as Ollama does; unchanged when
 * `dimensions` is absent or not smaller.
 */
export function truncateEmbedding(embedding: number[], dimensions: number | undefined): number[] {
  if (!dimensions || dimensions <= 0 || dimensions >= embedding.length) return embedding;
  const cut = embedding.slice(0, dimensions);
  const norm = Math.sqrt(cut.reduce((sum, x) => sum + x * x, 0));
  return norm > 0 ? cut.map((x) => x / Math.max(norm, 1e-12)) : cut;
}
