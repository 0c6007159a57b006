/**
 * The request `Deadline` (router/deadline.ts): a client that leaves and an expired --timeout both abort
 * its signal, and one shared sweeper checks every deadline. The sweeper outlives its last deadline
 * until its next tick, and stops there. Deno's op sanitizer (off by default in this Deno, so turned on
 * here) fails any test that leaves the sweeper's interval running, so each test also proves that it
 * stops once its deadlines have ended.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { Deadline } from "../../router/deadline.ts";

function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, sanitizeOps: true, sanitizeResources: true, fn });
}

/** Resolves with the signal's reason once it aborts: the tests wait on the event, never on a sleep. */
function aborted(signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(signal.reason), { once: true })
  );
}

interface Counts {
  started: number;
  cleared: number;
  /** resolves when the next interval is cleared: the sweeper stopping */
  nextStop(): Promise<void>;
}

/**
 * Counts the intervals started and cleared while `fn` runs. The sweeper is the only interval `Deadline`
 * starts, so this counts sweepers. When `fn` is done, it waits for the sweeper to stop.
 */
async function countingIntervals(fn: (counts: Counts) => Promise<void> | void): Promise<void> {
  const { setInterval: realSet, clearInterval: realClear } = globalThis;
  let stopped = Promise.withResolvers<void>();
  let running = 0;
  const counts: Counts = { started: 0, cleared: 0, nextStop: () => stopped.promise };
  globalThis.setInterval = ((...args: Parameters<typeof realSet>) => {
    counts.started++;
    running++;
    return realSet(...args);
  }) as typeof realSet;
  globalThis.clearInterval = ((id?: number) => {
    realClear(id);
    if (id === undefined) return;
    counts.cleared++;
    running--;
    stopped.resolve();
    stopped = Promise.withResolvers<void>();
  }) as typeof realClear;
  try {
    await fn(counts);
    if (running > 0) await counts.nextStop();
  } finally {
    globalThis.setInterval = realSet;
    globalThis.clearInterval = realClear;
  }
}

test("deadline: a client that leaves aborts the signal with the client's reason", async () => {
  await countingIntervals(async () => {
    const client = new AbortController();
    const deadline = new Deadline(client.signal, 3_600_000);
    try {
      assertEquals(deadline.signal.aborted, false);
      const reason = new Error("client went away");
      client.abort(reason);
      assertEquals(await aborted(deadline.signal), reason);
    } finally {
      deadline.end();
    }
  });
});

test("deadline: expiry aborts with a TimeoutError, never before the timeout, and ends itself", async () => {
  const client = new AbortController();
  const timeoutMs = 50;
  await countingIntervals(async (counts) => {
    const start = performance.now();
    const deadline = new Deadline(client.signal, timeoutMs);
    const reason = await aborted(deadline.signal);
    const waited = performance.now() - start;
    assert(reason instanceof DOMException, `a DOMException, got ${reason}`);
    assertEquals(reason.name, "TimeoutError");
    // a lower bound only: the sweeper may fire late on a busy machine, never early
    assert(waited >= timeoutMs, `aborted after ${waited.toFixed(1)} ms, before the ${timeoutMs} ms timeout`);
    // the expired deadline took itself off the sweeper, which stops at its next tick
    await counts.nextStop();
    assertEquals([counts.started, counts.cleared], [1, 1]);
    // and it let go of the client: a later abort of the client changes nothing
    client.abort(new Error("too late"));
    assertEquals(deadline.signal.reason, reason);
  });
});

test("deadline: end() detaches from the client; the sweeper stops at its next tick", async () => {
  await countingIntervals(async (counts) => {
    const client = new AbortController();
    const deadline = new Deadline(client.signal, 3_600_000);
    assertEquals([counts.started, counts.cleared], [1, 0]);
    deadline.end();
    client.abort(new Error("after the end"));
    assertEquals(deadline.signal.aborted, false, "an ended deadline no longer follows its client");
    // ending twice is harmless, and a deadline made before the tick reuses the sweeper
    deadline.end();
    const next = new Deadline(new AbortController().signal, 3_600_000);
    next.end();
    assertEquals([counts.started, counts.cleared], [1, 0], "one sweeper for back-to-back deadlines");
    await counts.nextStop();
    // after it stopped, a new deadline starts a new one
    new Deadline(new AbortController().signal, 3_600_000).end();
    assertEquals(counts.started, 2);
  });
});

test("deadline: several deadlines share one sweeper, which stops when the last one ends", async () => {
  await countingIntervals(async (counts) => {
    const clients = [new AbortController(), new AbortController(), new AbortController()];
    const [long, left, short] = [
      new Deadline(clients[0].signal, 3_600_000),
      new Deadline(clients[1].signal, 3_600_000),
      new Deadline(clients[2].signal, 20),
    ];
    try {
      assertEquals(counts.started, 1, "one interval for three deadlines");
      clients[1].abort(new Error("left"));
      left.end();
      const reason = await aborted(short.signal);
      assertEquals((reason as DOMException).name, "TimeoutError");
      assertEquals(counts.cleared, 0, "the sweeper keeps running while a deadline is left");
      assertEquals(long.signal.aborted, false, "an expiry aborts only its own deadline");
    } finally {
      for (const d of [long, left, short]) d.end();
    }
    await counts.nextStop();
    assertEquals([counts.started, counts.cleared], [1, 1]);
  });
});

test("a client already gone when the deadline is made aborts it at once, with the client's reason", async () => {
  await countingIntervals(async () => {
    const client = new AbortController();
    const reason = new Error("client left early");
    client.abort(reason);
    const deadline = new Deadline(client.signal, 60_000);
    assert(deadline.signal.aborted, "aborted from the start");
    assertEquals(await aborted(deadline.signal), reason);
    deadline.end();
  });
});
