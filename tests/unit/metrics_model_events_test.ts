/**
 * Loads and unloads counted from the model events, with time as a plain number the test moves: no
 * timers, no processes. The scheduler's own events (tests/helpers/scheduler_setup.ts) show the same
 * counts come from a real scheduler's transitions.
 */
import { assertEquals } from "../helpers/assert.ts";
import { setup, use } from "../helpers/scheduler_setup.ts";
import { within } from "../helpers/wait.ts";
import { EventBus, type ModelEvent } from "../../router/scheduler/events.ts";
import type { LoadResult } from "../../router/metrics/families.ts";
import { loadOutcome, type LoadSink, watchLoads } from "../../router/metrics/model_events.ts";

class Recorder implements LoadSink {
  readonly lines: string[] = [];
  /** `durations`: write each load's seconds (where the test knows what they must be) */
  constructor(readonly durations = true) {}
  loadEnded(model: string, result: LoadResult, seconds?: number): void {
    this.lines.push(
      `load ${model} ${result}${seconds === undefined || !this.durations ? "" : ` ${seconds}s`}`,
    );
  }
  unloaded(model: string, reason: string): void {
    this.lines.push(`unload ${model} ${reason}`);
  }
}

const loading = (model: string): ModelEvent => ({
  model,
  event: "model_status",
  data: { status: "loading" },
});
const change = (model: string, data: Record<string, unknown>): ModelEvent => ({
  model,
  event: "status_change",
  data,
});

Deno.test("watchLoads: a load's result and duration, each exit's reason; a wake is not a load", () => {
  const events = new EventBus();
  const sink = new Recorder();
  let now = 1000;
  const stop = watchLoads(events, sink, () => now);
  events.publish(loading("a"));
  now += 2500;
  events.publish(change("a", { status: "loading", progress: { value: 0.5 } }));
  events.publish(change("a", { status: "loaded" }));
  events.publish(change("a", { status: "sleeping" }));
  events.publish(change("a", { status: "loaded" }));
  events.publish(change("a", { status: "unloaded", exit_code: 0, reason: "idle" }));
  events.publish(loading("b"));
  events.publish(change("b", { status: "unloaded", exit_code: 1, reason: "crashed", failed: true }));
  events.publish(loading("c"));
  events.publish(change("c", { status: "unloaded", exit_code: 0, reason: "requested" }));
  events.publish({ model: "d", event: "download_finished" });
  stop();
  events.publish(loading("e"));
  assertEquals(sink.lines, [
    "load a success 2.5s",
    "unload a idle",
    "load b failure",
    "unload b crashed",
    "load c cancelled",
    "unload c requested",
  ]);
});

Deno.test("loadOutcome: failed, crashed or out of memory is a failure; a stop asked for is cancelled", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ failed: true, reason: "crashed" }, "failure"],
    [{ reason: "crashed" }, "failure"],
    // an out-of-memory load about to be retried is not `failed` yet, but this load did fail
    [{ reason: "memory" }, "failure"],
    [{ reason: "requested" }, "cancelled"],
    [{ reason: "evicted" }, "cancelled"],
    [{ reason: "shutdown" }, "cancelled"],
    [{}, "cancelled"],
  ];
  for (const [data, expected] of cases) assertEquals(loadOutcome(data), expected, JSON.stringify(data));
});

Deno.test("watchLoads on a real scheduler's events: a load, an eviction, a failed load", async () => {
  const { scheduler, starter, events } = setup(1, ["a", "b"]);
  const sink = new Recorder(false);
  watchLoads(events, sink);
  const exited = (model: string) =>
    new Promise<void>((resolve) => {
      const off = events.subscribe((e) => {
        if (e.model === model && e.data?.status === "unloaded") (off(), resolve());
      });
    });
  (await within(use(scheduler, "a"), "a ready")).release();
  const aGone = exited("a");
  starter.failNext = true;
  const bFailed = exited("b");
  await within(use(scheduler, "b").then(() => {}, () => {}), "b's load ends");
  await within(Promise.all([aGone, bFailed]), "both exits");
  // a's exit and b's failure may come in either order: b may start while a stops
  assertEquals(sink.lines.sort(), [
    "load a success",
    "load b failure",
    "unload a evicted",
    "unload b crashed",
  ]);
  await scheduler.shutdown();
});
