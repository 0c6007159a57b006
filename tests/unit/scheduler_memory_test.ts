/**
 * The scheduler's memory-aware rules on a stub starter and a fake memory port: admission by claims
 * against budgets, the fewest and right evictions, a model that never fits answered at once, pins and
 * priorities, the idle TTL on a manual clock (a request always wins), one retry after an
 * out-of-memory load, and the reason of every unload. The rules themselves are tested alone in
 * policy_*_test.ts; these tests show the scheduler applies them to the table.
 */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { setup, spec, use } from "../helpers/scheduler_setup.ts";
import { rejectsWith } from "./hub_test_util.ts";
import { ApiError } from "../../router/errors.ts";
import { HANG_MS, waitFor } from "../helpers/wait.ts";
import type { MemoryPort } from "../../router/scheduler/memory_port.ts";
import { ManualClock } from "../../router/scheduler/policies/clock.ts";
import type { ModelEvent } from "../../router/scheduler/events.ts";
import type { Scheduler } from "../../router/scheduler/scheduler.ts";
import type { ModelSpec } from "../../router/sources/types.ts";

const GiB = 2 ** 30;

/** A port whose models need `gib[id]` GiB of host memory, against a host budget of `budgetGib`. */
function fakePort(gib: Record<string, number>, budgetGib: number): MemoryPort {
  return {
    budgets: () => ({ Host: budgetGib * GiB }),
    serialisedDevices: () => [],
    project: (s: ModelSpec) => Promise.resolve({ bytes: { Host: gib[s.id] * GiB }, source: "gguf" as const }),
    observe: () => undefined,
  };
}

/** Memory-aware setup: no count cap, models sized as given, `extra` spec fields per model. */
function memorySetup(
  gib: Record<string, number>,
  budgetGib: number,
  extra: Record<string, Partial<ModelSpec>> = {},
) {
  const models = Object.keys(gib).map((id) => spec(id, extra[id]));
  const world = setup(0, models, { memory: fakePort(gib, budgetGib) });
  // sampled on every event: claims never exceed the budget at any moment
  const overBudget: string[] = [];
  world.events.subscribe(() => {
    const claimed = world.scheduler.claimed().Host ?? 0;
    if (claimed > budgetGib * GiB) overBudget.push(`${claimed / GiB} GiB claimed`);
  });
  return { ...world, overBudget };
}

const unloadReasons = (seen: ModelEvent[]) =>
  seen.filter((e) => e.data?.status === "unloaded").map((e) => `${e.model}:${e.data?.reason}`);

Deno.test("memory: models start while their claims fit; the least recently used idle one makes room", async () => {
  const { scheduler, state, starter, seen, overBudget } = memorySetup({ a: 4, b: 4, c: 4 }, 10);
  (await use(scheduler, "a")).release();
  (await use(scheduler, "b")).release();
  assertEquals(scheduler.claimed(), { Host: 8 * GiB });
  (await use(scheduler, "c")).release();
  assertEquals([state("a"), state("b"), state("c")], ["unloaded", "loaded", "loaded"]);
  assertEquals(starter.stops, ["a"], "one eviction was enough");
  assertEquals(unloadReasons(seen), ["a:evicted"]);
  assertEquals(overBudget, []);
  await scheduler.shutdown();
});

Deno.test("memory: the fewest models are evicted, and only idle ones", async () => {
  const { scheduler, state, starter, overBudget } = memorySetup({ big: 6, s1: 2, s2: 2, new: 5 }, 10);
  for (const id of ["s1", "big", "s2"]) (await use(scheduler, id)).release();
  const busy = await use(scheduler, "s2");
  // short by 5: s1 (the oldest) frees 2, too little; big alone frees 6
  (await use(scheduler, "new")).release();
  assertEquals(starter.stops, ["big"]);
  assertEquals([state("s1"), state("s2"), state("new")], ["loaded", "loaded", "loaded"]);
  busy.release();
  assertEquals(overBudget, []);
  await scheduler.shutdown();
});

Deno.test("memory: a model bigger than the budget is refused at once, naming what it needs; never queued", async () => {
  const { scheduler, starter } = memorySetup({ a: 4, huge: 12 }, 10);
  (await use(scheduler, "a")).release();
  const err = await rejectsWith(use(scheduler, "huge"), ApiError);
  assertEquals(err.status, 503);
  assertMatch(err.message, /needs 12\.00 GiB on Host.*budget of 10\.00 GiB/);
  assertEquals(scheduler.queueLength(), 0);
  assertEquals(starter.stops, [], "nothing was evicted for it");
  const load = await rejectsWith(scheduler.load("huge"), ApiError);
  assertMatch(load.message, /needs 12\.00 GiB/);
  await scheduler.shutdown();
});

