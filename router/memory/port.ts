/**
 * The gateway's memory knowledge behind the scheduler's `MemoryPort`: the devices, found once at
 * start-up; their budgets under `--models-memory`; each launch's projection (the engine's fitter
 * first, the GGUF estimate where it is missing or fails), cached by file identity, memory arguments,
 * engine build and visible GPUs; and, after a load, the engine's own figures from its log, which then
 * stand for that key (on hosts without GPUs, only where the fitter did not project it: engines are
 * asked to log them, at -lv 4, only then). Figures handed to the scheduler are claims: a projection's
 * totals plus what a process costs beyond its buffers (`claimBytes`).
 */
import { isExecutable } from "../engine/binary.ts";
import { type OptionMap, renderArgs } from "../flags/flags.ts";
import type { MemoryPort, ProjectionView } from "../scheduler/memory_port.ts";
import type { ModelSpec } from "../sources/types.ts";
import type { EngineLaunch } from "../../runners/protocol.ts";
import { type Env, type MemoryArgs, memoryArgs, optionsFromArgv } from "./args.ts";
import { type Budget, budgetBytes, budgets, parseMemorySpec } from "./budget.ts";
import { detectDevices, detectHost, type Device, listGpus } from "./devices.ts";
import { GATEWAY_PID_ENV } from "../orphans.ts";
import { fitParamsBin } from "./fit_params.ts";
import { gatewayLaunchOptions, type GpuReserve, gpuReserves, raisedVerbosity } from "./launch_options.ts";
import { launchKey, modelPath, projectedFiles } from "./model_files.ts";
import { parseObserved } from "./observed.ts";
import { projectModel } from "./project.ts";
import {
  claimBytes,
  defaultOverheads,
  deviceBytes,
  HOST,
  type MemoryProjection,
  ProjectionCache,
} from "./projection.ts";
import { formatBytes, MiB } from "./size.ts";

/** Devices whose engine fits itself against live free memory: two loads there must not overlap. */
const SERIALISED_RE = /^(CUDA|ROCm|MUSA|Vulkan)\d/;
/** How stale the GPUs' free memory in `/props` may be: listing them initialises every backend. */
const GPU_REFRESH_MS = 10_000;

export interface MemoryPortOptions {
  /** the llama-server models run on; its fitter is looked for next to it */
  engineBin: string;
  /** the engine's `build_info`, part of every cache key */
  buildInfo: string;
  /** `--models-memory` (`auto`, `20G`, `host=12G,CUDA0=22G`) */
  spec: string;
  /** the environment engines get (the runner adds it to each launch's own) */
  env: Record<string, string>;
  /** the HF cache, where `-hf` models' files are */
  cacheDir: string;
  log: (line: string) => void;
  /** the devices, instead of asking the engine and /proc (tests) */
  devices?: readonly Device[];
  /** another fitter, or `false` for the GGUF estimate alone (tests); default: next to `engineBin` */
  fitParams?: string | false;
}

/** One device in `/props`. */
export interface DeviceReport {
  total: number;
  /** live for the host; for GPUs as last listed (at most `GPU_REFRESH_MS` old) */
  free: number;
  budget: number;
  reserve: number;
}

/** The port, plus what the gateway's own surfaces need. */
export interface GatewayMemory extends MemoryPort {
  launchOptions(options: OptionMap): OptionMap;
  /** per device: total, free, budget and reserve */
  report(): Promise<Record<string, DeviceReport>>;
}

/** One model's projection to work out: the file it loads, its arguments and the engine's environment. */
interface Job {
  spec: ModelSpec;
  key: string;
  path: string;
  args: MemoryArgs;
  env: Env;
}

/** What is known of one launch once it has been projected: `observe` is synchronous and needs it. */
interface Projected {
  key: string;
  args: MemoryArgs;
}

/**
 * Detects the devices, computes the budgets and logs both in one line. A `--models-memory` naming a
 * device the engine does not list is an error (`MemorySpecError`).
 */
