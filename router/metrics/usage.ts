/**
 * Token counts from an engine's answer, read from its last bytes only: llama-server writes the
 * usage and timings of an answer at its end (the last event of a stream, the last keys of a JSON body,
 * which nlohmann's JSON sorts by name), so the relay never decodes a whole answer, nor any chunk of a
 * stream but the last few, to count tokens.
 */

export interface TokenUsage {
  /** prompt tokens, those reused from the prompt cache included (OpenAI's `usage.prompt_tokens`) */
  prompt?: number;
  generated?: number;
  /** the engine's own generation speed (`timings.predicted_per_second`), when it reports one */
  generatedPerSecond?: number;
}

/** How many of an answer's last bytes are looked at: its final event or object, with room to spare. */
export const TAIL_BYTES = 16 * 1024;

const decoder = new TextDecoder();

/** The last `TAIL_BYTES` of the concatenation of `parts`, as text (a character cut at the start is lost). */
export function tailText(parts: readonly Uint8Array[]): string {
  let size = 0;
  let first = parts.length;
  while (first > 0 && size < TAIL_BYTES) size += parts[--first].length;
  const kept = parts.slice(first);
  if (kept.length === 1) return decoder.decode(kept[0].subarray(Math.max(0, size - TAIL_BYTES)));
  const joined = new Uint8Array(size);
  let at = 0;
  for (const part of kept) {
    joined.set(part, at);
    at += part.length;
  }
  return decoder.decode(joined.subarray(Math.max(0, size - TAIL_BYTES)));
}

/**
 * The token counts an answer's tail reports, by the first field present, in this order: OpenAI's
 * `usage` (`prompt_tokens`, `completion_tokens`), Anthropic's and the Responses API's
 * (`input_tokens`, `output_tokens`), llama.cpp's `timings` (`prompt_n` + `cache_n`, `predicted_n`),
 * and `/completion`'s `tokens_evaluated`, `tokens_predicted`. The last occurrence counts, since the
 * final event of a stream carries the totals. A key inside a JSON string has escaped quotes, so
 * generated text cannot pose as one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const tail = 'data: {"timings":{"cache_n":3,"prompt_n":17,"predicted_n":4}}\n\ndata: [DONE]\n\n';
 * assert.deepEqual(usageOf(tail), { prompt: 20, generated: 4 });
 * ```
 */
export function usageOf(tail: string): TokenUsage {
  const processed = lastNumber(tail, "prompt_n");
  const fromTimings = processed === undefined ? undefined : processed + (lastNumber(tail, "cache_n") ?? 0);
  const usage: TokenUsage = {};
  const prompt = lastNumber(tail, "prompt_tokens") ?? lastNumber(tail, "input_tokens") ?? fromTimings ??
    lastNumber(tail, "tokens_evaluated");
  const generated = lastNumber(tail, "completion_tokens") ?? lastNumber(tail, "output_tokens") ??
    lastNumber(tail, "predicted_n") ?? lastNumber(tail, "tokens_predicted");
  const perSecond = lastNumber(tail, "predicted_per_second");
  if (prompt !== undefined) usage.prompt = prompt;
  if (generated !== undefined) usage.generated = generated;
  if (perSecond !== undefined) usage.generatedPerSecond = perSecond;
  return usage;
}

const NUMBER_AFTER_KEY = /\s*:\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/y;

/** The number after the last `"key":` in `text`, if any. */
function lastNumber(text: string, key: string): number | undefined {
  const quoted = `"${key}"`;
  for (let at = text.lastIndexOf(quoted); at >= 0; at = text.lastIndexOf(quoted, at - 1)) {
    NUMBER_AFTER_KEY.lastIndex = at + quoted.length;
    const m = NUMBER_AFTER_KEY.exec(text);
    if (m) return Number(m[1]);
    if (at === 0) break;
  }
  return undefined;
}
