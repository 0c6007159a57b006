/**
 * The fallback projection when the engine's fitter is missing or fails: an estimate from the GGUF
 * header alone, following the pinned llama.cpp's placement rules.
 *
 * - Weights: each tensor's bytes on the device its layer goes to (src/llama-model.cpp `load_tensors`):
 *   the input embedding always on the host, the last `n_gpu_layers` of the `n_layer + 1` layers (the
 *   `+ 1` is the output layer) on the GPUs, split by `-ts` or else by free memory, `-ot` / `-cmoe` /
 *   `-ncmoe` / `-ncffn` overriding single tensors. A model without `output.weight` reuses the
 *   embedding, which is then loaded a second time on the output layer's device.
 * - KV cache (src/llama-kv-cache.cpp, llama-kv-cache-iswa.cpp): per layer with attention,
 *   `streams × cells × (row(ctk, n_embd_k_gqa) + row(ctv, n_embd_v_gqa))`; the context is padded to 256,
 *   a non-unified cache has one stream of `n_ctx / np` (padded) cells per slot, and a sliding-window
 *   layer keeps `min(cells, n_swa × (unified ? np : 1) + n_ubatch)` (padded) unless `--swa-full`.
 * - Compute: the live activations of one layer, `4 B × n_tokens × max(3·n_ff, 4·n_embd, n_head·n_kv)`
 *   (gate, up and their product; the attention scores when flash attention is off), plus the logits
 *   `4 B × n_tokens × (n_vocab + n_embd)` on the output's device, with a floor of `COMPUTE_FLOOR` on
 *   every device that runs layers; the host alone gets `4 B × n_tokens × n_embd × 2` for the input
 *   rows. Before the floor, this gives 3.1 MiB on a tiny test model where the engine reserved 3.26 MiB,
 *   and 159.5 MiB on one with a 26980-wide feed-forward where it reserved 160.6 MiB.
 * - Everything × `MARGIN`. Recurrent state, MLA and mmproj image graphs are not modelled beyond that.
 */
import type { MemoryArgs, Placement } from "./args.ts";
import type { Device } from "./devices.ts";
import { ggmlType, type GgufHeader, metaNumber, metaPerLayer, readModelHeader } from "./gguf.ts";
import { bufferDevice } from "./observed.ts";
import { deviceBytes, HOST, type MemoryProjection, sumProjections } from "./projection.ts";
import { MiB } from "./size.ts";

export const MARGIN = 1.1;
/** graph metadata, split copies and the small ops the formula leaves out, on a device running layers */
export const COMPUTE_FLOOR = 32 * MiB;
/** an mmproj's image graph, which depends on the image size: a rough bound at default resolutions */
export const MMPROJ_COMPUTE = 512 * MiB;
/** the context when neither `-c` nor the GGUF's training context says */
const FALLBACK_CTX = 4096;

/** What the estimate reads from a model's metadata. */
export interface ModelFacts {
  arch: string;
  nLayer: number;
  nEmbd: number;
  nVocab: number;
  ctxTrain?: number;
  nFf: number;
  nHead: number[];
  nHeadKv: number[];
  headK: number;
  headV: number;
  headKSwa: number;
  headVSwa: number;
  /** 0 when the model has no sliding-window layers */
  nSwa: number;
  isSwa: boolean[];
}

function perLayerSwa(h: GgufHeader, arch: string, nLayer: number, nSwa: number): boolean[] {
  if (nSwa <= 0) return Array(nLayer).fill(false);
  const pattern = h.metadata.get(`${arch}.attention.sliding_window_pattern`);
  if (Array.isArray(pattern) && pattern.every((x) => typeof x === "boolean")) {
    return Array.from({ length: nLayer }, (_, il) => Boolean(pattern[il]));
  }
  // a period n: every n-th layer is dense (llama_hparams::set_swa_pattern); 0 means all are SWA
  if (typeof pattern === "number") {
    return Array.from({ length: nLayer }, (_, il) => pattern === 0 || il % pattern < pattern - 1);
  }
  // the period is hard-coded per architecture; counting every layer as full never undercounts
  return Array(nLayer).fill(false);
}

