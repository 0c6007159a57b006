/**
 * The scheduler's rules on a stub engine starter (fast; the same rules run on real engines in
 * tests/e2e): shared loads, LRU eviction, busy models kept, FIFO queue, a leaving client frees its place.
 */
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { setup, use } from "../helpers/scheduler_setup.ts";
import { HANG_MS, waitFor } from "../helpers/wait.ts";

Deno.test("concurrent requests for one model share one load", async () => {
  const { starter, scheduler, state } = setup(2);
  const leases = await Promise.all([use(scheduler, "a"), use(scheduler, "a"), use(scheduler, "a-alias")]);
  assertEquals(starter.starts, ["a"]);
  assertEquals(state("a"), "loaded");
  assertEquals(new Set(leases.map((l) => l.port)).size, 1);
  leases.forEach((l) => l.release());
  await scheduler.shutdown();
});

Deno.test("the least recently used idle model is evicted; args carry the gateway's flags", async () => {
  const { starter, scheduler, state } = setup(2);
  (await use(scheduler, "a")).release();
  (await use(scheduler, "b")).release();
  (await use(scheduler, "a")).release(); // a is now more recent than b
  (await use(scheduler, "c")).release();
  assertEquals(state("b"), "unloaded");
  assertEquals(state("a"), "loaded");
  assertEquals(state("c"), "loaded");
  assertEquals(starter.stops, ["b"]);
  const args = scheduler.find("c")!.args;
  assert(args.join(" ").includes("--ctx-size 512"), args.join(" "));
  await scheduler.shutdown();
});

Deno.test("a swap under --models-max starts the next engine while the evicted one exits, its sockets closed first", async () => {
  const closed: number[] = [];
  const { starter, scheduler, state } = setup(1, ["a", "b", "c"], {
    closeConnections: (p) => closed.push(p),
  });
  const a = await use(scheduler, "a");
  const aPort = a.port;
  a.release();
  starter.holdStops = true;
  const b = await use(scheduler, "b");
  // b serves while a is still stopping: its place was given up at once, its exit is not waited for
  assertEquals(starter.starts, ["a", "b"]);
  assert(scheduler.find("a")!.stopping, "a is still stopping");
  assertEquals(closed, [aPort], "a's kept-alive sockets are closed before it is asked to stop");
  b.release();
  // a second swap while a has not exited: processes would be three, twice the cap is two: c waits
  const c = use(scheduler, "c");
  await waitFor(() => starter.stops.includes("b"), HANG_MS, "b evicted for c");
  assertEquals(starter.starts, ["a", "b"]);
  starter.finishStop("a");
  starter.finishStop("b");
  (await c).release();
  assertEquals(starter.starts, ["a", "b", "c"]);
  assertEquals([state("a"), state("b"), state("c")], ["unloaded", "unloaded", "loaded"]);
  starter.holdStops = false;
  await scheduler.shutdown();
});

Deno.test("a busy model is never evicted: the request waits in the queue", async () => {
  const { starter, scheduler, state } = setup(1);
  const busy = await use(scheduler, "a");
  const waiting = use(scheduler, "b");
  // admission decides synchronously: b is queued by now, and a was not picked to make room for it
  assertEquals(scheduler.queueLength(), 1);
  assertEquals(scheduler.find("a")!.stopping, false, "a is not being stopped");
  assertEquals(starter.stops, []);
  assertEquals(state("a"), "loaded");
  busy.release();
  const lease = await waiting;
  assertEquals(state("a"), "unloaded");
  assertEquals(state("b"), "loaded");
  lease.release();
  await scheduler.shutdown();
});

Deno.test("the queue is FIFO and coalesces requests for the same model", async () => {
  const { starter, scheduler } = setup(1);
  const busy = await use(scheduler, "a");
  const order: string[] = [];
  const b1 = use(scheduler, "b").then((l) => (order.push("b"), l));
  const c = use(scheduler, "c").then((l) => (order.push("c"), l));
  const b2 = use(scheduler, "b").then((l) => (order.push("b"), l));
  assertEquals(scheduler.queueLength(), 2);
  busy.release();
  const [lb1, lb2] = await Promise.all([b1, b2]);
  lb1.release();
  lb2.release();
  (await c).release();
  assertEquals(order, ["b", "b", "c"]);
  assertEquals(starter.starts, ["a", "b", "c"]);
  await scheduler.shutdown();
});

