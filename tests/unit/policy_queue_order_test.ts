/**
 * Queue order with priorities: ahead of the first lower-priority entry, first come first served
 * among equals (llama-swap's scheduler/fifo.go).
 */
import { assertEquals } from "../helpers/assert.ts";
import { enqueue, insertionIndex } from "../../router/scheduler/policies/queue_order.ts";

interface Entry {
  id: string;
  priority: number;
}
const priorityOf = (e: Entry) => e.priority;
const ids = (q: Entry[]) => q.map((e) => e.id);

/** Arrivals in order, each as `id:priority`. */
function arrive(...arrivals: string[]): Entry[] {
  return arrivals.reduce<Entry[]>((queue, a) => {
    const [id, p] = a.split(":");
    return enqueue(queue, { id, priority: Number(p) }, priorityOf);
  }, []);
}

Deno.test("queue order: a table of arrivals and the order they are served in", () => {
  const cases: [string[], string[]][] = [
    [["a:0", "b:0", "c:0"], ["a", "b", "c"]],
    [["a:0", "b:5", "c:0"], ["b", "a", "c"]],
    [["a:5", "b:5", "c:5"], ["a", "b", "c"]],
    [["a:0", "b:1", "c:2", "d:1"], ["c", "b", "d", "a"]],
    [["a:3", "b:-1", "c:0"], ["a", "c", "b"]],
    [["a:-2", "b:-2", "c:-1"], ["c", "a", "b"]],
  ];
  for (const [arrivals, served] of cases) assertEquals(ids(arrive(...arrivals)), served, arrivals.join(" "));
});

Deno.test("queue order: an equal priority never jumps ahead", () => {
  const queue = arrive("a:1", "b:0");
  assertEquals(insertionIndex(queue, 1, priorityOf), 1, "after a, before b");
  assertEquals(insertionIndex(queue, 0, priorityOf), 2, "at the end");
  assertEquals(insertionIndex([], 7, priorityOf), 0);
});

Deno.test("queue order: enqueue leaves the old queue as it was", () => {
  const before = arrive("a:0");
  const after = enqueue(before, { id: "b", priority: 1 }, priorityOf);
  assertEquals(ids(before), ["a"]);
  assertEquals(ids(after), ["b", "a"]);
});
