/**
 * The engine's own figures after a load, from the buffer lines libllama logs (format strings of the
 * pinned source; `%10s`/`%12s` is the buffer type's name, so the padding varies):
 * ```
 * load_tensors:   CPU_Mapped model buffer size =    39.98 MiB      (src/llama-model.cpp:1806)
 * llama_context:        CPU  output buffer size =     0.01 MiB     (src/llama-context.cpp:379)
 * llama_kv_cache:        CPU KV buffer size =     1.00 MiB         (src/llama-kv-cache.cpp:291)
 * llama_memory_recurrent:  CUDA0 RS buffer size = 3.14 MiB         (src/llama-memory-recurrent.cpp:124)
 * sched_reserve:        CPU compute buffer size =   160.60 MiB     (src/llama-context.cpp:690)
 * ```
 * They are INFO lines of libllama, which llama-server shows only at `-lv 4` (or `-v`); at the default
 * verbosity none of them appear. Lines may carry the `0.00.009.286 I ` prefix or not
 * (`--no-log-prefix --no-log-timestamps`): the patterns do not anchor at the start.
 *
 * The fitter's probes log at DEBUG, so at `-lv 4` every buffer line belongs to a real allocation:
 * weights and caches of the model and of a draft add up; a context that reserves its graph again
 * replaces its compute figure (a later line for the same context and buffer wins).
 */
import { deviceBytes, HOST, type MemoryProjection } from "./projection.ts";
import { MiB } from "./size.ts";

type Kind = "model" | "context" | "compute";

const BUFFER_RE =
  /(\S+)\s+(model|KV|RS|compute|output|LoRA|DSV4 \S+ state) buffer size\s*=\s*(\d+(?:\.\d+)?) MiB/;
const KIND: Record<string, Kind> = {
  model: "model",
  LoRA: "model",
  KV: "context",
  RS: "context",
  // the logits buffer: per context, small; neither the fitter nor the breakdown counts it
  output: "compute",
  compute: "compute",
};
const NEW_CONTEXT_RE = /llama_context: constructing llama_context|CLIP using (\S+) backend/;
// clip.cpp (mmproj) logs its weights without a buffer name, after naming its backend
const CLIP_MODEL_RE = /\bmodel size:\s+(\d+(?:\.\d+)?) MiB/;

/**
 * The device a buffer type's memory is on: host for the CPU's (`CPU`, `CPU_Mapped`, `CPU_REPACK`...),
 * the pinned host buffers (`CUDA_Host`) and `BLAS`/`AMX`; else the device named before a suffix
 * (`MTL0_Mapped` → `MTL0`).
 */
export function bufferDevice(buffer: string): string {
  if (/^(CPU|BLAS|AMX)(_|$)/.test(buffer) || buffer.endsWith("_Host")) return HOST;
  return buffer.replace(/_(Mapped|Private|Split)$/, "");
}

/** Collects buffer figures line by line, as an engine's log arrives. */
export class ObservedMemory {
  readonly #sum = new Map<string, { model: number; context: number }>();
  /** compute figures by context and device: a re-reserve replaces, contexts add */
  readonly #compute = new Map<string, number>();
  #context = 0;
  #clipDevice?: string;
  /** lines that carried a figure: none means the engine logged below `-lv 4` */
  lines = 0;

  line(text: string): void {
    const ctx = NEW_CONTEXT_RE.exec(text);
    if (ctx) {
      this.#context++;
      this.#clipDevice = ctx[1] === undefined ? undefined : bufferDevice(ctx[1]);
      return;
    }
    if (text.includes("CLIP using CPU backend")) {
      this.#context++;
      this.#clipDevice = HOST;
      return;
    }
    const b = BUFFER_RE.exec(text);
    if (b) {
      this.#add(
        bufferDevice(b[1]),
        KIND[b[2]] ?? "context",
        Number(b[3]) * MiB,
        `${this.#context}/${b[1]}/${b[2]}`,
      );
      return;
    }
    const clip = this.#clipDevice === undefined ? null : CLIP_MODEL_RE.exec(text);
    if (clip) this.#add(this.#clipDevice!, "model", Number(clip[1]) * MiB, "");
  }

  #add(device: string, kind: Kind, bytes: number, computeKey: string): void {
    this.lines++;
    if (kind === "compute") {
      this.#compute.set(`${device}\u0000${computeKey}`, bytes);
      return;
    }
    const was = this.#sum.get(device) ?? { model: 0, context: 0 };
    was[kind] += bytes;
    this.#sum.set(device, was);
  }

  /** The figures so far, or undefined before any buffer line. */
  projection(): MemoryProjection | undefined {
    if (this.lines === 0) return undefined;
    const compute = new Map<string, number>();
    for (const [key, bytes] of this.#compute) {
      const device = key.slice(0, key.indexOf("\u0000"));
      compute.set(device, (compute.get(device) ?? 0) + bytes);
    }
    const devices = new Set([...this.#sum.keys(), ...compute.keys()]);
    const perDevice: MemoryProjection["perDevice"] = {};
    for (const d of devices) {
      const s = this.#sum.get(d) ?? { model: 0, context: 0 };
      perDevice[d] = deviceBytes(Math.round(s.model), Math.round(s.context), Math.round(compute.get(d) ?? 0));
    }
    return { perDevice, source: "observed" };
  }
}

/** The figures in a whole log; undefined when it has no buffer lines. */
export function parseObserved(log: string): MemoryProjection | undefined {
  const o = new ObservedMemory();
  for (const line of log.split("\n")) o.line(line);
  return o.projection();
}
