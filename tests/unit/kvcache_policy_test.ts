/** The store's pure decisions: which stops save, which slots, which saved caches the LRU bound deletes. */
import { overBudget, savesOnStop, slotsToSave, type StoredCache } from "../../router/kvcache/policy.ts";
import { UNLOAD_REASONS } from "../../router/scheduler/policies/unload_reason.ts";
import { assertEquals } from "../helpers/assert.ts";

Deno.test("only stops on purpose save: an eviction, an idle TTL, an unload", () => {
  const saving = UNLOAD_REASONS.filter(savesOnStop);
  assertEquals(saving, ["requested", "evicted", "idle"]);
});

Deno.test("the slots saved are those holding a prompt, and those restored on this spawn", () => {
  const slots = [
    { id: 0, promptTokens: 0 },
    { id: 1, promptTokens: 812 },
    { id: 2, promptTokens: 0 },
    { id: 3, promptTokens: 5 },
  ];
  assertEquals(slotsToSave(slots, new Set()), [1, 3]);
  assertEquals(slotsToSave(slots, new Set([2])), [1, 2, 3]);
  assertEquals(slotsToSave([], new Set([0])), [], "a slot the engine does not list is not asked for");
});

const cache = (id: string, bytes: number, usedAt: number, inUse = false): StoredCache => ({
  id,
  bytes,
  usedAt,
  inUse,
});
const ids = (caches: StoredCache[]) => caches.map((c) => c.id);

Deno.test("the bound deletes the least recently used first, only as many as it takes", () => {
  const caches = [cache("new", 4, 30), cache("old", 4, 10), cache("mid", 4, 20)];
  assertEquals(ids(overBudget(caches, 12)), [], "exactly at the bound");
  assertEquals(ids(overBudget(caches, 11)), ["old"]);
  assertEquals(ids(overBudget(caches, 5)), ["old", "mid"]);
  assertEquals(ids(overBudget(caches, 0)), ["old", "mid", "new"], "a bound nothing fits in keeps nothing");
  // one cache larger than the bound by itself goes too, rather than holding the store over it
  assertEquals(ids(overBudget([cache("huge", 100, 50)], 10)), ["huge"]);
  // equal times: the order is still the same every time
  assertEquals(ids(overBudget([cache("b", 4, 1), cache("a", 4, 1)], 4)), ["a"]);
});

Deno.test("a cache being restored is never deleted under the engine; the next one goes instead", () => {
  const caches = [cache("restoring", 4, 10, true), cache("older-but-free", 4, 20), cache("new", 4, 30)];
  assertEquals(ids(overBudget(caches, 8)), ["older-but-free"]);
  assertEquals(ids(overBudget(caches, 0)), ["older-but-free", "new"]);
});
