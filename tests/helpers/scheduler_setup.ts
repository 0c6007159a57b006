/** A Scheduler on a stub starter, for the unit tests of its rules (tests/unit/scheduler*_test.ts). */
import { EventBus, type ModelEvent } from "../../router/scheduler/events.ts";
import { type Lease, Scheduler, type SchedulerOptions } from "../../router/scheduler/scheduler.ts";
import type { ModelSpec } from "../../router/sources/types.ts";
import { StubStarter } from "../fixtures/stub_starter.ts";

/** A `--models-dir` model, with `extra` (pin, priority, ttl...) on top. */
export function spec(id: string, extra: Partial<ModelSpec> = {}): ModelSpec {
  return {
    id,
    aliases: [`${id}-alias`],
    tags: [],
    source: "models_dir",
    options: new Map([["--model", `/models/${id}.gguf`]]),
    loadOnStartup: false,
    stopTimeoutS: 1,
    pinned: false,
    priority: 0,
    hidden: false,
    ...extra,
  };
}

export function setup(
  max: number,
  models: (string | ModelSpec)[] = ["a", "b", "c"],
  options: Partial<SchedulerOptions> = {},
) {
  const starter = new StubStarter();
  const events = new EventBus();
  const seen: ModelEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const scheduler = new Scheduler({
    engineBin: "/bin/llama-server",
    starter,
    modelsMax: max,
    events,
    passthrough: new Map([["--ctx-size", "512"]]),
    ...options,
  }, models.map((m) => typeof m === "string" ? spec(m) : m));
  const state = (id: string) => scheduler.find(id)!.state;
  return { starter, scheduler, state, seen, events };
}

export const use = async (s: Scheduler, id: string, opts: { signal?: AbortSignal } = {}): Promise<Lease> =>
  await s.acquire(id, { autoload: true, touch: true, ...opts });