export async function createMemoryPort(opts: MemoryPortOptions): Promise<GatewayMemory> {
  const found = opts.devices
    ? { devices: [...opts.devices], warnings: [] }
    : await detectDevices(opts.engineBin, { env: opts.env });
  found.warnings.forEach((w) => opts.log(`warning: memory: ${w}`));
  const spec = parseMemorySpec(opts.spec);
  const computed = budgets(spec, found.devices);
  computed.warnings.forEach((w) => opts.log(`warning: ${w}`));
  const fitter = opts.fitParams ?? await fitterOf(opts.engineBin);
  const port = new Port(opts, found.devices, computed.budgets, fitter);
  opts.log(`memory: ${describe(found.devices, computed.budgets)}; projections by ${describeFitter(fitter)}`);
  return port;
}

/** The fitter next to the engine, or `false` (with the GGUF estimate used instead) when there is none. */
async function fitterOf(engineBin: string): Promise<string | false> {
  const bin = fitParamsBin(engineBin);
  return await isExecutable(bin) ? bin : false;
}

function describeFitter(fitter: string | false): string {
  return fitter
    ? `${fitter.slice(fitter.lastIndexOf("/") + 1)}, else the GGUF estimate`
    : "the GGUF estimate (no llama-fit-params next to the engine)";
}

function describe(devices: readonly Device[], b: Readonly<Record<string, Budget>>): string {
  if (devices.length === 0) return "no device found: budgets are empty, only --models-max counts";
  return devices.map((d) => {
    const x = b[d.name];
    return `${d.name} ${formatBytes(d.total)} (${formatBytes(d.free)} free), budget ${
      formatBytes(x.budget)
    } ` +
      `(${x.source}, reserve ${formatBytes(x.reserve)})`;
  }).join("; ");
}

class Port implements GatewayMemory {
  readonly #cache = new ProjectionCache();
  readonly #pending = new Map<string, Promise<MemoryProjection>>();
  /** by launch (argv and environment), what its projection was keyed by */
  readonly #projected = new Map<string, Projected>();
  /** keys whose fitter failure has been logged */
  readonly #logged = new Set<string>();
  /**
   * On hosts without GPUs, launches (by their argv less the gateway's verbosity) whose figures no
   * engine needs to log: the engine's fitter projected them, or an engine of theirs logged them once.
   */
  readonly #settledLaunches = new Set<string>();
  readonly #budgets: Readonly<Record<string, number>>;
  readonly #gpus: readonly GpuReserve[];
  #devices: Device[];
  #gpusListedAt = 0;
  #listing?: Promise<unknown>;

  constructor(
    readonly opts: MemoryPortOptions,
    devices: readonly Device[],
    readonly budgetTable: Readonly<Record<string, Budget>>,
    readonly fitter: string | false,
  ) {
    this.#devices = [...devices];
    this.#budgets = budgetBytes(budgetTable);
    this.#gpus = gpuReserves(devices, budgetTable);
    this.#gpusListedAt = Date.now();
  }

  budgets(): Readonly<Record<string, number>> {
    return this.#budgets;
  }

  serialisedDevices(): readonly string[] {
    return this.#devices.filter((d) => d.kind === "gpu" && SERIALISED_RE.test(d.name)).map((d) => d.name);
  }

