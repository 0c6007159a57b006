/**
 * Wires the gateway together: finds the engine, reads the model sources, starts the runner pool,
 * the scheduler and the HTTP server. `main.ts` and the tests start the gateway through here.
 */
import { join } from "node:path";
import type { GatewayConfig } from "./config.ts";
import { createGatewayCore } from "./core.ts";
import { FeatureHost } from "./features/host.ts";
import { anyFeature, FEATURE_ENV } from "./features/settings.ts";
import { killOrphanEngines } from "./orphans.ts";
import { type HubOptions, hubOptionsFromEnv } from "./hub/options.ts";
import { pullAtStartup } from "./hub/puller.ts";
import { HubUnavailableError } from "./hub/errors.ts";
import { fetchRemotePreset } from "./hub/remote_preset.ts";
import type { EventBus } from "./scheduler/events.ts";
import type { Scheduler } from "./scheduler/scheduler.ts";
import { resolveCacheDir } from "./sources/cache_dir.ts";
import { loadCatalog } from "./sources/catalog.ts";
import { singleModelSpec } from "./sources/single_model.ts";
import { FLAG } from "./sources/spec.ts";
import type { ModelSpec, SourceOptions } from "./sources/types.ts";
import { engineVersion, resolveEngine, switchyardCacheDir } from "./engine/binary.ts";
import { createMemoryPort } from "./memory/port.ts";
import { formatBytes } from "./memory/size.ts";
import { EngineSlots } from "./kvcache/slots_client.ts";
import { KvCacheStore } from "./kvcache/store.ts";
import { RunnerPool } from "../runners/supervisor.ts";

export interface Gateway {
  readonly url: string;
  readonly scheduler: Scheduler;
  readonly events: EventBus;
  reload(): Promise<void>;
  /** stops taking requests, stops every engine and runner */
  close(): Promise<void>;
}

export interface GatewayOptions {
  env: Record<string, string | undefined>;
  log: (line: string) => void;
}

export async function startGateway(given: GatewayConfig, opts: GatewayOptions): Promise<Gateway> {
  let config = given;
  const { log } = opts;
  const engineBin = await resolveEngine({ serverBin: config.serverBin, env: opts.env, log });
  const buildInfo = await engineVersion(engineBin);
  const cacheDir = resolveCacheDir(opts.env);
  const hub = hubOptionsFromEnv(opts.env, cacheDir);
  const remote = config.modelsPreset ? undefined : await remotePreset(config, hub, log);
  const presetFile = config.modelsPreset ?? remote;
  const defaultModel = await resolveSingleModel(config, remote !== undefined, hub, log);
  if (defaultModel) {
    log(`single-model command line: ${defaultModel.id} is the default model`);
    // llama.cpp's fake timing is its router's; llama-server with a model ignores it
    config = { ...config, fakeTiming: false };
  }
  const sources: SourceOptions = { cacheDir, modelsDir: config.modelsDir, presetFile, defaultModel };
  const catalog = await loadCatalog(sources);
  catalog.warnings.forEach((w) => log(`warning: ${w}`));

  const orphans = await killOrphanEngines();
  if (orphans.length) {
    log(`stopped ${orphans.length} engines left by an earlier gateway: pids ${orphans.join(", ")}`);
  }
  const features = anyFeature(config.features)
    ? await FeatureHost.start({ bin: engineBin, settings: config.features, env: opts.env, log })
    : undefined;
  const engineEnv = engineEnvironment(opts.env);
  const memory = await createMemoryPort({
    engineBin,
    buildInfo,
    spec: config.modelsMemory,
    env: engineEnv,
    cacheDir,
    log,
  }).catch(async (err) => {
    await features?.close();
    throw err;
  });
  const kvCache = await openKvCache(config, opts, { buildInfo, engineEnv, hfCacheDir: cacheDir });
  const pool = new RunnerPool({ spares: config.spareRunners, log, env: engineEnv });
  const { app, scheduler, events, upstream, reload, checkPins } = createGatewayCore(config, {
    engineBin,
    buildInfo,
    starter: pool,
    sources,
    hub,
    models: catalog.models,
    defaultModel: defaultModel?.id,
    features,
    memory,
    kvCache,
    log,
  });
  try {
    await checkPins(catalog.models);
  } catch (err) {
    await Promise.all([scheduler.shutdown(), pool.shutdown(), features?.close()]);
    throw err;
  }
  log(
    `engine: ${engineBin} (${buildInfo}); ${catalog.models.length} models; ${
      config.modelsMax || "no"
    } limit` +
      (config.modelsTtlS ? `; idle models unload after ${config.modelsTtlS} s` : ""),
  );
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname: config.host,
    port: config.port,
    onListen: (addr) => listening.resolve(addr as Deno.NetAddr),
  }, app.fetch);
  const addr = await listening.promise;
  const url = `http://${addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname}:${addr.port}`;
  log(`listening on ${url}`);

  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      const drained = server.shutdown();
      await scheduler.shutdown();
      await Promise.all([pool.shutdown(), features?.close()]);
      upstream.close();
      await Promise.race([drained, new Promise((r) => setTimeout(r, 5000))]);
    })();
  try {
    if (defaultModel) await loadDefaultModel(scheduler, defaultModel.id);
    await scheduler.loadOnStartup();
  } catch (err) {
    await close();
    throw err;
  }
  return { url, scheduler, events, reload, close };
}

