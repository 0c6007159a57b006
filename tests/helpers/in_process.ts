/**
 * The real gateway in the test's own process, minus its processes and sockets: the configuration
 * comes from `parseCli` (the flags users type), the model table from the real sources, and the app,
 * scheduler, puller and upstream pool from the same wiring `startGateway` uses (router/core.ts).
 * Only the engines are stubs: in-process HTTP servers on 127.0.0.1 (stub_http_engine.ts) that the
 * test controls. Requests go through `app.request`, so a test takes milliseconds and needs no
 * llama-server.
 */
import { join } from "node:path";
import type { Hono } from "hono";
import { parseCli } from "../../router/cli.ts";
import type { GatewayConfig } from "../../router/config.ts";
import { createGatewayCore } from "../../router/core.ts";
import { loadDefaultModel, resolveSingleModel } from "../../router/gateway.ts";
import { hubOptionsFromEnv } from "../../router/hub/options.ts";
import type { GatewayMemory } from "../../router/memory/port.ts";
import type { EventBus, ModelEvent } from "../../router/scheduler/events.ts";
import type { Scheduler } from "../../router/scheduler/scheduler.ts";
import { resolveCacheDir } from "../../router/sources/cache_dir.ts";
import { loadCatalog } from "../../router/sources/catalog.ts";
import type { SourceOptions } from "../../router/sources/types.ts";
import { StubHttpEngine } from "../fixtures/stub_http_engine.ts";
import { StubStarter } from "../fixtures/stub_starter.ts";
import { isolatedEnv } from "./gateway.ts";
import type { Send } from "./requests.ts";

/** The `engineBin` stub engines are "started" from: it appears in `status.args`. */
export const STUB_ENGINE_BIN = "/stub/bin/llama-server";

export interface InProcessSetup {
  /** the flags after `--models-dir <dir>` */
  args?: string[];
  /** on top of an isolated environment: an empty HF cache, and a hub on a closed loopback port */
  env?: Record<string, string>;
  /** budgets and projections; without it only `--models-max` counts */
  memory?: GatewayMemory;
}

export interface InProcessGateway {
  readonly app: Hono;
  /** a request through the whole app (`app.request`): middleware, routes, proxy, stub engine */
  readonly send: Send;
  readonly config: GatewayConfig;
  readonly scheduler: Scheduler;
  readonly events: EventBus;
  readonly starter: StubStarter<StubHttpEngine>;
  /** everything the gateway logged */
  readonly logs: string[];
  /** the next event (of `/models/sse`) that `match` accepts; call it before what causes the event */
  nextEvent(match: (event: ModelEvent) => boolean): Promise<ModelEvent>;
  /** the engine `model` runs on now; throws when it runs none */
  engine(model: string): StubHttpEngine;
  /** stops every engine and closes every connection */
  close(): Promise<void>;
}

/** Builds the gateway on `modelsDir` with `args`, as `main.ts` would from this command line. */
export async function startInProcess(
  modelsDir: string,
  setup: InProcessSetup = {},
): Promise<InProcessGateway> {
  const env = await isolatedEnv(setup.env);
  const logs: string[] = [];
  const log = (line: string) => {
    logs.push(...line.split("\n"));
    if (Deno.env.get("SWITCHYARD_TEST_ECHO")) console.error(`  gw| ${line}`);
  };
  try {
    const { config, warnings } = parseCli(["--models-dir", modelsDir, ...setup.args ?? []], env);
    warnings.forEach((w) => log(`warning: ${w}`));
    const cacheDir = resolveCacheDir(env);
    const hub = hubOptionsFromEnv(env, cacheDir);
    const defaultModel = await resolveSingleModel(config, false, hub, log);
    const sources: SourceOptions = {
      cacheDir,
      modelsDir: config.modelsDir,
      presetFile: config.modelsPreset,
      defaultModel,
    };
    const catalog = await loadCatalog(sources);
    catalog.warnings.forEach((w) => log(`warning: ${w}`));
    const starter = new StubStarter({ serve: (id) => new StubHttpEngine(id) });
    const core = createGatewayCore(config, {
      engineBin: STUB_ENGINE_BIN,
      buildInfo: "b1-stub",
      starter,
      sources,
      hub,
      models: catalog.models,
      defaultModel: defaultModel?.id,
      memory: setup.memory,
      log,
    });
    await core.checkPins(catalog.models);
    // a single-model command line's model starts loading, as in startGateway (which also waits for it)
    if (defaultModel) loadDefaultModel(core.scheduler, defaultModel.id).catch((err) => log(err.message));
    await core.scheduler.loadOnStartup();
    let closing: Promise<void> | undefined;
    return {
      app: core.app,
      send: (path, init) => Promise.resolve(core.app.request(path, init)),
      config,
      scheduler: core.scheduler,
      events: core.events,
      starter,
      logs,
      nextEvent: (match) =>
        new Promise((resolve) => {
          const unsubscribe = core.events.subscribe((event) => {
            if (!match(event)) return;
            unsubscribe();
            resolve(event);
          });
        }),
      engine(model) {
        const id = core.scheduler.find(model)?.id ?? model;
        const engine = starter.server(id);
        if (!engine) throw new Error(`model ${model} runs no engine`);
        return engine;
      },
      close: () =>
        closing ??= (async () => {
          // idle keep-alive sockets first, so that each stub server's shutdown has nothing to wait for
          core.upstream.close();
          await core.scheduler.shutdown();
          await Deno.remove(env.LLAMA_CACHE, { recursive: true });
        })(),
    };
  } catch (err) {
    await Deno.remove(env.LLAMA_CACHE, { recursive: true });
    throw err;
  }
}

/**
 * Runs `fn` against an in-process gateway on a fresh `--models-dir` holding `models` (empty files:
 * stub engines never read them), then closes it and removes the dir. `setup` may be a function of
 * the dir, to write a key file or a preset there first.
 */
export async function withInProcess(
  models: string[],
  setup: InProcessSetup | ((dir: string) => InProcessSetup | Promise<InProcessSetup>),
  fn: (gw: InProcessGateway, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "switchyard-inproc-models-" });
  try {
    for (const name of models) await Deno.writeFile(join(dir, `${name}.gguf`), new Uint8Array());
    const gw = await startInProcess(dir, typeof setup === "function" ? await setup(dir) : setup);
    try {
      await fn(gw, dir);
    } finally {
      await gw.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
