/**
 * The engine's own projection: `llama-fit-params --fit-print on` loads a model's metadata with
 * `no_alloc` (no weights are read), builds the context and reserves its graph, and prints what each
 * device would hold (`common_fit_print` in common/fit.cpp). It is deterministic for a given file,
 * arguments and build, so its answer can be cached.
 *
 * stdout, verified on the pinned build (CPU-only: no GPU rows), one row per model device and a final
 * `Host` row, whole MiB rounded down, each with a trailing space; all logging goes to stderr:
 * ```
 * CUDA0 7401 814 517
 * Host 39 1 160
 * ```
 */
import { type MemoryArgs, type Placement } from "./args.ts";
import { deviceBytes, HOST, type MemoryProjection, sumProjections } from "./projection.ts";
import { MiB } from "./size.ts";
import { tiedToParent } from "../../runners/lifeline.ts";

/**
 * How the engine build gets the tool: tools/fit-params/CMakeLists.txt names the executable
 * `llama-fit-params` (on `llama-fit-params-impl`, which links llama-common and llama), so the
 * existing build tree builds it with one more `--target`; linking it into a finished llama-server
 * tree took 2 s on 2 cores. `router/engine/binary.ts` builds both in one run, and adds the fitter
 * alone to a tree built before it was part of the build.
 */
export const FIT_PARAMS_BUILD = {
  target: "llama-fit-params",
  /** what binary.ts runs for a fresh build (cmake >= 3.15 takes several targets) */
  cmakeBuildArgs: ["--build", "build", "--target", "llama-server", "llama-fit-params"],
} as const;

/** The fitter of an engine build: built next to llama-server, in the same `bin/`. */
export function fitParamsBin(engineBin: string): string {
  const slash = engineBin.lastIndexOf("/");
  return `${slash >= 0 ? engineBin.slice(0, slash + 1) : ""}${FIT_PARAMS_BUILD.target}`;
}

/** Options fit-params shares with the server (those outside its example list are refused with "invalid argument"). */
function placementArgs(p: Placement): string[] {
  const args = ["-ngl", String(p.gpuLayers), "-ctk", p.cacheTypeK, "-ctv", p.cacheTypeV];
  if (p.devices !== undefined) args.push("-dev", p.devices);
  if (p.overrideTensor !== undefined) args.push("-ot", p.overrideTensor);
  if (p.cpuMoe) args.push("-cmoe");
  if (p.nCpuMoe > 0) args.push("-ncmoe", String(p.nCpuMoe));
  return args;
}

/**
 * The fit-params arguments for a model (or, with `placement`, its draft, which shares the context
 * settings). fit-params refuses `--kv-unified` (server-only), so a unified cache is measured as the one
 * stream it is: `-np 1` with the whole `-c`, which also sizes the attention graph over the whole
 * cache as the server does (measured: 160 MiB compute both ways on the tiny model; `-np 4` gave 159).
 * `parallelStreams` measures the per-slot streams instead (see `fitRuns`).
 */
export function fitParamsArgs(
  modelPath: string,
  m: MemoryArgs,
  opts: { placement?: Placement; parallelStreams?: boolean } = {},
): string[] {
  const np = m.kvUnified && !opts.parallelStreams ? 1 : m.parallel;
  const args = [
    "-m",
    modelPath,
    "-c",
    String(m.ctx),
    "-np",
    String(np),
    "-b",
    String(m.batch),
    "-ub",
    String(m.ubatch),
    "-fa",
    m.flashAttn,
    ...placementArgs(opts.placement ?? m),
  ];
  // common_base_params_to_speculative copies the model's parameters into the draft's and replaces
  // only its devices, layers, KV types and tensor overrides (-ncffn is one of those overrides)
  if (m.tensorSplit !== undefined) args.push("-ts", m.tensorSplit);
  if (m.splitMode !== undefined) args.push("-sm", m.splitMode);
  if (m.mainGpu !== undefined) args.push("-mg", String(m.mainGpu));
  if (m.overrideKv !== undefined) args.push("--override-kv", m.overrideKv);
  if (!opts.placement && m.nCpuFfn > 0) args.push("-ncffn", String(m.nCpuFfn));
  if (m.swaFull) args.push("--swa-full");
  if (!m.kvOffload) args.push("-nkvo");
  return [...args, "--fit-print", "on"];
}

export interface FitRun {
  args: string[];
  /** `model`: the whole row counts; `context`: only the context column, as a lower bound for it */
  use: "model" | "context" | "draft";
}

/**
 * The runs that make one projection. With a unified cache and several slots, a model with SWA layers
 * keeps `n_swa × slots + ubatch` cells of SWA cache, which `-np 1` undercounts; a second run with
 * per-slot streams keeps at least that many, and its context column is used when larger. A draft
 * model is measured on its own and added.
 */