/** The store of engines' KV caches (`--swap-kv-cache`; a preset may turn it on or off per model). */
async function openKvCache(
  config: GatewayConfig,
  { env, log }: GatewayOptions,
  engine: { buildInfo: string; engineEnv: Record<string, string>; hfCacheDir: string },
): Promise<KvCacheStore> {
  const root = config.swapKvCacheDir ?? join(switchyardCacheDir(env), "kv-cache");
  const store = await KvCacheStore.open({
    root,
    enabled: config.swapKvCache,
    maxBytes: config.swapKvCacheMaxBytes,
    keyContext: { engineBuild: engine.buildInfo, env: engine.engineEnv, hfCacheDir: engine.hfCacheDir },
    slots: new EngineSlots(config.apiPrefix),
    log,
  });
  if (config.swapKvCache) {
    log(`kv cache: kept across swaps in ${root}, at most ${formatBytes(config.swapKvCacheMaxBytes)}`);
  }
  return store;
}

/**
 * llama-server with a model loads it before it serves (its `/health` answers 503 meanwhile) and exits
 * when it cannot: so does the gateway on a single-model command line.
 */
export async function loadDefaultModel(scheduler: Scheduler, id: string): Promise<void> {
  try {
    // an autoloading acquire joins a load that an early request started, where `load` would refuse it
    (await scheduler.acquire(id, { autoload: true, touch: false })).release();
  } catch (err) {
    throw new Error(`the model given on the command line failed to load: ${(err as Error).message}`);
  }
}

/**
 * The single-model command line's model, once it can be loaded: `-hf` is pulled into the cache first
 * (as llama-server does before it loads), `-m` must name a file. `-hf owner/repo` alone is a remote
 * preset when the repo has a preset.ini (`hasRemotePreset`), and this model otherwise.
 */
export async function resolveSingleModel(
  config: GatewayConfig,
  hasRemotePreset: boolean,
  hub: HubOptions,
  log: (line: string) => void,
): Promise<ModelSpec | undefined> {
  if (!config.singleModel) return undefined;
  const identity = new Map(config.singleModel);
  if (config.remotePreset) {
    if (hasRemotePreset) return undefined;
    identity.set(FLAG.hfRepo, config.remotePreset);
  }
  const hfRepo = identity.get(FLAG.hfRepo);
  const hfFile = identity.get(FLAG.hfFile);
  if (typeof hfRepo === "string") {
    await pullAtStartup(hfRepo, typeof hfFile === "string" ? hfFile : undefined, {
      hub,
      offline: config.offline,
      log,
    });
  }
  const path = identity.get(FLAG.model);
  if (typeof path === "string" && !hfRepo) {
    const info = await Deno.stat(path).catch(() => undefined);
    if (!info?.isFile) throw new Error(`-m ${path}: no such model file`);
  }
  return singleModelSpec(identity);
}

/** `-hf owner/repo`: the repo's preset.ini, fetched into the cache (or found there when offline). */
async function remotePreset(
  config: GatewayConfig,
  hub: HubOptions,
  log: (line: string) => void,
): Promise<string | undefined> {
  if (!config.remotePreset) return undefined;
  let path;
  try {
    path = await fetchRemotePreset(config.remotePreset, { ...hub, offline: config.offline });
  } catch (err) {
    // llama-server falls back to the cache when the Hub cannot be reached; so does the single model
    if (!(err instanceof HubUnavailableError) || !config.singleModel) throw err;
    log(`warning: ${err.message}; looking for ${config.remotePreset} in the cache`);
    path = await fetchRemotePreset(config.remotePreset, { ...hub, offline: true });
  }
  // without a preset.ini the repo is the model of a single-model command line, as in llama-server
  if (!path && config.singleModel) return undefined;
  if (!path) {
    throw new Error(
      `-hf ${config.remotePreset}: the repo has no preset.ini${config.offline ? " in the cache" : ""}; ` +
        "Switchyard always runs as a router: use --models-dir, --models-preset, or ask for the model by name",
    );
  }
  log(`NOTE: using preset.ini from HF repo '${config.remotePreset}' (${path}): only use presets you trust`);
  return path;
}

/**
 * The environment runners and engines get: the gateway's, without what is the gateway's alone. An
 * engine must never see an API key (it would demand it from the gateway) nor router-only settings.
 */
export function engineEnvironment(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || GATEWAY_ONLY_ENV.has(name) || name.startsWith("LLAMA_ARG_MODELS_")) continue;
    // Vertex AI's variables make llama-server bind AIP_HTTP_PORT: the gateway's port, not the engine's
    if (name.startsWith("AIP_")) continue;
    out[name] = value;
  }
  return out;
}

const GATEWAY_ONLY_ENV = new Set([
  // the gateway serves /tools and /cors-proxy (router/features/)
  ...FEATURE_ENV,
  "LLAMA_API_KEY",
  "LLAMA_ARG_API_KEY_FILE",
  "SWITCHYARD_ADMIN_API_KEY",
  "LLAMA_ARG_SSL_KEY_FILE",
  "LLAMA_ARG_SSL_CERT_FILE",
  "LLAMA_ARG_HOST",
  "LLAMA_ARG_PORT",
  "HF_TOKEN",
  // a single-model command line's model is the gateway's to run; engines get theirs as flags
  "LLAMA_ARG_MODEL",
  "LLAMA_ARG_MODEL_URL",
  "LLAMA_ARG_HF_REPO",
  "LLAMA_ARG_HF_FILE",
]);
