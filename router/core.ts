/**
 * The gateway without its processes and sockets: the model table, the Hub puller, the upstream pool
 * and the Hono app, wired from the parsed configuration. `startGateway` adds the engine, the runners
 * and the listening socket; the in-process tests give it a stub starter instead, so they exercise
 * this same wiring (e.g. `--queue-max` reaching the scheduler) without a llama-server.
 */
import type { Hono } from "hono";
import { createApp } from "./app.ts";
import { FAKE_TIMING_DELAY_MS, type GatewayConfig } from "./config.ts";
import { serverError } from "./errors.ts";
import type { FeatureHost } from "./features/host.ts";
import type { HubOptions } from "./hub/options.ts";
import { ModelPuller } from "./hub/puller.ts";
import { GATEWAY_PID_ENV } from "./orphans.ts";
import { EventBus } from "./scheduler/events.ts";
import { type EngineStarter, Scheduler } from "./scheduler/scheduler.ts";
import { ggufFileProblem } from "./memory/gguf.ts";
import type { GatewayMemory } from "./memory/port.ts";
import type { KvCachePort } from "./kvcache/port.ts";
import { Observer } from "./metrics/observer.ts";
import { type PinnedClaim, pinnedOverBudget } from "./memory/pinned.ts";
import { loadCatalog } from "./sources/catalog.ts";
import { modelFileOf } from "./sources/model_file.ts";
import type { ModelSpec, SourceOptions } from "./sources/types.ts";
import { UpstreamPool } from "./upstream/http1.ts";

export interface CoreOptions {
  engineBin: string;
  /** `b<N>-<hash>` of the engine */
  buildInfo: string;
  starter: EngineStarter;
  /** where `reload` reads the models from */
  sources: SourceOptions;
  hub: HubOptions;
  /** the catalog as read at start-up */
  models: ModelSpec[];
  /** a single-model command line's model (see GatewayDeps) */
  defaultModel?: string;
  /** serves `/tools` and `/cors-proxy` (see GatewayDeps) */
  features?: FeatureHost;
  /** budgets and projections; without it only `--models-max` counts (the in-process tests) */
  memory?: GatewayMemory;
  /** engines' KV caches kept across stops (`--swap-kv-cache`); without it they never are */
  kvCache?: KvCachePort;
  log: (line: string) => void;
}

export interface GatewayCore {
  app: Hono;
  scheduler: Scheduler;
  events: EventBus;
  upstream: UpstreamPool;
  /** re-reads every model source and applies it to the model table */
  reload(): Promise<void>;
  /** throws when the pinned models among `specs` cannot all be held within the budgets */
  checkPins(specs: readonly ModelSpec[]): Promise<void>;
}

export function createGatewayCore(config: GatewayConfig, opts: CoreOptions): GatewayCore {
  const { log, sources, memory } = opts;
  const events = new EventBus();
  // marks engines as ours, so a later gateway can find those an earlier one left behind
  const engineEnv = { [GATEWAY_PID_ENV]: String(Deno.pid) };
  const upstream = new UpstreamPool();
  const scheduler = new Scheduler({
    engineBin: opts.engineBin,
    starter: opts.starter,
    modelsMax: config.modelsMax,
    memory,
    ttlS: config.modelsTtlS,
    events,
    passthrough: config.passthrough,
    engineEnv,
    loadDelayMs: config.fakeTiming ? FAKE_TIMING_DELAY_MS : 0,
    queueMax: config.queueMax,
    loadSilenceTimeoutMs: config.loadSilenceTimeoutS * 1000,
    maxCrashes: config.maxCrashes,
    closeConnections: (port) => upstream.closePort(port),
    modelFileProblem: (spec) => {
      const path = modelFileOf(spec);
      return path === undefined ? undefined : ggufFileProblem(path);
    },
    engineMetrics: config.metrics,
    kvCache: opts.kvCache,
    log,
  }, opts.models);
  const observer = config.metrics
    ? new Observer({
      table: scheduler,
      events,
      upstream,
      apiPrefix: config.apiPrefix,
      kvCacheStats: opts.kvCache && (() => opts.kvCache!.stats()),
    })
    : undefined;

  const checkPins = async (specs: readonly ModelSpec[]): Promise<void> => {
    if (!memory) return;
    const pins: PinnedClaim[] = [];
    for (const spec of specs.filter((s) => s.pinned)) {
      try {
        pins.push({ modelId: spec.id, bytes: (await memory.project(spec, scheduler.launchOf(spec))).bytes });
      } catch (err) {
        log(`warning: memory: pinned model ${spec.id} cannot be projected: ${(err as Error).message}`);
      }
    }
    const problem = pinnedOverBudget(pins, memory.budgets());
    if (problem) throw new Error(problem);
  };

  let reloading: Promise<void> | undefined;
  const reload = (): Promise<void> => {
    reloading ??= (async () => {
      try {
        const fresh = await loadCatalog(sources, { onReload: true });
        fresh.warnings.forEach((w) => log(`warning: ${w}`));
        await checkPins(fresh.models);
        await scheduler.replaceSpecs(fresh.models);
        events.publish({ model: "*", event: "models_reload" });
        log(`models reloaded: ${fresh.models.length} models`);
      } catch (err) {
        log(`reload failed, models unchanged: ${(err as Error).message}`);
        throw serverError(`reload failed, models unchanged: ${(err as Error).message}`);
      } finally {
        reloading = undefined;
      }
    })();
    return reloading;
  };

  const puller = new ModelPuller({ hub: opts.hub, scheduler, reload, offline: config.offline, log });
  const app = createApp({
    config,
    scheduler,
    puller,
    upstream,
    events,
    defaultModel: opts.defaultModel,
    features: opts.features,
    buildInfo: opts.buildInfo,
    memory,
    observer,
    reload,
    log,
  });
  return { app, scheduler, events, upstream, reload, checkPins };
}
