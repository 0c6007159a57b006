/**
 * The part of a model's llama-server options that decides its memory, with the server's own defaults
 * written out, so two spellings of one configuration project (and cache) alike and a projection
 * never silently assumes a default that the server does not use.
 *
 * Defaults are the pinned llama.cpp's: `common/common.h` (`n_ctx = 0` meaning the training context,
 * `n_batch = 2048`, `n_ubatch = 512`, f16 KV, flash attention `auto`, `n_gpu_layers = -1`,
 * `cache_ram_mib = 8192`) and `tools/server/server.cpp:152-156`, where a server started without `-np`
 * runs 4 slots on one unified KV cache.
 */
import {
  isFalsey,
  isTruthy,
  lookupFlag,
  type OptionMap,
  type OptionValue,
  switchValue,
} from "../flags/flags.ts";
import { canonicalFlag } from "../sources/spec.ts";

/** `n_gpu_layers`: a count, or `-1` (`auto`: every layer and the output unless --fit lowers it), `-2` (`all`). */
export type GpuLayers = number;

export type FlashAttn = "on" | "off" | "auto";

/** How many layers' weights and where they go; the same shape for the model and its draft. */
export interface Placement {
  gpuLayers: GpuLayers;
  /** `-dev` as given (`CUDA0,CUDA1`, `none`); absent: every GPU */
  devices?: string;
  /** `-ot` patterns as given (`regex=BUFT,...`) */
  overrideTensor?: string;
  cpuMoe: boolean;
  nCpuMoe: number;
  cacheTypeK: string;
  cacheTypeV: string;
}

export interface MemoryArgs extends Placement {
  /** the GGUF to load: `--model`, when the options name it */
  model?: string;
  /** `-c`; 0 means the model's training context (`llama.context_length`) */
  ctx: number;
  /** slots (`-np`) */
  parallel: number;
  kvUnified: boolean;
  batch: number;
  ubatch: number;
  flashAttn: FlashAttn;
  tensorSplit?: string;
  splitMode?: string;
  mainGpu?: number;
  nCpuFfn: number;
  swaFull: boolean;
  kvOffload: boolean;
  overrideKv?: string;
  /** the projector; its memory is not part of the engine's fit (fit-params has no `--mmproj`) */
  mmproj?: { path: string; offload: boolean };
  /** the speculative draft model, placed by its own `-ngld`/`-devd`/`-otd`/`-ctkd`/`-ctvd` */
  draft?: Placement & { model: string };
  /** `--cache-ram` in MiB: host RAM the prompt cache may grow to (-1 unlimited, 0 off) */
  cacheRamMib: number;
}

/** llama.cpp's defaults, named once; see the module comment for where each comes from. */
export const SERVER_DEFAULTS = {
  ctx: 0,
  autoParallel: 4,
  batch: 2048,
  ubatch: 512,
  cacheType: "f16",
  flashAttn: "auto",
  gpuLayers: -1,
  cacheRamMib: 8192,
} as const;

/** Environment as the engine child gets it: `LLAMA_ARG_*` stand in for absent options, as in llama.cpp. */
export type Env = Readonly<Record<string, string | undefined>>;

/** A memory-relevant option that cannot be understood; the message names it. */
export class MemoryArgsError extends Error {
  override name = "MemoryArgsError";
}

// any spelling here; canonicalFlag throws at import if the pinned option table lacks one
const F = canonicalFlag;