  launchOptions(options: OptionMap): OptionMap {
    const launched = gatewayLaunchOptions(options, this.opts.env, this.#gpus);
    // -lv 4 only where the figures it shows are wanted: its per-request trace logs the whole prompt
    // cache (1384 lines a request after heavy traffic on the tiny model, 9 at -lv 3), which costs the
    // engine and its runner for as long as it serves
    if (raisedVerbosity(options, launched) && this.#settledLaunches.has(settledKey(renderArgs(launched)))) {
      const quiet = new Map(launched);
      quiet.delete("--log-verbosity");
      return quiet;
    }
    return launched;
  }

  /**
   * Without GPUs a launch's figures cannot change once its context is pinned, so a fitter's projection
   * (claimed at the top of each MiB it prints, `fitCeiling`) or one engine's log of them is enough.
   */
  #settle(launch: EngineLaunch, source: MemoryProjection["source"]): void {
    if (this.#gpus.length > 0 || (source !== "fit-params" && source !== "observed")) return;
    this.#settledLaunches.add(settledKey(launch.args));
  }

  async project(spec: ModelSpec, launch: EngineLaunch): Promise<ProjectionView> {
    const env = this.#envOf(launch);
    const options = optionsFromArgv(launch.args);
    const args = memoryArgs(options, env);
    const path = await modelPath(options, args, this.opts.cacheDir);
    const key = await launchKey(path, args, this.opts.buildInfo, env).catch(() => undefined);
    if (key === undefined) return this.#view(await fileSizes(path, args), args);
    this.#projected.set(launchId(launch), { key, args });
    const best = this.#cache.best(key) ?? await this.#projectOnce({ spec, key, path, args, env });
    this.#settle(launch, best.source);
    return this.#view(best, args);
  }

  observe(spec: ModelSpec, launch: EngineLaunch, logLines: readonly string[]): ProjectionView | undefined {
    const seen = parseObserved(logLines.join("\n"));
    if (!seen) return undefined;
    this.#settle(launch, "observed");
    const known = this.#projected.get(launchId(launch));
    const args = known?.args ?? memoryArgs(optionsFromArgv(launch.args), this.#envOf(launch));
    if (known) {
      const before = this.#cache.get(known.key)?.projected;
      this.#cache.setObserved(known.key, seen);
      if (before) this.opts.log(`memory: ${spec.id}: ${comparison(seen, before)}`);
    }
    return this.#view({ ...seen, source: "observed" }, args);
  }

  async report(): Promise<Record<string, DeviceReport>> {
    this.#refreshGpus();
    const host = await detectHost();
    const out: Record<string, DeviceReport> = {};
    for (const d of this.#devices) {
      const b = this.budgetTable[d.name];
      const free = d.name === HOST && host ? host.free : d.free;
      out[d.name] = { total: d.total, free, budget: b.budget, reserve: b.reserve };
    }
    return out;
  }

  /**
   * The environment the engine would get, less the gateway's mark: a fitter run is not an engine, and
   * orphan clean-up and engine counts go by that mark.
   */
  #envOf(launch: EngineLaunch): Env {
    const { [GATEWAY_PID_ENV]: _mark, ...env } = { ...this.opts.env, ...launch.env };
    return env;
  }

  #view(p: MemoryProjection, args: MemoryArgs): ProjectionView {
    return { bytes: claimBytes(p, defaultOverheads(args)), source: p.source };
  }

