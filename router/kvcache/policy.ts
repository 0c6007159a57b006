/**
 * The KV cache store's pure decisions: when a stop saves, which slots to save, which saved caches to
 * delete to stay within `--swap-kv-cache-max`.
 */
import type { UnloadReason } from "../scheduler/policies/unload_reason.ts";

/**
 * Whether a stop saves the engine's KV cache: only stops asked for with the model meant to come back
 * (an eviction, its idle TTL, an unload). Not a crash (there is no engine to ask), not a reload (its
 * launch changed, so its key most likely did), not a memory sweep (a load that ran out of memory waits
 * for the exit), not the gateway's shutdown (it would hold the exit by a save per model).
 *
 * @example
 * savesOnStop("evicted"); // true
 * savesOnStop("shutdown"); // false
 */
export function savesOnStop(reason: UnloadReason): boolean {
  return reason === "evicted" || reason === "idle" || reason === "requested";
}

/** One slot as the engine's `GET /slots` shows it. */
export interface SlotFacts {
  id: number;
  /** tokens of the slot's last prompt (and its answer) still in the cache; 0 when it never served */
  promptTokens: number;
}

/**
 * The slots to save: those holding a prompt, and those the gateway restored on this spawn (the engine
 * lists a restored slot without its tokens until it serves again, yet its cache holds them).
 *
 * @example
 * slotsToSave([{ id: 0, promptTokens: 812 }, { id: 1, promptTokens: 0 }], new Set([1])); // [0, 1]
 */
export function slotsToSave(slots: readonly SlotFacts[], restored: ReadonlySet<number>): number[] {
  return slots.filter((s) => s.promptTokens > 0 || restored.has(s.id)).map((s) => s.id);
}

/** One model's saved cache under one key, as the LRU bound sees it. */
export interface StoredCache {
  /** `<model folder>/<key>`: unique in the store */
  id: string;
  bytes: number;
  /** when it was last saved or restored (ms) */
  usedAt: number;
  /** being restored or saved over right now: deleting it would pull files from under the engine */
  inUse: boolean;
}

/**
 * The caches to delete so that the rest fit in `maxBytes`: least recently used first, never one in
 * use. A cache larger than the bound by itself is deleted too (the store would otherwise hold it
 * over its bound until something newer pushed it out).
 *
 * @example
 * overBudget([{ id: "a", bytes: 3, usedAt: 1, inUse: false }, { id: "b", bytes: 3, usedAt: 2, inUse: false }], 4);
 * // [the entry "a"]
 */
export function overBudget(caches: readonly StoredCache[], maxBytes: number): StoredCache[] {
  let total = caches.reduce((sum, c) => sum + c.bytes, 0);
  const victims: StoredCache[] = [];
  const oldestFirst = [...caches].sort((a, b) => a.usedAt - b.usedAt || (a.id < b.id ? -1 : 1));
  for (const cache of oldestFirst) {
    if (total <= maxBytes) break;
    if (cache.inUse) continue;
    victims.push(cache);
    total -= cache.bytes;
  }
  return victims;
}