Deno.test("memory: a pinned model survives pressure; what pins leave too small is refused at once", async () => {
  const { scheduler, state, starter } = memorySetup({ pinned: 3, b: 3, c: 4, d: 8 }, 10, {
    pinned: { pinned: true },
  });
  (await use(scheduler, "pinned")).release();
  (await use(scheduler, "b")).release();
  // pinned is the least recently used of all, and still kept
  (await use(scheduler, "c")).release();
  assertEquals(starter.stops, [], "3 + 3 + 4 fit in 10");
  const err = await rejectsWith(use(scheduler, "d"), ApiError);
  assertMatch(err.message, /pinned model pinned/);
  assertEquals(state("pinned"), "loaded");
  await scheduler.shutdown();
});

Deno.test("memory: a lower-priority model is evicted before an older one of higher priority", async () => {
  const { scheduler, starter } = memorySetup({ keep: 5, low: 5, x: 5 }, 10, { keep: { priority: 5 } });
  (await use(scheduler, "keep")).release(); // the least recently used
  (await use(scheduler, "low")).release();
  (await use(scheduler, "x")).release();
  assertEquals(starter.stops, ["low"]);
  await scheduler.shutdown();
});

Deno.test("queue: a waiting request of higher priority is served before earlier ones", async () => {
  const { scheduler } = setup(1, [spec("a"), spec("b"), spec("c", { priority: 9 })]);
  const busy = await use(scheduler, "a");
  const order: string[] = [];
  const b = use(scheduler, "b").then((l) => (order.push("b"), l.release()));
  const c = use(scheduler, "c").then((l) => (order.push("c"), l.release()));
  assertEquals(scheduler.queueLength(), 2);
  busy.release();
  await Promise.all([b, c]);
  assertEquals(order, ["c", "b"]);
  await scheduler.shutdown();
});

/** A scheduler whose time is a manual clock, `--models-ttl` 10 s. */
function ttlSetup() {
  const clock = new ManualClock(1_000_000);
  return { clock, ...setup(0, ["a", "b"], { clock, ttlS: 10 }) };
}

async function unloadedWith(scheduler: Scheduler, seen: ModelEvent[], id: string): Promise<unknown> {
  await waitFor(() => scheduler.find(id)!.state === "unloaded", HANG_MS, `${id} unloaded`);
  return seen.findLast((e) => e.model === id && e.data?.status === "unloaded")?.data?.reason;
}

Deno.test("ttl: an idle model is unloaded its TTL after its last request ended, with reason idle", async () => {
  const { clock, scheduler, seen } = ttlSetup();
  (await use(scheduler, "a")).release();
  const ended = clock.now();
  assertEquals(scheduler.expiresAt(scheduler.find("a")!), ended + 10_000);
  clock.advance(9_999);
  assertEquals(scheduler.find("a")!.state, "loaded");
  clock.advance(1);
  assertEquals(await unloadedWith(scheduler, seen, "a"), "idle");
  await scheduler.shutdown();
});

Deno.test("ttl: a request in flight or arriving always wins; the TTL counts from the end of the last one", async () => {
  const { clock, scheduler, starter } = ttlSetup();
  const lease = await use(scheduler, "a");
  assertEquals(scheduler.expiresAt(scheduler.find("a")!), null, "no expiry while busy");
  clock.advance(60_000);
  assertEquals(starter.stops, []);
  lease.release();
  clock.advance(9_000);
  // a request comes and goes just before the expiry: the timer, when it fires, must look again
  (await use(scheduler, "a")).release();
  const ended = clock.now();
  clock.advance(1_000);
  assertEquals(starter.stops, [], "the earlier expiry did not stop it");
  assertEquals(scheduler.expiresAt(scheduler.find("a")!), ended + 10_000);
  clock.advance(9_000);
  await waitFor(() => starter.stops.length === 1, HANG_MS, "a stopped when idle for its TTL");
  await scheduler.shutdown();
});

Deno.test("ttl: pinned models and a preset ttl of 0 never expire; a preset ttl beats --models-ttl", async () => {
  const clock = new ManualClock(1_000_000);
  const models = [spec("pin", { pinned: true }), spec("never", { ttlS: 0 }), spec("quick", { ttlS: 1 })];
  const { scheduler, starter } = setup(0, models, { clock, ttlS: 10 });
  for (const id of ["pin", "never", "quick"]) (await use(scheduler, id)).release();
  assertEquals(scheduler.expiresAt(scheduler.find("pin")!), null);
  assertEquals(scheduler.expiresAt(scheduler.find("never")!), null);
  clock.advance(1_000);
  await waitFor(() => starter.stops.length === 1, HANG_MS, "quick expired");
  clock.advance(3_600_000);
  assertEquals(starter.stops, ["quick"]);
  await scheduler.shutdown();
});

