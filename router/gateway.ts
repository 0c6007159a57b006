/**
 * Wires the gateway together: finds the engine, reads the model sources, starts the runner pool,
 * the scheduler and the HTTP server. `main.ts` and the tests start the gateway through here.
 */
import { FAKE_TIMING_DELAY_MS, type GatewayConfig } from "./config.ts";
import { createApp } from "./app.ts";
import { ModelPuller } from "./hub/puller.ts";
import { GATEWAY_PID_ENV, killOrphanEngines } from "./orphans.ts";
import { serverError } from "./errors.ts";
import { type HubOptions, hubOptionsFromEnv } from "./hub/options.ts";
import { fetchRemotePreset } from "./hub/remote_preset.ts";
import { UpstreamPool } from "./upstream/http1.ts";
import { CountAdmission } from "./scheduler/admission.ts";
import { EventBus } from "./scheduler/events.ts";
import { Scheduler } from "./scheduler/scheduler.ts";
import { resolveCacheDir } from "./sources/cache_dir.ts";
import { loadCatalog } from "./sources/catalog.ts";
import type { SourceOptions } from "./sources/types.ts";
import { engineVersion, resolveEngine } from "./engine/binary.ts";
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

export async function startGateway(config: GatewayConfig, opts: GatewayOptions): Promise<Gateway> {
  const { log } = opts;
  const engineBin = await resolveEngine({ serverBin: config.serverBin, env: opts.env, log });
  const buildInfo = await engineVersion(engineBin);
  const cacheDir = resolveCacheDir(opts.env);
  const hub = hubOptionsFromEnv(opts.env, cacheDir);
  const sources: SourceOptions = {
    cacheDir,
    modelsDir: config.modelsDir,
    presetFile: config.modelsPreset ?? await remotePreset(config, hub, log),
  };
  const catalog = await loadCatalog(sources);
  catalog.warnings.forEach((w) => log(`warning: ${w}`));

  const orphans = await killOrphanEngines();
  if (orphans.length) {
    log(`stopped ${orphans.length} engines left by an earlier gateway: pids ${orphans.join(", ")}`);
  }
  const events = new EventBus();
  const pool = new RunnerPool({ spares: config.spareRunners, log, env: engineEnvironment(opts.env) });
  const scheduler = new Scheduler({
    engineBin,
    starter: pool,
    admission: new CountAdmission(config.modelsMax),
    events,
    passthrough: config.passthrough,
    // marks engines as ours, so a later gateway can find those an earlier one left behind
    engineEnv: { [GATEWAY_PID_ENV]: String(Deno.pid) },
    loadDelayMs: config.fakeTiming ? FAKE_TIMING_DELAY_MS : 0,
    queueMax: config.queueMax,
    loadSilenceTimeoutMs: config.loadSilenceTimeoutS * 1000,
    maxCrashes: config.maxCrashes,
    log,
  }, catalog.models);
  log(
    `engine: ${engineBin} (${buildInfo}); ${catalog.models.length} models; ${config.modelsMax || "no"} limit`,
  );

  let reloading: Promise<void> | undefined;
  const reload = (): Promise<void> => {
    reloading ??= (async () => {
      try {
        const fresh = await loadCatalog(sources, { onReload: true });
        fresh.warnings.forEach((w) => log(`warning: ${w}`));
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

  const puller = new ModelPuller({
    hub,
    scheduler,
    reload,
    offline: config.offline,
    log,
  });
  const upstream = new UpstreamPool();
  const app = createApp({ config, scheduler, puller, upstream, events, buildInfo, reload, log });
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname: config.host,
    port: config.port,
    onListen: (addr) => listening.resolve(addr as Deno.NetAddr),
  }, app.fetch);
  const addr = await listening.promise;
  const url = `http://${addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname}:${addr.port}`;
  log(`listening on ${url}`);
  await scheduler.loadOnStartup();

  let closing: Promise<void> | undefined;
  return {
    url,
    scheduler,
    events,
    reload,
    close: () =>
      closing ??= (async () => {
        const drained = server.shutdown();
        await scheduler.shutdown();
        await pool.shutdown();
        upstream.close();
        await Promise.race([drained, new Promise((r) => setTimeout(r, 5000))]);
      })(),
  };
}

/** `-hf owner/repo`: the repo's preset.ini, fetched into the cache (or found there when offline). */
async function remotePreset(
  config: GatewayConfig,
  hub: HubOptions,
  log: (line: string) => void,
): Promise<string | undefined> {
  if (!config.remotePreset) return undefined;
  const path = await fetchRemotePreset(config.remotePreset, { ...hub, offline: config.offline });
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
    out[name] = value;
  }
  return out;
}

const GATEWAY_ONLY_ENV = new Set([
  "LLAMA_API_KEY",
  "LLAMA_ARG_API_KEY_FILE",
  "SWITCHYARD_ADMIN_API_KEY",
  "LLAMA_ARG_SSL_KEY_FILE",
  "LLAMA_ARG_SSL_CERT_FILE",
  "LLAMA_ARG_HOST",
  "LLAMA_ARG_PORT",
  "HF_TOKEN",
]);