export function fitRuns(modelPath: string, m: MemoryArgs, opts: { hasSwa?: boolean } = {}): FitRun[] {
  const runs: FitRun[] = [{ args: fitParamsArgs(modelPath, m), use: "model" }];
  if (opts.hasSwa && m.kvUnified && m.parallel > 1 && !m.swaFull) {
    runs.push({ args: fitParamsArgs(modelPath, m, { parallelStreams: true }), use: "context" });
  }
  if (m.draft) runs.push({ args: fitParamsArgs(m.draft.model, m, { placement: m.draft }), use: "draft" });
  return runs;
}

const ROW_RE = /^(\S+) (\d+) (\d+) (\d+)\s*$/;

/**
 * Parses `--fit-print on` stdout into bytes per device (the host row under `HOST`). Undefined unless
 * a host row is there: without it the run did not finish. Older builds wrote `host` in lower case.
 */
export function parseFitPrint(stdout: string): MemoryProjection | undefined {
  const perDevice: MemoryProjection["perDevice"] = {};
  let host = false;
  for (const line of stdout.split("\n")) {
    const m = ROW_RE.exec(line);
    if (!m) continue;
    const isHost = m[1].toLowerCase() === "host";
    host ||= isHost;
    perDevice[isHost ? HOST : m[1]] = deviceBytes(Number(m[2]) * MiB, Number(m[3]) * MiB, Number(m[4]) * MiB);
  }
  return host ? { perDevice, source: "fit-params" } : undefined;
}

/** Combines the parsed runs of `fitRuns`, in the same order. */
export function combineFitRuns(
  runs: readonly FitRun[],
  results: readonly MemoryProjection[],
): MemoryProjection {
  let model = results[0];
  const extra: MemoryProjection[] = [];
  runs.forEach((run, i) => {
    if (run.use === "draft") extra.push(results[i]);
    if (run.use !== "context") return;
    const perDevice = { ...model.perDevice };
    for (const [device, b] of Object.entries(results[i].perDevice)) {
      const was = perDevice[device] ?? deviceBytes(0, 0, 0);
      perDevice[device] = deviceBytes(was.model, Math.max(was.context, b.context), was.compute);
    }
    model = { perDevice, source: "fit-params" };
  });
  return sumProjections("fit-params", model, ...extra);
}

export interface RunFitOptions {
  /** the engine child's environment (`CUDA_VISIBLE_DEVICES` and the like must match) */
  env?: Record<string, string>;
  /** default 30 s: a CUDA init is 0.5-2 s; anything near this is a wedged driver */
  timeoutMs?: number;
  hasSwa?: boolean;
  /** why a run gave nothing, for the log */
  onFailure?: (reason: string) => void;
}

export const FIT_TIMEOUT_MS = 30_000;

/**
 * Runs the fitter for a model and returns its projection, or undefined when the binary is missing,
 * a run fails, times out or prints no host row (the caller then falls back to the GGUF estimate).
 */
export async function runFitParams(
  bin: string,
  modelPath: string,
  m: MemoryArgs,
  opts: RunFitOptions = {},
): Promise<MemoryProjection | undefined> {
  const runs = fitRuns(modelPath, m, { hasSwa: opts.hasSwa });
  const results: MemoryProjection[] = [];
  for (const run of runs) {
    const result = await runOnce(bin, run.args, opts);
    if (!result) return undefined;
    results.push(result);
  }
  return combineFitRuns(runs, results);
}

async function runOnce(
  bin: string,
  args: string[],
  opts: RunFitOptions,
): Promise<MemoryProjection | undefined> {
  const fail = (reason: string): undefined => void opts.onFailure?.(`${bin} ${args.join(" ")}: ${reason}`);
  const timeoutMs = opts.timeoutMs ?? FIT_TIMEOUT_MS;
  const signal = AbortSignal.timeout(timeoutMs);
  let out: Deno.CommandOutput;
  try {
    // tied to the gateway as engines are: a fitter run never outlives it
    const { cmd, args: argv } = tiedToParent(bin, args);
    out = await new Deno.Command(cmd, {
      args: argv,
      env: opts.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal,
    }).output();
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  }
  const stderrTail = (): string =>
    new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
  if (signal.aborted) return fail(`no answer within ${timeoutMs} ms (stopped with ${out.signal})`);
  if (out.signal) return fail(`killed by ${out.signal}: ${stderrTail()}`);
  if (!out.success) return fail(`exit ${out.code}: ${stderrTail()}`);
  return parseFitPrint(new TextDecoder().decode(out.stdout)) ?? fail(`no Host row: ${stderrTail()}`);
}
