/**
 * Where the scheduler saves and restores engines' KV caches (`SchedulerOptions.kvCache`), on a stub
 * starter and a fake store: the restore comes after the engine's `ready` and before the first request
 * is admitted; the save comes after the requests drained and before the gateway's sockets are closed
 * and the engine is asked to stop; only stops on purpose save (eviction, idle TTL, unload), not a crash,
 * a shutdown or a DELETE; each step is bounded. The real engine does the same in tests/e2e/kv_swap_test.ts.
 */
import type { KvCachePort, KvCacheStats, KvCacheSummary, KvCacheTarget } from "../../router/kvcache/port.ts";
import { ManualClock } from "../../router/scheduler/policies/clock.ts";
import type { RunningEngine } from "../../router/scheduler/scheduler.ts";
import type { ModelSpec } from "../../router/sources/types.ts";
import type { EngineLaunch, RunnerMessage } from "../../runners/protocol.ts";
import { StubStarter } from "../fixtures/stub_starter.ts";
import { assert, assertEquals } from "../helpers/assert.ts";
import { setup, spec, use } from "../helpers/scheduler_setup.ts";
import { HANG_MS, waitFor } from "../helpers/wait.ts";

const NO_STATS: KvCacheStats = {
  saves: 0,
  saveFailures: 0,
  restores: 0,
  restoreFailures: 0,
  restoredTokens: 0,
  savedBytes: 0,
  restoredBytes: 0,
  evictions: 0,
  storedBytes: 0,
};

/** A store that records what it is asked, in one log with the starter's stops and the sockets' closes. */
class FakeKvCache implements KvCachePort {
  readonly timeoutMs = 3000;
  readonly signals: AbortSignal[] = [];
  /** a save or restore waits for this, when set */
  holdSave?: Promise<void>;
  holdRestore?: Promise<void>;
  constructor(readonly log: string[]) {}
  enabledFor(s: ModelSpec): boolean {
    return s.swapKvCache ?? true;
  }
  engineOptions(): Map<string, string> {
    return new Map([["--slot-save-path", "/kv"]]);
  }
  prepare(s: ModelSpec): Promise<void> {
    this.log.push(`prepare ${s.id}`);
    return Promise.resolve();
  }
  async save(t: KvCacheTarget, signal: AbortSignal): Promise<void> {
    this.log.push(`save ${t.modelId}`);
    this.signals.push(signal);
    await this.holdSave;
  }
  async restore(t: KvCacheTarget, signal: AbortSignal): Promise<void> {
    this.log.push(`restore ${t.modelId}`);
    this.signals.push(signal);
    await this.holdRestore;
  }
  discard(modelId: string): Promise<void> {
    this.log.push(`discard ${modelId}`);
    return Promise.resolve();
  }
  summary(): KvCacheSummary | undefined {
    return undefined;
  }
  stats(): KvCacheStats {
    return { ...NO_STATS };
  }
}

/** The stub starter, its stops in the shared log, and a way to crash an engine. */
class LoggingStarter extends StubStarter {
  readonly #report = new Map<string, (m: RunnerMessage) => void>();
  constructor(readonly log: string[]) {
    super();
  }
  override start(launch: EngineLaunch, onMessage: (m: RunnerMessage) => void): RunningEngine {
    const id = launch.args[launch.args.indexOf("--alias") + 1];
    this.#report.set(id, onMessage);
    const engine = super.start(launch, onMessage);
    return {
      stop: (timeoutMs) => {
        this.log.push(`stop ${id}`);
        return engine.stop(timeoutMs);
      },
      kill: () => {
        this.log.push(`kill ${id}`);
        engine.kill();
      },
    };
  }
  /** The engine exits by itself, as a segfault would end it. */
  crash(id: string): void {
    this.#report.get(id)!({ type: "exit", code: 139, signal: "SIGSEGV" });
  }
}

/** The log's lines about one model's engine, in order: its own steps and its port's socket closes. */
function about(log: readonly string[], id: string, port: number): string[] {
  return log.filter((l) => l.endsWith(` ${id}`) || l === `close ${port}`);
}

function kvSetup(max: number, models: (string | ModelSpec)[] = ["a", "b", "c"], clock?: ManualClock) {
  const log: string[] = [];
  const kv = new FakeKvCache(log);
  const starter = new LoggingStarter(log);
  const s = setup(max, models, {
    starter,
    kvCache: kv,
    clock,
    closeConnections: (port) => log.push(`close ${port}`),
  });
  return { ...s, starter, kv, log };
}

Deno.test("the saved cache is restored after the engine is ready and before the first request is admitted", async () => {
  const { scheduler, kv, log, seen, state } = kvSetup(1);
  const restore = Promise.withResolvers<void>();
  kv.holdRestore = restore.promise;
  const lease = use(scheduler, "a");
  await waitFor(() => log.includes("restore a"), HANG_MS, "the restore");
  // the engine said ready; the model still loads: acquire leases only a ready model
  assertEquals(state("a"), "loading");
  assertEquals(scheduler.find("a")!.ready, false);
  assertEquals(seen.some((e) => e.event === "status_change" && e.data?.status === "loaded"), false);
  restore.resolve();
  const held = await lease;
  assertEquals(state("a"), "loaded");
  assertEquals(log, ["prepare a", "restore a"]);
  assert(scheduler.find("a")!.args.includes("--slot-save-path"), "the engine got the store's folder");
  held.release();
  await scheduler.shutdown();
});

