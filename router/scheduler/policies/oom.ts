/**
 * A load that failed for want of memory is retried once, after every idle unpinned model has been
 * evicted; a second such failure fails the model with the reason. One retry, never a loop: the
 * scheduler keeps whether this load is already the retry, and this policy never answers "retry"
 * twice for it.
 *
 * The messages are the engine's own (llama.cpp at the pinned release): they are matched on the
 * lines the failed spawn printed, so the scheduler must pass only that spawn's lines, not an earlier
 * one's.
 */

/**
 * Lines that mean an allocation failed, from the engine's source:
 * - libllama: `unable to allocate %s buffer` (llama-model.cpp), `failed to allocate buffer for kv
 *   cache`, `failed to allocate compute pp buffers`, `failed to allocate compute buffers`...
 * - ggml: `ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size %zu`,
 *   `ggml_gallocr_reserve_n: failed to allocate CUDA0 buffer of size %zu`, `ggml_aligned_malloc:
 *   insufficient memory (attempted to allocate ...)`
 * - CUDA/ROCm/MUSA: `ggml_backend_cuda_buffer_type_alloc_buffer: allocating %.2f MiB on device %d:
 *   cudaMalloc failed: out of memory`, `CUDA error: out of memory` (`ggml_cuda_error`)
 * - Metal: `failed to allocate buffer, size = %8.2f MiB`, `failed to allocate Metal buffer of %zu
 *   bytes (out of memory)`
 * - Vulkan: `ggml_vulkan: Device memory allocation of size %zu failed.`, then vulkan-hpp's
 *   `vk::Device::allocateMemory: ErrorOutOfDeviceMemory`
 * - C++: `std::bad_alloc`
 */
const OUT_OF_MEMORY: readonly RegExp[] = [
  /failed to allocate/i,
  /unable to allocate/i,
  /cudaMalloc failed/i,
  /out of (device |host )?memory/i,
  /insufficient memory/i,
  /memory allocation of size \d+ failed/i,
  /ErrorOutOf(Device|Host)Memory/,
  /std::bad_alloc/,
];

/**
 * Allocation failures the engine survives (it falls back, or skips an optimisation): they sit in
 * the log of a load that failed for some other reason and must not make it look like memory.
 */
const NOT_FATAL: readonly RegExp[] = [
  /pinned memory/i,
  /async uploads/i,
  /reorder temp buffer/i,
  /falling back/i,
];

/**
 * Failures that look like memory but that no eviction can help: Vulkan reports a tensor bigger
 * than the device's largest buffer as `Memory allocation of size N failed.` followed by this.
 */
const NOT_MEMORY: readonly RegExp[] = [
  /exceeds device buffer size limit/i,
];

/** How a load ended, as the scheduler saw it. */
export interface LoadFailure {
  readonly modelId: string;
  /** the lines this spawn printed, oldest first */
  readonly logLines: readonly string[];
  readonly signal: string | null;
  /** the gateway killed it (a hung load, an unload): its signal then says nothing about memory */
  readonly killedByGateway: boolean;
}

export type OomDecision =
  | { readonly kind: "not-oom" }
  | { readonly kind: "retry-after-evicting-all-idle-unpinned"; readonly evidence: string }
  | { readonly kind: "fail"; readonly reason: string; readonly evidence: string };

/**
 * The line that shows the load ran out of memory (the last one, nearest the exit), or undefined.
 * A SIGKILL the gateway did not send, during a load, is the kernel's out-of-memory killer in all
 * likelihood: the engine had no chance to print anything.
 */
export function oomEvidence(f: LoadFailure): string | undefined {
  if (f.logLines.some((line) => NOT_MEMORY.some((re) => re.test(line)))) return undefined;
  for (let i = f.logLines.length - 1; i >= 0; i--) {
    const line = f.logLines[i];
    if (OUT_OF_MEMORY.some((re) => re.test(line)) && !NOT_FATAL.some((re) => re.test(line))) {
      return line.trim();
    }
  }
  if (f.signal === "SIGKILL" && !f.killedByGateway) {
    return "killed by SIGKILL while loading (the system's out-of-memory killer?)";
  }
  return undefined;
}

/**
 * @param retried this load was already the retry after an out-of-memory failure
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { onLoadFailure } from "./oom.ts";
 * const failure = {
 *   modelId: "big",
 *   logLines: ["ggml_backend_cuda_buffer_type_alloc_buffer: allocating 9000.00 MiB on device 0: cudaMalloc failed: out of memory"],
 *   signal: null,
 *   killedByGateway: false,
 * };
 * assert.equal(onLoadFailure(failure, false).kind, "retry-after-evicting-all-idle-unpinned");
 * assert.equal(onLoadFailure(failure, true).kind, "fail");
 * ```
 */
export function onLoadFailure(f: LoadFailure, retried: boolean): OomDecision {
  const evidence = oomEvidence(f);
  if (evidence === undefined) return { kind: "not-oom" };
  if (!retried) return { kind: "retry-after-evicting-all-idle-unpinned", evidence };
  return {
    kind: "fail",
    evidence,
    reason: `model ${f.modelId} ran out of memory while loading, again after every idle unpinned model ` +
      `was unloaded: ${evidence}`,
  };
}