const FLAGS = {
  model: F("--model"),
  ctx: F("--ctx-size"),
  parallel: F("--parallel"),
  kvUnified: F("--kv-unified"),
  perSlot: F("--kv-unified-per-slot"),
  batch: F("--batch-size"),
  ubatch: F("--ubatch-size"),
  ctk: F("--cache-type-k"),
  ctv: F("--cache-type-v"),
  flashAttn: F("--flash-attn"),
  gpuLayers: F("--gpu-layers"),
  devices: F("--device"),
  tensorSplit: F("--tensor-split"),
  splitMode: F("--split-mode"),
  mainGpu: F("--main-gpu"),
  overrideTensor: F("--override-tensor"),
  cpuMoe: F("--cpu-moe"),
  nCpuMoe: F("--n-cpu-moe"),
  nCpuFfn: F("--n-cpu-ffn"),
  swaFull: F("--swa-full"),
  kvOffload: F("--kv-offload"),
  overrideKv: F("--override-kv"),
  mmproj: F("--mmproj"),
  mmprojOffload: F("--mmproj-offload"),
  draft: F("--spec-draft-model"),
  draftGpuLayers: F("--spec-draft-ngl"),
  draftDevices: F("--spec-draft-device"),
  draftOverrideTensor: F("--spec-draft-override-tensor"),
  draftCpuMoe: F("--spec-draft-cpu-moe"),
  draftNCpuMoe: F("--spec-draft-n-cpu-moe"),
  draftCtk: F("--spec-draft-type-k"),
  draftCtv: F("--spec-draft-type-v"),
  cacheRam: F("--cache-ram"),
} as const;

/** Every option this module reads, by canonical flag: what a cache key must cover. */
export const MEMORY_FLAGS: ReadonlySet<string> = new Set(Object.values(FLAGS));

class Lookup {
  constructor(readonly options: OptionMap, readonly env: Env) {}

  raw(flag: string): OptionValue | undefined {
    if (this.options.has(flag)) return this.options.get(flag);
    const def = lookupFlag(flag)?.option.def;
    const fromEnv = def?.env ? this.env[def.env] : undefined;
    if (fromEnv === undefined || fromEnv === "") return undefined;
    if (def?.kind === "bool" || def?.kind === "none") return !isFalsey(fromEnv);
    return fromEnv;
  }
  str(flag: string): string | undefined {
    const v = this.raw(flag);
    return typeof v === "string" ? v : undefined;
  }
  bool(flag: string, fallback: boolean): boolean {
    const v = this.raw(flag);
    return typeof v === "boolean" ? v : fallback;
  }
  int(flag: string, fallback: number): number {
    const v = this.str(flag);
    if (v === undefined) return fallback;
    if (!/^-?\d+$/.test(v.trim())) throw new MemoryArgsError(`${flag} expects an integer, got '${v}'`);
    return Number(v);
  }
}

function gpuLayers(v: string | undefined, flag: string): GpuLayers {
  if (v === undefined || v === "auto") return -1;
  if (v === "all") return -2;
  if (!/^-?\d+$/.test(v.trim())) {
    throw new MemoryArgsError(`${flag} expects a number, 'auto' or 'all', got '${v}'`);
  }
  return Number(v);
}

function flashAttn(v: string | undefined): FlashAttn {
  if (v === undefined) return SERVER_DEFAULTS.flashAttn;
  if (isTruthy(v)) return "on";
  if (isFalsey(v)) return "off";
  if (v === "auto") return "auto";
  throw new MemoryArgsError(`--flash-attn expects on, off or auto, got '${v}'`);
}

/**
 * The memory-relevant arguments of a model, from its options (keyed by canonical flag, as
 * `ModelSpec.options` and the scheduler's launch options are) and the engine's environment.
 *
 * @example
 * ```ts
 * const m = memoryArgs(new Map([["--model", "/m/a.gguf"], ["--ctx-size", "8192"]]));
 * // m.parallel === 4 and m.kvUnified === true: the server's auto slots
 * ```
 */