/** The facts of a model header; throws when the header lacks what any llama.cpp model has. */
export function modelFacts(h: GgufHeader): ModelFacts {
  const arch = h.metadata.get("general.architecture");
  if (typeof arch !== "string") throw new Error("GGUF has no general.architecture");
  const key = (k: string): string => `${arch}.${k}`;
  const nLayer = metaNumber(h, key("block_count"));
  const nEmbd = metaNumber(h, key("embedding_length"));
  if (nLayer === undefined || nEmbd === undefined) {
    throw new Error(`GGUF (${arch}) lacks block_count or embedding_length`);
  }
  const nHead = metaPerLayer(h, key("attention.head_count"), nLayer) ?? Array(nLayer).fill(0);
  const nHeadKv = metaPerLayer(h, key("attention.head_count_kv"), nLayer) ?? nHead;
  const maxHead = Math.max(1, ...nHead);
  const headK = metaNumber(h, key("attention.key_length")) ?? Math.floor(nEmbd / maxHead);
  const headV = metaNumber(h, key("attention.value_length")) ?? Math.floor(nEmbd / maxHead);
  const tokens = h.metadata.get("tokenizer.ggml.tokens");
  const embd = h.tensors.find((t) => t.name === "token_embd.weight");
  const nSwa = metaNumber(h, key("attention.sliding_window")) ?? 0;
  return {
    arch,
    nLayer,
    nEmbd,
    nVocab: metaNumber(h, key("vocab_size")) ??
      (tokens && typeof tokens === "object" && "strings" in tokens ? tokens.strings : embd?.dims[1] ?? 0),
    ctxTrain: metaNumber(h, key("context_length")),
    nFf: Math.max(0, ...(metaPerLayer(h, key("feed_forward_length"), nLayer) ?? [0])),
    nHead,
    nHeadKv,
    headK,
    headV,
    headKSwa: metaNumber(h, key("attention.key_length_swa")) ?? headK,
    headVSwa: metaNumber(h, key("attention.value_length_swa")) ?? headV,
    nSwa,
    isSwa: perLayerSwa(h, arch, nLayer, nSwa),
  };
}

const pad = (n: number, to: number): number => Math.ceil(n / to) * to;

/** Bytes of a row of `n` elements, rounding partial blocks up: an estimate never throws on odd shapes. */
function rowBytes(type: string, n: number): number {
  const t = ggmlType(type);
  return Math.ceil(n / t.block) * t.size;
}

/** The GPUs a model's layers go to, in order, with the weight each split gets. */
function layerDevices(
  m: MemoryArgs,
  p: Placement,
  gpus: readonly Device[],
): { names: string[]; splits: number[] } {
  let names = gpus.map((g) => g.name);
  if (p.devices !== undefined) {
    const wanted = p.devices.split(",").map((s) => s.trim()).filter(Boolean);
    names = wanted.length === 1 && wanted[0] === "none"
      ? []
      : wanted.map((w) => names.find((n) => n.toLowerCase() === w.toLowerCase()) ?? w);
  }
  if (m.splitMode === "none" && names.length > 0) names = [names[m.mainGpu ?? 0] ?? names[0]];
  const given = m.tensorSplit?.split(/[,/]/).map(Number).slice(0, names.length) ?? [];
  const useGiven = given.length > 0 && given.some((x) => x > 0);
  const splits = names.map((n, i) => useGiven ? given[i] ?? 0 : gpus.find((g) => g.name === n)?.free || 1);
  return { names, splits };
}

/** The device of each layer 0..nLayer (nLayer is the output layer), as `get_layer_buft_list`. */
function placeLayers(
  nLayer: number,
  gpuLayers: number,
  devs: { names: string[]; splits: number[] },
): string[] {
  const nGpu = gpuLayers < 0 ? nLayer + 1 : gpuLayers;
  const start = Math.max(nLayer + 1 - nGpu, 0);
  const act = devs.names.length === 0 ? 0 : Math.min(nGpu, nLayer + 1);
  const total = devs.splits.reduce((a, b) => a + b, 0) || 1;
  let acc = 0;
  const cumulative = devs.splits.map((s) => (acc += s) / total);
  return Array.from({ length: nLayer + 1 }, (_, il) => {
    if (il < start || il - start >= act) return HOST;
    const at = (il - start) / act;
    const i = cumulative.findIndex((c) => c > at);
    return devs.names[i < 0 ? devs.names.length - 1 : i];
  });
}

const EXPS = "\\.ffn_(up|down|gate|gate_up)_(ch|)exps";
const DENSE_FFN = "\\.ffn_(up|down|gate)\\.";

/** `-ot`, `-cmoe`, `-ncmoe`, `-ncffn` as (pattern, device) pairs, first match wins as in llama.cpp. */
function overrides(p: Placement, nCpuFfn: number): Array<[RegExp, string]> {
  const out: Array<[RegExp, string]> = [];
  for (const item of (p.overrideTensor ?? "").split(",").filter(Boolean)) {
    const eq = item.lastIndexOf("=");
    if (eq > 0) out.push([new RegExp(item.slice(0, eq)), bufferDevice(item.slice(eq + 1))]);
  }
  if (p.cpuMoe) out.push([new RegExp(EXPS), HOST]);
  for (let i = 0; i < p.nCpuMoe; i++) out.push([new RegExp(`blk\\.${i}${EXPS}`), HOST]);
  for (let i = 0; i < nCpuFfn; i++) out.push([new RegExp(`blk\\.${i}${DENSE_FFN}`), HOST]);
  return out;
}

type Acc = Record<string, { model: number; context: number; compute: number }>;

function add(acc: Acc, device: string, kind: "model" | "context" | "compute", bytes: number): void {
  (acc[device] ??= { model: 0, context: 0, compute: 0 })[kind] += bytes;
}

export interface EstimateInput {
  header: GgufHeader;
  args: MemoryArgs;
  /** the GPUs the engine sees (empty or absent: CPU only) */
  gpus?: readonly Device[];
  /** whose placement: the model's own (default) or its draft's */
  placement?: Placement;
}

