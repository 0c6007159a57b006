/**
 * An engine's answer as Ollama frames it. Engines stream OpenAI chat chunks (`/v1/chat/completions`)
 * or llama.cpp completion chunks (`/completion`, `/infill`); each is read into an `AnswerDelta`,
 * gathered by `Answer`, and framed as Ollama's `/api/chat` or `/api/generate` objects: a chunk per
 * piece of text, tool calls once they are whole, and a last object with `done`, `done_reason` and
 * the durations (nanoseconds) and token counts.
 */
import type { EventTranslation } from "./ndjson.ts";

/** An Ollama tool call: arguments are an object, not JSON text as in OpenAI's shape. */
export interface OllamaToolCall {
  id?: string;
  function: { index: number; name: string; arguments: Record<string, unknown> };
}

/** A piece of a tool call, as OpenAI streams them: the name first, the arguments in fragments. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  name?: string;
  arguments?: string;
}

export interface EngineCounts {
  promptTokens?: number;
  promptMs?: number;
  evalTokens?: number;
  evalMs?: number;
}

/** What one engine event adds to the answer. */
export interface AnswerDelta {
  content?: string;
  thinking?: string;
  toolCalls?: ToolCallDelta[];
  /** Ollama's `done_reason`, once the engine says why it stopped */
  doneReason?: string;
  counts?: EngineCounts;
  /** the engine (or the gateway) reported an error instead of an answer */
  error?: string;
}

type Json = Record<string, unknown>;

const asObject = (v: unknown): Json => (v && typeof v === "object" && !Array.isArray(v) ? v as Json : {});
const asNumber = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined);
const asText = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

function errorOf(event: Json): string | undefined {
  if (event.error === undefined) return undefined;
  const error = event.error;
  return typeof error === "string" ? error : asText(asObject(error).message) ?? JSON.stringify(error);
}

/** OpenAI's finish reasons as Ollama's: a tool call is a stop. */
function doneReasonOf(finish: unknown): string | undefined {
  if (typeof finish !== "string") return undefined;
  return finish === "tool_calls" || finish === "function_call" ? "stop" : finish;
}

/** llama.cpp's `timings` (and OpenAI's `usage`, which counts cached prompt tokens too). */
function countsOf(event: Json): EngineCounts | undefined {
  const timings = asObject(event.timings);
  const usage = asObject(event.usage);
  const counts: EngineCounts = {
    promptTokens: asNumber(usage.prompt_tokens) ?? asNumber(event.tokens_evaluated) ??
      asNumber(timings.prompt_n),
    promptMs: asNumber(timings.prompt_ms),
    evalTokens: asNumber(usage.completion_tokens) ?? asNumber(event.tokens_predicted) ??
      asNumber(timings.predicted_n),
    evalMs: asNumber(timings.predicted_ms),
  };
  return Object.values(counts).some((v) => v !== undefined) ? counts : undefined;
}

/** One OpenAI chat chunk (or a whole chat completion: its `message` read as one delta). */
export function chatDelta(data: unknown): AnswerDelta {
  const event = asObject(data);
  const error = errorOf(event);
  if (error !== undefined) return { error };
  const choice = asObject((event.choices as unknown[] | undefined)?.[0]);
  const delta = asObject(choice.delta ?? choice.message);
  const calls = Array.isArray(delta.tool_calls) ? delta.tool_calls : [];
  return {
    content: asText(delta.content),
    thinking: asText(delta.reasoning_content),
    toolCalls: calls.length
      ? calls.map((raw, i) => {
        const call = asObject(raw);
        const fn = asObject(call.function);
        return {
          index: asNumber(call.index) ?? i,
          id: asText(call.id),
          name: asText(fn.name),
          arguments: typeof fn.arguments === "string" ? fn.arguments : undefined,
        };
      })
      : undefined,
    doneReason: doneReasonOf(choice.finish_reason),
    counts: countsOf(event),
  };
}

/** One llama.cpp `/completion` chunk: `content`, and `stop` with `stop_type` at the end. */
export function completionDelta(data: unknown): AnswerDelta {
  const event = asObject(data);
  const error = errorOf(event);
  if (error !== undefined) return { error };
  const stopped = event.stop === true;
  return {
    content: asText(event.content),
    doneReason: stopped ? (event.stop_type === "limit" ? "length" : "stop") : undefined,
    counts: stopped ? countsOf(event) : undefined,
  };
}

/** The answer so far: text, thinking, tool calls by index, and how it ended. */
export class Answer {
  content = "";
  thinking = "";
  doneReason = "stop";
  counts: EngineCounts = {};
  error?: string;
  readonly #calls = new Map<number, { id?: string; name: string; args: string }>();

