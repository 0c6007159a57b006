/**
 * A conversation with a model through a gateway, as token ids on `/completion`: the next turn's prompt
 * is the last prompt, the answer's tokens and the new tokens, exactly, so the engine's prompt cache
 * matches it token for token (text re-tokenised may not). The engine's own `timings.prompt_n` then says
 * how much of the prompt it had to process. Used by tests/e2e/kv_swap_test.ts and bench/kv_swap.ts.
 */
import { tinyLlamaVocab, TokenType } from "../fixtures/gguf.ts";
import type { HasUrl } from "./http.ts";
import { sseData } from "./sse_feed.ts";

/** What one turn tells. */
export interface Turn {
  /** the answer's tokens */
  tokens: number[];
  /** prompt tokens the engine processed (`timings.prompt_n`): the rest came from its cache */
  promptN: number;
  /** from sending the request to the first streamed token (ms) */
  firstTokenMs: number;
}

/** Token ids of the tiny model that are plain words: no control, byte or unknown tokens. */
const WORD_IDS: readonly number[] = (() => {
  const vocab = tinyLlamaVocab();
  return vocab.types.flatMap((type, id) => type === TokenType.NORMAL ? [id] : []);
})();

/** `n` word tokens, the same for the same seed (a small LCG: no test depends on `Math.random`). */
export function wordTokens(n: number, seed: number): number[] {
  let state = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return WORD_IDS[state % WORD_IDS.length];
  });
}

/**
 * One turn: `prompt` to `model`, `nPredict` tokens back, streamed (so the first token's time can be
 * taken). Throws with the gateway's answer when it is not a 200.
 */
export async function turn(gw: HasUrl, model: string, prompt: number[], nPredict: number): Promise<Turn> {
  const started = performance.now();
  const res = await fetch(`${gw.url}/completion`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      model,
      prompt,
      n_predict: nPredict,
      stream: true,
      return_tokens: true,
      temperature: 0,
    }),
  });
  if (res.status !== 200) throw new Error(`/completion for ${model}: ${res.status} ${await res.text()}`);
  const tokens: number[] = [];
  let firstTokenMs = -1;
  let promptN = -1;
  for await (const data of sseData(res.body!)) {
    const event = JSON.parse(data);
    if (Array.isArray(event.tokens) && event.tokens.length) {
      if (firstTokenMs < 0) firstTokenMs = performance.now() - started;
      tokens.push(...event.tokens);
    }
    if (event.timings) promptN = event.timings.prompt_n;
  }
  if (promptN < 0) throw new Error(`/completion for ${model}: the stream ended without timings`);
  return { tokens, promptN, firstTokenMs };
}