/** The estimate for one model (or a draft, with its `placement`). */
export function estimateModel(input: EstimateInput): MemoryProjection {
  const { header, args: m } = input;
  const p = input.placement ?? m;
  const f = modelFacts(header);
  const layerDev = placeLayers(f.nLayer, p.gpuLayers, layerDevices(m, p, input.gpus ?? []));
  const outputDev = layerDev[f.nLayer];
  const acc: Acc = {};

  const rules = overrides(p, input.placement ? 0 : m.nCpuFfn);
  for (const t of header.tensors) {
    const blk = /^blk\.(\d+)\./.exec(t.name);
    let device = t.name.startsWith("token_embd.") ? HOST : blk ? layerDev[Number(blk[1])] ?? HOST : outputDev;
    device = rules.find(([re]) => re.test(t.name))?.[1] ?? device;
    add(acc, device, "model", t.bytes);
  }
  const embd = header.tensors.find((t) => t.name === "token_embd.weight");
  if (embd && outputDev !== HOST && !header.tensors.some((t) => t.name === "output.weight")) {
    add(acc, outputDev, "model", embd.bytes);
  }

  // llama_context: n_ctx padded to 256; a non-unified cache gives each slot its own padded stream
  const nCtx = pad(m.ctx > 0 ? m.ctx : f.ctxTrain ?? FALLBACK_CTX, 256);
  const streams = m.kvUnified ? 1 : m.parallel;
  const ctxSeq = m.kvUnified ? nCtx : pad(Math.floor(nCtx / m.parallel), 256);
  const nTokens = Math.min(nCtx, m.batch, m.ubatch);
  const swaCells = pad(Math.min(ctxSeq, f.nSwa * (m.kvUnified ? m.parallel : 1) + nTokens), 256);
  for (let il = 0; il < f.nLayer; il++) {
    const kvHeads = f.nHeadKv[il] ?? 0;
    if (kvHeads <= 0) continue;
    const swa = f.isSwa[il] && !m.swaFull;
    const k = kvHeads * (f.isSwa[il] ? f.headKSwa : f.headK);
    const v = kvHeads * (f.isSwa[il] ? f.headVSwa : f.headV);
    const cells = swa ? swaCells : ctxSeq;
    const bytes = streams * cells * (rowBytes(p.cacheTypeK, k) + rowBytes(p.cacheTypeV, v));
    add(acc, m.kvOffload ? layerDev[il] : HOST, "context", bytes);
  }

  const fa = m.flashAttn !== "off";
  const attn = fa ? 0 : Math.max(0, ...f.nHead) * ctxSeq;
  const layerScratch = 4 * nTokens * Math.max(3 * f.nFf, 4 * f.nEmbd, attn);
  const logits = 4 * nTokens * (f.nVocab + f.nEmbd);
  const running = new Set(layerDev);
  for (const device of running) {
    const bytes = layerScratch + (device === outputDev ? logits : 0);
    add(acc, device, "compute", Math.max(COMPUTE_FLOOR, bytes));
  }
  if (!running.has(HOST)) add(acc, HOST, "compute", 4 * nTokens * f.nEmbd * 2);

  return withMargin(acc);
}

function withMargin(acc: Acc): MemoryProjection {
  const perDevice: MemoryProjection["perDevice"] = {};
  const up = (n: number): number => Math.ceil(n * MARGIN);
  for (const [device, b] of Object.entries(acc)) {
    perDevice[device] = deviceBytes(up(b.model), up(b.context), up(b.compute));
  }
  return { perDevice, source: "gguf" };
}

/**
 * An mmproj: its weights on the first GPU the model uses unless `--no-mmproj-offload` (the server's
 * default device for the projector), plus `MMPROJ_COMPUTE` there for the image graph.
 */
export function estimateMmproj(
  header: GgufHeader,
  m: MemoryArgs,
  gpus: readonly Device[] = [],
): MemoryProjection {
  const first = layerDevices(m, m, gpus).names[0];
  const device = m.mmproj?.offload === false || first === undefined ? HOST : first;
  const weights = Math.ceil(header.tensors.reduce((a, t) => a + t.bytes, 0) * MARGIN);
  return { perDevice: { [device]: deviceBytes(weights, 0, MMPROJ_COMPUTE) }, source: "gguf" };
}

/**
 * The whole estimate from the files: the model, its draft and its projector, read from their headers.
 * `modelPath` is the GGUF the engine loads (the first shard of a split model).
 */
export async function estimateFromFiles(
  modelPath: string,
  m: MemoryArgs,
  gpus: readonly Device[] = [],
): Promise<MemoryProjection> {
  const parts = [estimateModel({ header: await readModelHeader(modelPath), args: m, gpus })];
  if (m.draft) {
    parts.push(
      estimateModel({ header: await readModelHeader(m.draft.model), args: m, gpus, placement: m.draft }),
    );
  }
  if (m.mmproj) parts.push(estimateMmproj(await readModelHeader(m.mmproj.path), m, gpus));
  return sumProjections("gguf", ...parts);
}