  /** One projection per key at a time: concurrent requests for one model share it. */
  #projectOnce(job: Job): Promise<MemoryProjection> {
    let pending = this.#pending.get(job.key);
    if (!pending) {
      pending = this.#runProjection(job).finally(() => this.#pending.delete(job.key));
      this.#pending.set(job.key, pending);
    }
    return pending;
  }

  async #runProjection({ spec, key, path, args, env }: Job): Promise<MemoryProjection> {
    const onFailure = (reason: string) => {
      if (this.#logged.has(key)) return;
      this.#logged.add(key);
      this.opts.log(`memory: ${spec.id}: ${reason}; using the GGUF estimate`);
    };
    let p: MemoryProjection;
    try {
      p = await projectModel({
        engineBin: this.opts.engineBin,
        modelPath: path,
        args,
        gpus: this.#devices.filter((d) => d.kind === "gpu"),
        env: { ...env } as Record<string, string>,
        fitParams: this.fitter,
        onFailure,
      });
    } catch (e) {
      // the engine may still read what we cannot (a newer GGUF version): it is booked by its size
      this.opts.log(
        `memory: ${spec.id}: cannot project ${path} (${e instanceof Error ? e.message : e}); ` +
          "claiming its file size",
      );
      return await fileSizes(path, args);
    }
    const claimable = p.source === "fit-params" ? fitCeiling(p) : p;
    this.#cache.setProjected(key, claimable);
    return claimable;
  }

  /** The serialised GPUs' free memory, listed now (after an exit, the scheduler asks for a few seconds). */
  async liveFree(): Promise<Record<string, number> | undefined> {
    const serialised = this.serialisedDevices();
    if (serialised.length === 0) return undefined;
    const gpus = await this.#listGpus();
    if (!gpus) return undefined;
    return Object.fromEntries(gpus.filter((g) => serialised.includes(g.name)).map((g) => [g.name, g.free]));
  }

  /** The engine's GPUs as listed now, folded into the device table; undefined when the listing failed. */
  async #listGpus(): Promise<Device[] | undefined> {
    const gpus = await listGpus(this.opts.engineBin, { env: this.opts.env });
    if (typeof gpus === "string") return undefined;
    this.#devices = this.#devices.map((d) => gpus.find((g) => g.name === d.name) ?? d);
    this.#gpusListedAt = Date.now();
    return gpus;
  }

  /** Lists the GPUs again in the background when the last listing is stale; `/props` never waits. */
  #refreshGpus(): void {
    if (this.#gpus.length === 0 || this.#listing || Date.now() - this.#gpusListedAt < GPU_REFRESH_MS) return;
    this.#listing = this.#listGpus().finally(() => {
      this.#gpusListedAt = Date.now();
      this.#listing = undefined;
    });
  }
}

/**
 * The fitter prints whole MiB rounded down (a 0.7 MiB model reads 0): each figure it gave is taken at
 * the top of its MiB, so that a claim is never below what the engine will allocate. Rows of devices
 * the model does not use stay empty.
 */
function fitCeiling(p: MemoryProjection): MemoryProjection {
  const perDevice: MemoryProjection["perDevice"] = {};
  for (const [device, b] of Object.entries(p.perDevice)) {
    perDevice[device] = b.total > 0 || device === HOST
      ? deviceBytes(b.model + MiB, b.context + MiB, b.compute + MiB)
      : b;
  }
  return { ...p, perDevice };
}

/** The same launch projects alike: argv and the launch's own environment identify it. */
function launchId(launch: EngineLaunch): string {
  return JSON.stringify([launch.bin, launch.args, launch.env]);
}

/** What a model costs at worst when nothing can read its header: its files' bytes, on the host. */
async function fileSizes(path: string, args: MemoryArgs): Promise<MemoryProjection> {
  let bytes = 0;
  for (const file of projectedFiles(path, args)) {
    bytes += (await Deno.stat(file).catch(() => undefined))?.size ?? 0;
  }
  return { perDevice: { [HOST]: deviceBytes(bytes, 0, 0) }, source: "gguf" };
}

/** `the engine's buffers take 7.7 MiB on Host (fit-params projected 7 MiB)`, per device. */
function comparison(seen: MemoryProjection, before: MemoryProjection): string {
  const devices = [...new Set([...Object.keys(seen.perDevice), ...Object.keys(before.perDevice)])].sort();
  const parts = devices.map((d) => {
    const projected = formatBytes(before.perDevice[d]?.total ?? 0);
    return `${formatBytes(seen.perDevice[d]?.total ?? 0)} on ${d} (${before.source} projected ${projected})`;
  });
  return `the engine's buffers take ${parts.join(", ")}`;
}

/** A launch by its argv less `--log-verbosity` and its value: the same with the gateway's -lv 4 or without. */
function settledKey(args: readonly string[]): string {
  const at = args.indexOf("--log-verbosity");
  return (at < 0 ? args : [...args.slice(0, at), ...args.slice(at + 2)]).join("\0");
}
