/**
 * What a model needs on each device, whoever worked it out: the engine's fitter (`fit-params`), our
 * GGUF estimate (`gguf`) or the engine's own log after a load (`observed`); and the key under which a
 * projection is cached: the files, the memory-relevant arguments and the engine build.
 */
import { type MemoryArgs, memoryArgsText } from "./args.ts";
import { MiB } from "./size.ts";

/**
 * The device key for host RAM, as the engine's fitter and memory breakdown name it (and as the
 * scheduler's policies key it). GPUs are keyed by the engine's device names (`CUDA0`, `Vulkan1`,
 * `MTL0`), as `--list-devices`, `-dev` and the fitter name them.
 */
export const HOST = "Host";

export interface DeviceBytes {
  /** weights */
  model: number;
  /** KV cache and recurrent state */
  context: number;
  /** compute (scratch) buffers */
  compute: number;
  total: number;
}

export type ProjectionSource = "fit-params" | "gguf" | "observed";

export interface MemoryProjection {
  perDevice: Record<string, DeviceBytes>;
  source: ProjectionSource;
}

export function deviceBytes(model: number, context: number, compute: number): DeviceBytes {
  return { model, context, compute, total: model + context + compute };
}

/** Per-device sums, under `source` (a draft or projector adds to a model's own projection). */
export function sumProjections(source: ProjectionSource, ...parts: MemoryProjection[]): MemoryProjection {
  const perDevice: Record<string, DeviceBytes> = {};
  for (const part of parts) {
    for (const [device, b] of Object.entries(part.perDevice)) {
      const was = perDevice[device] ?? deviceBytes(0, 0, 0);
      perDevice[device] = deviceBytes(was.model + b.model, was.context + b.context, was.compute + b.compute);
    }
  }
  return { perDevice, source };
}

/** Total bytes per device, as `/models` shows them in `status.memory`. */
export function totalsByDevice(p: MemoryProjection): Record<string, number> {
  return Object.fromEntries(Object.entries(p.perDevice).map(([d, b]) => [d, b.total]));
}

/** `status.memory` of a model in `/models`. */
export interface MemoryStatus {
  projected: Record<string, number>;
  actual: Record<string, number> | null;
  source: ProjectionSource;
}

export function memoryStatus(projected: MemoryProjection, actual?: MemoryProjection): MemoryStatus {
  return {
    projected: totalsByDevice(projected),
    actual: actual ? totalsByDevice(actual) : null,
    source: actual ? "observed" : projected.source,
  };
}

/**
 * What a process costs beyond its buffers, which neither the fitter nor the log counts: the GPU
 * runtime's own context and workspaces (roughly 0.3-0.7 GiB per CUDA/ROCm process per device,
 * `unaccounted` in the engine's memory breakdown) and the host-side prompt cache (`--cache-ram`).
 */
export interface Overheads {
  /** per GPU device the model uses */
  gpu(device: string): number;
  /** on the host */
  host: number;
}

/** The overheads for a model's arguments: 512 MiB per CUDA/ROCm/MUSA device, 256 MiB per other GPU. */
export function defaultOverheads(args: Pick<MemoryArgs, "cacheRamMib">): Overheads {
  // an unlimited prompt cache (-1) cannot be bounded; count the default limit rather than nothing
  const cacheRam = args.cacheRamMib < 0 ? 8192 : args.cacheRamMib;
  return {
    gpu: (device) => /^(CUDA|ROCm|MUSA)\d/.test(device) ? 512 * MiB : 256 * MiB,
    host: cacheRam * MiB,
  };
}

/** The bytes to claim per device: the projection's totals plus the overheads of each device it uses. */
export function claimBytes(p: MemoryProjection, overheads: Overheads): Record<string, number> {
  const claim: Record<string, number> = {};
  for (const [device, b] of Object.entries(p.perDevice)) {
    if (b.total <= 0 && device !== HOST) continue;
    claim[device] = b.total + (device === HOST ? overheads.host : overheads.gpu(device));
  }
  if (!(HOST in claim)) claim[HOST] = overheads.host;
  return claim;
}

// ---- cache key -----------------------------------------------------------------------------------

/** Which file this is, cheaply: a changed file changes size or mtime. */
export interface FileIdentity {
  path: string;
  size: number;
  mtimeMs: number;
}

/** The identity of the file at `path`, under its real path so that two spellings of one file agree. */
export async function fileIdentity(path: string): Promise<FileIdentity> {
  const real = await Deno.realPath(path);
  const info = await Deno.stat(real);
  return { path: real, size: info.size, mtimeMs: info.mtime?.getTime() ?? 0 };
}

export interface ProjectionKeyParts {
  /** every file the projection read: each shard, the projector, the draft */
  files: readonly FileIdentity[];
  args: MemoryArgs;
  /** the engine's `build_info` (`engineVersion`, e.g. `b1-80fb11a`) */
  engineBuild: string;
  /** the devices the child sees (`CUDA_VISIBLE_DEVICES` and the like), when they decide placement */
  visibleDevices?: string;
}

/** The cache key of a projection: equal keys mean the engine would allocate the same buffers. */
export function projectionKey(parts: ProjectionKeyParts): string {
  const files = parts.files.map((f) => `${f.path}\u0000${f.size}\u0000${f.mtimeMs}`).join("\u0001");
  return [parts.engineBuild, parts.visibleDevices ?? "", files, memoryArgsText(parts.args)].join("\u0002");
}

/** What is known about one key: the projection before a load and the engine's figures after one. */
export interface CachedMemory {
  projected?: MemoryProjection;
  observed?: MemoryProjection;
}

/**
 * Projections by key. After a load the observed figures take the projection's place for admission
 * (`best`), while the projection stays for `/models`, which shows both.
 */
export class ProjectionCache {
  readonly #entries = new Map<string, CachedMemory>();

  get(key: string): CachedMemory | undefined {
    return this.#entries.get(key);
  }

  /** The figures to claim by: observed when a load has shown them, else the projection. */
  best(key: string): MemoryProjection | undefined {
    const e = this.#entries.get(key);
    return e?.observed ?? e?.projected;
  }

  setProjected(key: string, p: MemoryProjection): void {
    this.#entries.set(key, { ...this.#entries.get(key), projected: p });
  }

  setObserved(key: string, p: MemoryProjection): void {
    this.#entries.set(key, { ...this.#entries.get(key), observed: { ...p, source: "observed" } });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }
}