  add(delta: AnswerDelta): void {
    if (delta.error !== undefined) this.error ??= delta.error;
    this.content += delta.content ?? "";
    this.thinking += delta.thinking ?? "";
    for (const part of delta.toolCalls ?? []) {
      const call = this.#calls.get(part.index) ?? { name: "", args: "" };
      call.id ??= part.id;
      call.name += part.name ?? "";
      call.args += part.arguments ?? "";
      this.#calls.set(part.index, call);
    }
    if (delta.doneReason) this.doneReason = delta.doneReason;
    if (delta.counts) this.counts = { ...this.counts, ...dropUndefined(delta.counts) };
  }

  /** The tool calls, whole: arguments parsed (an empty object when the model wrote no valid JSON). */
  toolCalls(): OllamaToolCall[] {
    return [...this.#calls.entries()].sort(([a], [b]) => a - b).map(([index, call]) => ({
      ...(call.id ? { id: call.id } : {}),
      function: { index, name: call.name, arguments: parseArguments(call.args) },
    }));
  }
}

function dropUndefined(counts: EngineCounts): EngineCounts {
  return Object.fromEntries(Object.entries(counts).filter(([, v]) => v !== undefined));
}

function parseArguments(text: string): Record<string, unknown> {
  try {
    const parsed = JSON.parse(text || "{}");
    return asObject(parsed);
  } catch {
    return {};
  }
}

/** Which of Ollama's answers is being framed. */
export type AnswerKind = "chat" | "generate";

/** What frames an answer: for whom, and its timing from the gateway's point of view. */
export interface FrameContext {
  kind: AnswerKind;
  /** the model as the client named it (Ollama answers with the name it was sent) */
  model: string;
  /** total and load durations (ns) at the moment the answer ends */
  durations(): { total: number; load: number };
}

const MS_NS = 1e6;

function body(kind: AnswerKind, content: string, thinking: string, toolCalls?: OllamaToolCall[]): Json {
  const extra = {
    ...(thinking ? { thinking } : {}),
    ...(toolCalls?.length ? { tool_calls: toolCalls } : {}),
  };
  return kind === "chat"
    ? { message: { role: "assistant", content, ...extra } }
    : { response: content, ...extra };
}

/** A piece of the answer, while it streams. */
export function chunkFrame(
  ctx: FrameContext,
  piece: { content?: string; thinking?: string; toolCalls?: OllamaToolCall[] },
): Json {
  return {
    model: ctx.model,
    created_at: new Date().toISOString(),
    ...body(ctx.kind, piece.content ?? "", piece.thinking ?? "", piece.toolCalls),
    done: false,
  };
}

/**
 * The last object: `done`, why, and the counts. `whole`: the answer was not streamed, so this one
 * object carries all of it.
 */
export function doneFrame(ctx: FrameContext, answer: Answer, whole: boolean): Json {
  const { total, load } = ctx.durations();
  const c = answer.counts;
  return {
    model: ctx.model,
    created_at: new Date().toISOString(),
    ...(whole ? body(ctx.kind, answer.content, answer.thinking, answer.toolCalls()) : body(ctx.kind, "", "")),
    done: true,
    done_reason: answer.doneReason,
    total_duration: Math.round(total),
    load_duration: Math.round(load),
    prompt_eval_count: c.promptTokens ?? 0,
    prompt_eval_duration: Math.round((c.promptMs ?? 0) * MS_NS),
    eval_count: c.evalTokens ?? 0,
    eval_duration: Math.round((c.evalMs ?? 0) * MS_NS),
  };
}

/** The objects to stream for an engine's event stream, one event at a time. */
export function streamedAnswer(
  ctx: FrameContext,
  deltaOf: (data: unknown) => AnswerDelta,
  settled?: () => void,
): EventTranslation {
  const answer = new Answer();
  return {
    event(data) {
      if (answer.error !== undefined) return [];
      const delta = deltaOf(data);
      answer.add(delta);
      if (delta.error !== undefined) return [{ error: delta.error }];
      const { content, thinking } = delta;
      return content || thinking ? [chunkFrame(ctx, { content, thinking })] : [];
    },
    end() {
      if (answer.error !== undefined) return [];
      const calls = answer.toolCalls();
      // Ollama sends tool calls in a chunk of their own, once parsed, before the last one
      return [
        ...(calls.length ? [chunkFrame(ctx, { toolCalls: calls })] : []),
        doneFrame(ctx, answer, false),
      ];
    },
    settled,
  };
}