Deno.test("an eviction, an idle TTL and an unload save before the sockets close and the engine is asked to stop", async () => {
  const clock = new ManualClock(1_000_000);
  const { scheduler, log, state } = kvSetup(1, ["a", "b", spec("c", { ttlS: 5 })], clock);
  const a = await use(scheduler, "a");
  const aPort = a.port;
  a.release();
  log.length = 0;
  const b = await use(scheduler, "b");
  assertEquals(about(log, "a", aPort).slice(0, 3), ["save a", `close ${aPort}`, "stop a"], "evicted");
  b.release();
  log.length = 0;
  scheduler.unload("b");
  await waitFor(() => state("b") === "unloaded", HANG_MS, "b unloaded");
  assertEquals(about(log, "b", b.port).slice(0, 3), ["save b", `close ${b.port}`, "stop b"], "unloaded");
  const c = await use(scheduler, "c");
  c.release();
  log.length = 0;
  clock.advance(5000);
  await waitFor(() => state("c") === "unloaded", HANG_MS, "c expired");
  assertEquals(about(log, "c", c.port).slice(0, 3), ["save c", `close ${c.port}`, "stop c"], "idle");
  await scheduler.shutdown();
});

Deno.test("a crash, a shutdown and a DELETE save nothing; a DELETE discards what was saved", async () => {
  const { scheduler, starter, log, state } = kvSetup(2);
  (await use(scheduler, "a")).release();
  starter.crash("a");
  await waitFor(() => state("a") === "unloaded", HANG_MS, "a crashed");
  assertEquals(scheduler.find("a")!.failed, true);
  (await use(scheduler, "b")).release();
  await scheduler.remove(scheduler.find("b")!);
  (await use(scheduler, "c")).release();
  await scheduler.shutdown();
  assertEquals(log.filter((l) => l.startsWith("save")), []);
  assert(log.includes("discard b"), log.join(", "));
  assertEquals(log.filter((l) => l.startsWith("stop")), ["stop b", "stop c"]);
});

Deno.test("a model whose preset opts out gets no --slot-save-path, and nothing is saved or restored for it", async () => {
  const { scheduler, log } = kvSetup(1, [spec("a", { swapKvCache: false }), "b"]);
  (await use(scheduler, "a")).release();
  assert(!scheduler.find("a")!.args.includes("--slot-save-path"));
  (await use(scheduler, "b")).release();
  await scheduler.shutdown();
  assertEquals(log.filter((l) => l.endsWith(" a") && !l.startsWith("stop")), []);
});

Deno.test("a save that overruns its bound does not hold the stop, and is told to give up", async () => {
  const clock = new ManualClock(1_000_000);
  const { scheduler, kv, log, state } = kvSetup(1, ["a"], clock);
  kv.holdSave = new Promise(() => {});
  (await use(scheduler, "a")).release();
  scheduler.unload("a");
  await waitFor(() => log.includes("save a"), HANG_MS, "the save");
  assertEquals(log.includes("stop a"), false, "the engine is not asked to stop while it saves");
  clock.advance(kv.timeoutMs - 1);
  assertEquals(log.includes("stop a"), false, "within the bound it still waits");
  clock.advance(1);
  await waitFor(() => state("a") === "unloaded", HANG_MS, "a stopped after the bound");
  assert(kv.signals.at(-1)!.aborted, "the save's signal was aborted");
  await scheduler.shutdown();
});

Deno.test("a restore that overruns its bound: the model serves anyway", async () => {
  const clock = new ManualClock(1_000_000);
  const { scheduler, kv, log, state } = kvSetup(1, ["a"], clock);
  kv.holdRestore = new Promise(() => {});
  const lease = use(scheduler, "a");
  await waitFor(() => log.includes("restore a"), HANG_MS, "the restore");
  assertEquals(state("a"), "loading");
  clock.advance(kv.timeoutMs);
  (await lease).release();
  assertEquals(state("a"), "loaded");
  assert(kv.signals.at(-1)!.aborted, "the restore's signal was aborted");
  await scheduler.shutdown();
});

Deno.test("a stop whose requests outlast stop-timeout saves nothing: the slot is still busy", async () => {
  const clock = new ManualClock(1_000_000);
  const { scheduler, log, state } = kvSetup(1, ["a"], clock);
  const busy = await use(scheduler, "a");
  scheduler.unload("a");
  clock.advance(scheduler.find("a")!.spec.stopTimeoutS * 1000);
  await waitFor(() => log.includes("stop a"), HANG_MS, "a asked to stop at stop-timeout");
  assertEquals(log.filter((l) => l.startsWith("save")), []);
  busy.release();
  await waitFor(() => state("a") === "unloaded", HANG_MS, "a stopped");
  await scheduler.shutdown();
});
