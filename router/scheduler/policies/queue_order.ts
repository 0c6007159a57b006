/**
 * The order of the load queue: a higher-priority model's request goes ahead of lower ones, and
 * requests of equal priority keep their arrival order (llama-swap's `scheduler/fifo.go`). Priority
 * is the preset's `priority` (default 0), the same number that orders eviction.
 */

/**
 * Where a newcomer of `priority` goes: just before the first entry of strictly lower priority,
 * else at the end. Ties never jump, so equal priorities stay first come, first served.
 */
export function insertionIndex<T>(
  queue: readonly T[],
  priority: number,
  priorityOf: (entry: T) => number,
): number {
  const i = queue.findIndex((entry) => priorityOf(entry) < priority);
  return i < 0 ? queue.length : i;
}

/**
 * A new queue with `entry` in its place; the old one is left as it was.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { enqueue } from "./queue_order.ts";
 * const byPriority = (e: { id: string; priority: number }) => e.priority;
 * let queue = [{ id: "a", priority: 0 }, { id: "b", priority: 0 }];
 * queue = enqueue(queue, { id: "urgent", priority: 5 }, byPriority);
 * queue = enqueue(queue, { id: "c", priority: 0 }, byPriority);
 * assert.deepEqual(queue.map((e) => e.id), ["urgent", "a", "b", "c"]);
 * ```
 */
export function enqueue<T>(queue: readonly T[], entry: T, priorityOf: (entry: T) => number): T[] {
  const i = insertionIndex(queue, priorityOf(entry), priorityOf);
  return [...queue.slice(0, i), entry, ...queue.slice(i)];
}