const OOM_LINE = "ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 4294967296";

Deno.test("oom: a load that runs out of memory unloads the idle models and is retried once", async () => {
  const { scheduler, starter, seen, state } = setup(0, ["a", "b", "x"]);
  (await use(scheduler, "a")).release();
  (await use(scheduler, "b")).release();
  starter.failWith = [OOM_LINE];
  (await use(scheduler, "x")).release();
  assertEquals(starter.starts, ["a", "b", "x", "x"]);
  assertEquals([state("a"), state("b"), state("x")], ["unloaded", "unloaded", "loaded"]);
  assertEquals(unloadReasons(seen).sort(), ["a:memory", "b:memory", "x:memory"]);
  await scheduler.shutdown();
});

Deno.test("oom: a second out-of-memory failure marks the model failed with the reason; no loop", async () => {
  const { scheduler, starter, state } = setup(0, ["a", "x"]);
  (await use(scheduler, "a")).release();
  starter.failWith = [OOM_LINE, OOM_LINE];
  const err = await rejectsWith(use(scheduler, "x"), ApiError);
  assertMatch(err.message, /failed to load/);
  assertEquals(starter.starts, ["a", "x", "x"], "tried twice, not more");
  assertEquals(state("x"), "unloaded");
  assert(scheduler.find("x")!.failed);
  assertMatch(scheduler.find("x")!.error ?? "", /out of memory/i);
  await scheduler.shutdown();
});

Deno.test("reasons: unload is requested, a reload's stop is reload, shutdown is shutdown", async () => {
  const { scheduler, seen } = setup(0, ["a", "b", "c"]);
  for (const id of ["a", "b", "c"]) (await use(scheduler, id)).release();
  scheduler.unload("a");
  await waitFor(() => scheduler.find("a")!.state === "unloaded", HANG_MS, "a unloaded");
  await scheduler.replaceSpecs([spec("a"), spec("c")]);
  await scheduler.shutdown();
  assertEquals(unloadReasons(seen), ["a:requested", "b:reload", "c:shutdown"]);
});

/** A GPU port whose live free memory reads, poll after poll, as `reads` says (GiB), then the last. */
function gpuPort(gib: Record<string, number>, reads: number[]) {
  const polls: number[] = [];
  const port: MemoryPort = {
    budgets: () => ({ CUDA0: 10 * GiB }),
    serialisedDevices: () => ["CUDA0"],
    project: (s: ModelSpec) =>
      Promise.resolve({ bytes: { CUDA0: gib[s.id] * GiB }, source: "fit-params" as const }),
    observe: () => undefined,
    liveFree: () => {
      const free = reads[Math.min(polls.length, reads.length - 1)];
      polls.push(free);
      return Promise.resolve({ CUDA0: free * GiB });
    },
  };
  return { port, polls };
}

Deno.test("memory: after a GPU model exits, the next load there waits until the device shows the memory free", async () => {
  const clock = new ManualClock(1_000_000);
  const { port, polls } = gpuPort({ a: 6, x: 6 }, [2, 3, 9]);
  const { scheduler, starter } = setup(0, ["a", "x"], { clock, memory: port });
  (await use(scheduler, "a")).release();
  const x = use(scheduler, "x");
  await waitFor(() => polls.length === 1, HANG_MS, "live free memory polled after a's exit");
  assertEquals(starter.starts, ["a"], "2 GiB free of 6: x waits");
  clock.advance(250);
  await waitFor(() => polls.length === 2, HANG_MS, "second poll");
  assertEquals(starter.starts, ["a"], "3 GiB free of 6: x still waits");
  clock.advance(250);
  (await x).release();
  assertEquals(starter.starts, ["a", "x"]);
  assertEquals(polls.length, 3);
  await scheduler.shutdown();
});

Deno.test("memory: the wait for live free memory is bounded; then claims alone decide", async () => {
  const clock = new ManualClock(1_000_000);
  const { port, polls } = gpuPort({ a: 6, x: 6 }, [0]);
  const { scheduler, starter } = setup(0, ["a", "x"], { clock, memory: port });
  (await use(scheduler, "a")).release();
  const x = use(scheduler, "x");
  for (let polled = 1; starter.starts.length < 2; polled++) {
    await waitFor(() => polls.length >= polled || starter.starts.length === 2, HANG_MS, `poll ${polled}`);
    clock.advance(250);
  }
  (await x).release();
  assert(polls.length >= 20 && polls.length <= 21, `polled for 5 s, every 250 ms: ${polls.length}`);
  await scheduler.shutdown();
});