Deno.test("a client leaving the queue frees its place: nothing is evicted for it", async () => {
  const { starter, scheduler, state } = setup(1);
  const busy = await use(scheduler, "a");
  const gone = new AbortController();
  const abandoned = use(scheduler, "b", { signal: gone.signal });
  assertEquals(scheduler.queueLength(), 1);
  gone.abort();
  await assertRejects(() => abandoned);
  assertEquals(scheduler.queueLength(), 0);
  busy.release();
  // an eviction would be decided on this release, synchronously: a stays and nothing else starts
  assertEquals(starter.stops, []);
  assertEquals(state("a"), "loaded");
  assertEquals(starter.starts, ["a"]);
  await scheduler.shutdown();
});

Deno.test("a load failure reaches every waiter as a 500 with the engine's log; the next request retries", async () => {
  const { starter, scheduler, state, seen } = setup(2);
  starter.failNext = true;
  const results = await Promise.allSettled([use(scheduler, "a"), use(scheduler, "a")]);
  for (const r of results) {
    assertEquals(r.status, "rejected");
    const err = (r as PromiseRejectedResult).reason;
    assertEquals(err.status, 500);
    assert(/failed to load.*error loading model/s.test(err.message), err.message);
  }
  assertEquals(state("a"), "unloaded");
  assertEquals(scheduler.find("a")!.failed, true);
  const unloaded = seen.find((e) => e.event === "status_change" && e.data?.status === "unloaded");
  assertEquals(unloaded?.data?.failed, true);
  (await use(scheduler, "a")).release();
  assertEquals(state("a"), "loaded");
  assertEquals(scheduler.find("a")!.failed, false);
  await scheduler.shutdown();
});

Deno.test("a failed load whose log names no error is explained by a look at its model file", async () => {
  const asked: string[] = [];
  const { starter, scheduler } = setup(2, ["a", "b"], {
    modelFileProblem: (spec) => (asked.push(spec.id), `the model file of ${spec.id} is not a GGUF file`),
  });
  // llama.cpp can exit before its queued log lines are written: the last one it got out is no error
  starter.failWith = ["0.00.002.232 I srv         start: binding port with default address family"];
  const rejection = (p: Promise<unknown>) =>
    p.then(() => new Error("the request was served"), (e: Error) => e);
  const err = await rejection(use(scheduler, "a"));
  assert(
    /failed to load: the model file of a is not a GGUF file; exit code 1/.test(err.message),
    err.message,
  );
  assert(scheduler.find("a")!.error!.includes("binding port"), "the engine's lines stay in the reason");
  // where the engine's log names its error, that is the reason, and nobody looks at the file
  starter.failWith = [
    "0.00.003.645 E gguf_init_from_reader: invalid magic characters: 'this', expected 'GGUF'",
  ];
  const named = await rejection(use(scheduler, "b"));
  assert(/failed to load: exit code 1; last log lines:\n.*invalid magic/s.test(named.message), named.message);
  assertEquals(asked, ["a"]);
  await scheduler.shutdown();
});

Deno.test("explicit load evicts an idle model; with only busy models it reports the limit", async () => {
  const { scheduler } = setup(1);
  (await use(scheduler, "a")).release();
  await scheduler.load("b");
  assert(scheduler.find("a")!.stopping, "a's stop has begun: b loads while it exits");
  const busy = await use(scheduler, "b");
  let status = 0;
  await scheduler.load("c").catch((e) => (status = e.status));
  assertEquals(status, 500);
  busy.release();
  await scheduler.shutdown();
});

Deno.test("unload waits for requests in flight, then stops the engine", async () => {
  const { starter, scheduler, state } = setup(2);
  const lease = await use(scheduler, "a");
  scheduler.unload("a");
  assertEquals(starter.stops, [], "not stopped while a request is in flight");
  // the stop looks again at every change of the table: b's start is one, and b is ready only later,
  // on the stub's load timer
  (await use(scheduler, "b")).release();
  assertEquals(starter.stops, [], "not stopped while a request is in flight, after a change");
  let served = false;
  const next = use(scheduler, "a").then((l) => {
    served = true;
    l.release();
  });
  lease.release();
  await next;
  assert(served, "a request arriving during the stop is served by a fresh load");
  assertEquals(starter.stops, ["a"]);
  assertEquals(state("a"), "loaded");
  await scheduler.shutdown();
});
