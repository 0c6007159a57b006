/**
 * Ollama's per-request `keep_alive` as the scheduler's idle TTL (`Scheduler.keepAlive`), on a manual
 * clock: it wins over `--models-ttl` and the preset for the model's current load, 0 unloads the
 * model once idle, Infinity never, and a request in flight or arriving still wins.
 */
import { assertEquals } from "../helpers/assert.ts";
import { setup, spec, use } from "../helpers/scheduler_setup.ts";
import { HANG_MS, waitFor } from "../helpers/wait.ts";
import { ManualClock } from "../../router/scheduler/policies/clock.ts";

/** `--models-ttl 10` on a manual clock. */
function ttlSetup() {
  const clock = new ManualClock(1_000_000);
  return { clock, ...setup(0, ["a", spec("b", { ttlS: 60 })], { clock, ttlS: 10 }) };
}

Deno.test("keep_alive: a request's TTL wins over --models-ttl and the preset's for the current load", async () => {
  const { clock, scheduler, starter } = ttlSetup();
  (await use(scheduler, "a")).release();
  const a = scheduler.find("a")!;
  scheduler.keepAlive("a", 30);
  assertEquals(scheduler.ttlOf(a), 30);
  assertEquals(scheduler.expiresAt(a), clock.now() + 30_000);
  clock.advance(29_999);
  assertEquals(starter.stops, [], "not at --models-ttl's 10 s");
  clock.advance(1);
  await waitFor(() => a.state === "unloaded", HANG_MS, "a unloaded after its keep_alive");

  // the next load starts from the configured TTL again
  (await use(scheduler, "a")).release();
  assertEquals(scheduler.ttlOf(a), 10);

  (await use(scheduler, "b")).release();
  scheduler.keepAlive("b", 5);
  assertEquals(scheduler.ttlOf(scheduler.find("b")!), 5, "it wins over the preset's ttl too");
  scheduler.keepAlive("b", undefined);
  assertEquals(scheduler.ttlOf(scheduler.find("b")!), 60, "undefined: back to the preset's");
  await scheduler.shutdown();
});

Deno.test("keep_alive: Infinity never expires; 0 unloads once idle, not while a request is in flight", async () => {
  const { clock, scheduler, starter, seen } = ttlSetup();
  (await use(scheduler, "a")).release();
  const a = scheduler.find("a")!;
  scheduler.keepAlive("a", Infinity);
  assertEquals([scheduler.ttlOf(a), scheduler.expiresAt(a)], [0, null]);
  clock.advance(3_600_000);
  assertEquals(starter.stops, []);

  const lease = await use(scheduler, "a");
  scheduler.keepAlive("a", 0);
  clock.advance(60_000);
  assertEquals(a.state, "loaded", "in use: a request always wins");
  lease.release();
  clock.advance(1);
  await waitFor(() => a.state === "unloaded", HANG_MS, "a unloaded once idle");
  assertEquals(seen.findLast((e) => e.model === "a" && e.data?.status === "unloaded")?.data?.reason, "idle");
  await scheduler.shutdown();
});

Deno.test("keep_alive: 0 on a model that is already idle unloads it now; an unknown model is ignored", async () => {
  const { clock, scheduler } = ttlSetup();
  (await use(scheduler, "a")).release();
  clock.advance(5_000);
  scheduler.keepAlive("a", 0);
  await waitFor(() => scheduler.find("a")!.state === "unloaded", HANG_MS, "a unloaded");
  scheduler.keepAlive("nope", 0);
  await scheduler.shutdown();
});