export function memoryArgs(options: OptionMap, env: Env = {}): MemoryArgs {
  const o = new Lookup(options, env);
  // -np -1 is the server's own "auto", the same as leaving it out
  const given = o.int(FLAGS.parallel, -1);
  const parallelGiven = given >= 0;
  const parallel = parallelGiven ? given : SERVER_DEFAULTS.autoParallel;
  if (parallel < 1) throw new MemoryArgsError(`--parallel must be at least 1, got ${parallel}`);
  // server.cpp turns a unified cache on whenever it picks the slot count itself, whatever -kvu says
  const kvUnified = parallelGiven ? o.bool(FLAGS.kvUnified, false) : true;
  const perSlot = o.int(FLAGS.perSlot, 0);
  const ctxGiven = o.str(FLAGS.ctx) !== undefined;
  const ctx = ctxGiven ? o.int(FLAGS.ctx, 0) : perSlot > 0 ? parallel * perSlot : SERVER_DEFAULTS.ctx;
  const mmproj = o.str(FLAGS.mmproj);
  const draft = o.str(FLAGS.draft);
  const args: MemoryArgs = {
    model: o.str(FLAGS.model),
    ctx,
    parallel,
    kvUnified,
    batch: o.int(FLAGS.batch, SERVER_DEFAULTS.batch),
    ubatch: o.int(FLAGS.ubatch, SERVER_DEFAULTS.ubatch),
    cacheTypeK: o.str(FLAGS.ctk) ?? SERVER_DEFAULTS.cacheType,
    cacheTypeV: o.str(FLAGS.ctv) ?? SERVER_DEFAULTS.cacheType,
    flashAttn: flashAttn(o.str(FLAGS.flashAttn)),
    gpuLayers: gpuLayers(o.str(FLAGS.gpuLayers), FLAGS.gpuLayers),
    devices: o.str(FLAGS.devices),
    tensorSplit: o.str(FLAGS.tensorSplit),
    splitMode: o.str(FLAGS.splitMode),
    mainGpu: o.str(FLAGS.mainGpu) === undefined ? undefined : o.int(FLAGS.mainGpu, 0),
    overrideTensor: o.str(FLAGS.overrideTensor),
    cpuMoe: o.bool(FLAGS.cpuMoe, false),
    nCpuMoe: o.int(FLAGS.nCpuMoe, 0),
    nCpuFfn: o.int(FLAGS.nCpuFfn, 0),
    swaFull: o.bool(FLAGS.swaFull, false),
    kvOffload: o.bool(FLAGS.kvOffload, true),
    overrideKv: o.str(FLAGS.overrideKv),
    mmproj: mmproj ? { path: mmproj, offload: o.bool(FLAGS.mmprojOffload, true) } : undefined,
    draft: draft
      ? dropUndefined({
        model: draft,
        gpuLayers: gpuLayers(o.str(FLAGS.draftGpuLayers), FLAGS.draftGpuLayers),
        devices: o.str(FLAGS.draftDevices),
        overrideTensor: o.str(FLAGS.draftOverrideTensor),
        cpuMoe: o.bool(FLAGS.draftCpuMoe, false),
        nCpuMoe: o.int(FLAGS.draftNCpuMoe, 0),
        // common_base_params_to_speculative: the draft's KV types are its own, f16 by default
        cacheTypeK: o.str(FLAGS.draftCtk) ?? SERVER_DEFAULTS.cacheType,
        cacheTypeV: o.str(FLAGS.draftCtv) ?? SERVER_DEFAULTS.cacheType,
      })
      : undefined,
    cacheRamMib: o.int(FLAGS.cacheRam, SERVER_DEFAULTS.cacheRamMib),
  };
  return dropUndefined(args);
}

function dropUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

/**
 * The arguments as one canonical text (sorted keys, defaults written out), for cache keys: two
 * spellings of one configuration give the same text.
 */
export function memoryArgsText(args: MemoryArgs): string {
  return stableJson(args);
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(",")}]`;
  if (v && typeof v === "object") {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableJson(x)}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

/**
 * The options of a rendered llama-server argv (an `EngineLaunch`'s `args`), keyed by canonical flag:
 * the inverse of `renderArgs`, so a launch can be projected as it will run. Unknown arguments are
 * skipped: the engine itself refuses them.
 */
export function optionsFromArgv(argv: readonly string[]): OptionMap {
  const options: OptionMap = new Map();
  for (let i = 0; i < argv.length; i++) {
    const eq = argv[i].startsWith("--") ? argv[i].indexOf("=") : -1;
    const spelling = eq > 0 ? argv[i].slice(0, eq) : argv[i];
    const inline = eq > 0 ? argv[i].slice(eq + 1) : undefined;
    const resolved = lookupFlag(spelling);
    if (!resolved) continue;
    const { kind } = resolved.option.def;
    if (kind === "bool" || kind === "none") {
      options.set(resolved.option.flag, switchValue(resolved, inline));
    } else if (kind === "pair") {
      options.set(resolved.option.flag, inline ?? `${argv[++i]} ${argv[++i]}`);
    } else {
      options.set(resolved.option.flag, inline ?? argv[++i]);
    }
  }
  return options;
}
