/**
 * `GET /activity`: the last requests the gateway relayed, in a ring of fixed size, so that what is
 * kept never grows with traffic. Each entry says where a request went and what it cost: queue wait,
 * time to first token, duration, tokens and tokens per second.
 */
import type { FinishedRequest } from "../metrics/tap.ts";

/** One request, as `/activity` shows it (times in ms, rounded to 0.01 ms). */
export interface ActivityEntry {
  /** ISO time the gateway got it */
  time: string;
  /** the model-table id it was routed to; null when none was */
  model: string | null;
  endpoint: string;
  status: number;
  streamed: boolean;
  queue_wait_ms: number | null;
  /** to the first streamed chunk; null for an answer that was not streamed */
  ttft_ms: number | null;
  duration_ms: number;
  prompt_tokens: number | null;
  generated_tokens: number | null;
  /** generated tokens per second: the engine's figure when it gives one, else over the generation's time */
  tokens_per_s: number | null;
}

/** Requests kept by default. */
export const ACTIVITY_KEPT = 500;

const ms = (x: number | undefined): number | null => x === undefined ? null : Math.round(x * 100) / 100;

/**
 * A finished request as an entry. Without the engine's own speed, tokens per second are counted over
 * the generation: from the first streamed chunk (or the admission, for a whole answer) to the end.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const entry = activityEntry({
 *   startedAt: 0, model: "a", endpoint: "/completion", status: 200, streamed: false,
 *   queueWaitMs: 10, durationMs: 1010, usage: { prompt: 3, generated: 50 },
 * });
 * assert.deepEqual(entry.tokens_per_s, 50);
 * ```
 */
export function activityEntry(r: FinishedRequest): ActivityEntry {
  const generationMs = r.durationMs - (r.firstChunkMs ?? r.queueWaitMs ?? 0);
  const engineSpeed = r.usage.generatedPerSecond;
  const generated = r.usage.generated;
  const perSecond = engineSpeed !== undefined && engineSpeed > 0
    ? engineSpeed
    : generated !== undefined && generated > 0 && generationMs > 0
    ? generated / (generationMs / 1000)
    : undefined;
  return {
    time: new Date(r.startedAt).toISOString(),
    model: r.model ?? null,
    endpoint: r.endpoint,
    status: r.status,
    streamed: r.streamed,
    queue_wait_ms: ms(r.queueWaitMs),
    ttft_ms: r.streamed ? ms(r.firstChunkMs) : null,
    duration_ms: ms(r.durationMs)!,
    prompt_tokens: r.usage.prompt ?? null,
    generated_tokens: generated ?? null,
    tokens_per_s: perSecond === undefined ? null : Math.round(perSecond * 100) / 100,
  };
}

export type ActivityListener = (entry: ActivityEntry) => void;

/**
 * The last `capacity` requests, oldest overwritten first; listeners hear of each new one. Requests are
 * kept as they finished and read as entries only when asked for (or followed), so that keeping one costs
 * the hot path a slot write and no formatting.
 */
export class ActivityRing {
  readonly #requests: (FinishedRequest | undefined)[];
  #next = 0;
  readonly #listeners = new Set<ActivityListener>();

  constructor(readonly capacity: number = ACTIVITY_KEPT) {
    this.#requests = new Array(capacity);
  }

  push(request: FinishedRequest): void {
    this.#requests[this.#next] = request;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#listeners.size === 0) return;
    const entry = activityEntry(request);
    for (const listener of this.#listeners) listener(entry);
  }

  /** Newest first, those `keep` accepts, at most `limit`. */
  recent(keep: (entry: ActivityEntry) => boolean = () => true, limit = this.capacity): ActivityEntry[] {
    const out: ActivityEntry[] = [];
    for (let i = 1; i <= this.capacity && out.length < limit; i++) {
      const request = this.#requests[(this.#next - i + this.capacity) % this.capacity];
      if (!request) break;
      const entry = activityEntry(request);
      if (keep(entry)) out.push(entry);
    }
    return out;
  }

  subscribe(listener: ActivityListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
