/**
 * The GGUF header reader and the metadata estimate (router/memory/gguf.ts, gguf_estimate.ts), on the
 * tiny models the fixture writes; every expected figure is worked out by hand from the model's shapes.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { assertRejects, assertThrows } from "./sources_assert.ts";
import { type GgufEntry, tinyLlamaGguf, tinyLlamaVocab, writeTinyLlamaSharded } from "../fixtures/gguf.ts";
import { memoryArgs } from "../../router/memory/args.ts";
import type { Device } from "../../router/memory/devices.ts";
import {
  GgufError,
  ggufFileProblem,
  type GgufHeader,
  GgufTruncatedError,
  parseGgufHeader,
  readGgufHeader,
  readModelHeader,
  rowBytes,
  shardPaths,
} from "../../router/memory/gguf.ts";
import {
  COMPUTE_FLOOR,
  estimateFromFiles,
  estimateMmproj,
  estimateModel,
  MARGIN,
  MMPROJ_COMPUTE,
  modelFacts,
} from "../../router/memory/gguf_estimate.ts";
import { deviceBytes, HOST } from "../../router/memory/projection.ts";
import { GiB, MiB } from "../../router/memory/size.ts";
import { canonicalFlag } from "../../router/sources/spec.ts";

const args = (...pairs: Array<[string, string | boolean]>) =>
  memoryArgs(new Map(pairs.map(([flag, value]) => [canonicalFlag(flag), value])));
const up = (n: number): number => Math.ceil(n * MARGIN);
const est = (model: number, context: number, compute: number) =>
  deviceBytes(up(model), up(context), up(compute));

// The default tiny model: n_embd 64, 2 layers, 4 heads (head dim 16), 4 KV heads, n_ff 128, all F32.
const V = tinyLlamaVocab().tokens.length;
const E = 64, FF = 128, L = 2;
const EMBD = 4 * E * V; // token_embd, and output.weight has the same shape
const OUTPUT = 4 * E + EMBD; // output_norm + output
const LAYER = 4 * (2 * E + 4 * E * E + 3 * E * FF); // two norms, q/k/v/o, gate/up/down
const tiny = (): GgufHeader => parseGgufHeader(tinyLlamaGguf());
const withMeta = (...extra: GgufEntry[]): GgufHeader =>
  parseGgufHeader(tinyLlamaGguf({ extraMetadata: extra }));

const gpu = (name: string, free = 8 * GiB): Device => ({
  name,
  description: name,
  total: free,
  free,
  kind: "gpu",
});

Deno.test("parseGgufHeader: metadata and tensor infos of the tiny model", () => {
  const h = tiny();
  assertEquals(h.version, 3);
  assertEquals(h.metadata.get("general.architecture"), "llama");
  assertEquals(h.metadata.get("llama.block_count"), 2);
  assertEquals(h.metadata.get("tokenizer.ggml.add_bos_token"), true);
  assertEquals(h.metadata.get("tokenizer.ggml.tokens"), { strings: V });
  assertEquals((h.metadata.get("tokenizer.ggml.token_type") as number[]).length, V);
  assertEquals(h.tensors.length, 3 + 9 * L);
  assertEquals(h.tensors[0], { name: "token_embd.weight", dims: [E, V], type: 0, bytes: EMBD });
  assertEquals(h.tensors.reduce((a, t) => a + t.bytes, 0), EMBD + OUTPUT + L * LAYER);
});

Deno.test("parseGgufHeader: a short prefix asks for more; other bytes are not GGUF", () => {
  const bytes = tinyLlamaGguf();
  assertThrows(() => parseGgufHeader(bytes.subarray(0, 100)), GgufTruncatedError, "ends after 100 bytes");
  assertThrows(() => parseGgufHeader(new TextEncoder().encode("PK\u0003\u0004 zip")), GgufError, "bad magic");
});

Deno.test("ggufFileProblem: what keeps a file from being a GGUF, from its first bytes; nothing for a model", async () => {
  const dir = await Deno.makeTempDir({ prefix: "switchyard-gguf-check-" });
  try {
    const file = async (name: string, bytes: Uint8Array) => {
      await Deno.writeFile(`${dir}/${name}`, bytes);
      return `${dir}/${name}`;
    };
    assertEquals(ggufFileProblem(await file("tiny.gguf", tinyLlamaGguf())), undefined);
    const text = await file("text.gguf", new TextEncoder().encode("this is not a gguf file\n".repeat(64)));
    assertEquals(
      ggufFileProblem(text),
      `invalid model file ${text}: not a GGUF file, it begins with "this", not "GGUF"`,
    );
    const short = await file("short.gguf", new TextEncoder().encode("GGU"));
    assertEquals(ggufFileProblem(short), `invalid model file ${short}: not a GGUF file, only 3 bytes long`);
    const v1 = await file("v1.gguf", new Uint8Array([71, 71, 85, 70, 1, 0, 0, 0]));
    assertEquals(
      ggufFileProblem(v1),
      `invalid model file ${v1}: GGUF version 1, which llama.cpp does not read`,
    );
    const missing = `${dir}/gone.gguf`;
    assert(ggufFileProblem(missing)!.startsWith(`cannot read the model file ${missing}: `), "a missing file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rowBytes: whole blocks of ggml's types, by id or by name", () => {
  assertEquals(rowBytes("f16", 64), 128);
  assertEquals(rowBytes("q8_0", 64), 68);
  assertEquals(rowBytes("q4_K", 512), 288);
  assertEquals(rowBytes(0, 10), 40);
  assertThrows(() => rowBytes("q8_0", 48), GgufError, "whole q8_0 blocks");
  assertThrows(() => rowBytes("q9_9", 32), GgufError, "unknown ggml type");
});

Deno.test("readGgufHeader: reads a longer prefix when the header outgrows the first read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // 300k strings make a header of several MiB, past the first 1 MiB read
    const big: GgufEntry = {
      key: "test.big",
      type: "array",
      itemType: "string",
      value: Array(300_000).fill("word"),
    };
    await Deno.writeFile(`${dir}/m.gguf`, tinyLlamaGguf({ extraMetadata: [big] }));
    const h = await readGgufHeader(`${dir}/m.gguf`);
    assertEquals(h.metadata.get("test.big"), { strings: 300_000 });
    assertEquals(h.tensors.length, 3 + 9 * L);
    await Deno.writeTextFile(`${dir}/not.gguf`, "hello");
    await assertRejects(() => readGgufHeader(`${dir}/not.gguf`), GgufError, "bad magic");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shardPaths / readModelHeader: a split model's tensors come from every shard", async () => {
  assertEquals(shardPaths("/m/a-00001-of-00003.gguf"), [
    "/m/a-00001-of-00003.gguf",
    "/m/a-00002-of-00003.gguf",
    "/m/a-00003-of-00003.gguf",
  ]);
  assertEquals(shardPaths("/m/a.gguf"), ["/m/a.gguf"]);
  const dir = await Deno.makeTempDir();
  try {
    const paths = await writeTinyLlamaSharded(dir, 3);
    const h = await readModelHeader(paths[0]);
    assertEquals(h.tensors.length, 3 + 9 * L);
    assertEquals(h.metadata.get("general.architecture"), "llama");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("modelFacts: shapes from the metadata, the vocabulary from the token list", () => {
  const f = modelFacts(tiny());
  assertEquals([f.arch, f.nLayer, f.nEmbd, f.nVocab, f.ctxTrain, f.nFf], ["llama", L, E, V, 4096, FF]);
  assertEquals([f.nHead, f.nHeadKv, f.headK, f.headV, f.nSwa], [[4, 4], [4, 4], 16, 16, 0]);
});

Deno.test("estimateModel: CPU only, -c 512 -np 1: everything on the host", () => {
  const p = estimateModel({ header: tiny(), args: args(["-c", "512"], ["-np", "1"]) });
  // KV: 2 layers × 512 cells × (f16 K row of 64 + f16 V row of 64)
  const kv = L * 512 * (2 * 64 + 2 * 64);
  // compute: one layer's 3 × n_ff activations over 512 tokens plus the logits, under the floor
  const compute = 4 * 512 * Math.max(3 * FF, 4 * E) + 4 * 512 * (V + E);
  assert(compute < COMPUTE_FLOOR);
  assertEquals(p, {
    perDevice: { [HOST]: est(EMBD + OUTPUT + L * LAYER, kv, COMPUTE_FLOOR) },
    source: "gguf",
  });
});

Deno.test("estimateModel: no -c means the training context; auto slots share one cache", () => {
  const p = estimateModel({ header: tiny(), args: args() });
  assertEquals(p.perDevice[HOST].context, up(L * 4096 * 256));
  // -np 3 without -kvu: 3 streams of pad(4096 / 3, 256) = 1536 cells
  const np3 = estimateModel({ header: tiny(), args: args(["-np", "3"]) });
  assertEquals(np3.perDevice[HOST].context, up(L * 3 * 1536 * 256));
});

Deno.test("estimateModel: two GPUs split by free memory, the input embedding stays on the host", () => {
  const p = estimateModel({ header: tiny(), args: args(["-c", "1024"]), gpus: [gpu("CUDA0"), gpu("CUDA1")] });
  // llama.cpp's split of layers 0, 1 and the output layer (2) at [0.5, 1]: 0 → 0, 1/3 → 0, 2/3 → 1
  const kv = L * 1024 * 256;
  const layer = 4 * 512 * Math.max(3 * FF, 4 * E);
  assertEquals(p.perDevice, {
    [HOST]: est(EMBD, 0, 4 * 512 * E * 2),
    CUDA0: est(L * LAYER, kv, COMPUTE_FLOOR),
    CUDA1: est(OUTPUT, 0, COMPUTE_FLOOR),
  });
  assert(layer + 4 * 512 * (V + E) < COMPUTE_FLOOR);
  // -ts 1,0 puts it all on CUDA0
  const ts = estimateModel({
    header: tiny(),
    args: args(["-c", "1024"], ["-ts", "1,0"]),
    gpus: [gpu("CUDA0"), gpu("CUDA1")],
  });
  assertEquals(Object.keys(ts.perDevice).sort(), ["CUDA0", HOST]);
});

Deno.test("estimateModel: -ngl, -dev none, -ot, -nkvo and -sm none move what they say", () => {
  const gpus = [gpu("CUDA0"), gpu("CUDA1")];
  // -ngl 1: only the output layer is offloaded
  const ngl1 = estimateModel({
    header: tiny(),
    args: args(["-c", "1024"], ["-ngl", "1"], ["-ts", "1,0"]),
    gpus,
  });
  assertEquals(ngl1.perDevice.CUDA0.model, up(OUTPUT));
  assertEquals(ngl1.perDevice[HOST].model, up(EMBD + L * LAYER));
  assertEquals(ngl1.perDevice[HOST].context, up(L * 1024 * 256));
  const none = estimateModel({ header: tiny(), args: args(["-c", "1024"], ["-dev", "none"]), gpus });
  assertEquals(Object.keys(none.perDevice), [HOST]);
  // blk.1's feed-forward weights (3 × 64 × 128 floats) go to the CPU buffer, the KV cache too
  const ot = estimateModel({
    header: tiny(),
    args: args(["-c", "1024"], ["-ot", "blk\\.1\\.ffn_(up|down|gate)=CPU"], ["-nkvo", false], ["-ts", "1,0"]),
    gpus,
  });
  const ffn = 4 * 3 * E * FF;
  assertEquals(ot.perDevice[HOST].model, up(EMBD + ffn));
  assertEquals(ot.perDevice.CUDA0.model, up(L * LAYER - ffn + OUTPUT));
  assertEquals([ot.perDevice[HOST].context, ot.perDevice.CUDA0.context], [up(L * 1024 * 256), 0]);
  const single = estimateModel({
    header: tiny(),
    args: args(["-c", "1024"], ["-sm", "none"], ["-mg", "1"]),
    gpus,
  });
  assertEquals(Object.keys(single.perDevice).sort(), ["CUDA1", HOST]);
});

Deno.test("estimateModel: SWA layers keep n_swa × slots + ubatch cells, unless --swa-full", () => {
  const swa = withMeta(
    { key: "llama.attention.sliding_window", type: "u32", value: 128 },
    { key: "llama.attention.sliding_window_pattern", type: "u32", value: 2 },
  );
  assertEquals(modelFacts(swa).isSwa, [true, false]);
  const row = 256; // f16 K and V rows of 64
  // unified, 4 slots: the SWA layer keeps pad(min(4096, 128 × 4 + 512), 256) = 1024 cells
  assertEquals(
    estimateModel({ header: swa, args: args(["-c", "4096"]) }).perDevice[HOST].context,
    up((1024 + 4096) * row),
  );
  assertEquals(
    estimateModel({ header: swa, args: args(["-c", "4096"], ["--swa-full", true]) }).perDevice[HOST].context,
    up(2 * 4096 * row),
  );
  // 4 streams of 1024 cells; the SWA layer keeps pad(min(1024, 128 + 512), 256) = 768 in each
  assertEquals(
    estimateModel({ header: swa, args: args(["-c", "4096"], ["-np", "4"]) }).perDevice[HOST].context,
    up(4 * (768 + 1024) * row),
  );
  // a per-layer boolean pattern is taken as written
  const arr = withMeta(
    { key: "llama.attention.sliding_window", type: "u32", value: 128 },
    { key: "llama.attention.sliding_window_pattern", type: "array", itemType: "bool", value: [false, true] },
  );
  assertEquals(modelFacts(arr).isSwa, [false, true]);
});

Deno.test("estimateModel: quantized KV by whole blocks, flash attention off counts the scores", () => {
  const gqa = parseGgufHeader(tinyLlamaGguf({ nEmbd: 128, nHead: 4, nHeadKv: 2, nLayer: 3, nFf: 256 }));
  // 2 KV heads × head dim 32 = 64 per row: q8_0 gives 2 blocks of 34 bytes; 2 streams of 1024 cells
  const q8 = estimateModel({
    header: gqa,
    args: args(["-c", "2048"], ["-np", "2"], ["-ctk", "q8_0"], ["-ctv", "q8_0"]),
  });
  assertEquals(q8.perDevice[HOST].context, up(3 * 2 * 1024 * (68 + 68)));
  // without flash attention: 4 heads × 8192 cells of scores per token dominate the layer
  const off = estimateModel({ header: tiny(), args: args(["-c", "8192"], ["-fa", "off"]) });
  assertEquals(off.perDevice[HOST].compute, up(4 * 512 * 4 * 8192 + 4 * 512 * (V + E)));
});

Deno.test("estimateModel: tied embeddings load the embedding again on the output's device", () => {
  const h = tiny();
  const tied: GgufHeader = { ...h, tensors: h.tensors.filter((t) => t.name !== "output.weight") };
  const p = estimateModel({ header: tied, args: args(["-c", "1024"]), gpus: [gpu("CUDA0")] });
  assertEquals(p.perDevice[HOST].model, up(EMBD));
  assertEquals(p.perDevice.CUDA0.model, up(L * LAYER + 4 * E + EMBD));
});

Deno.test("estimateMmproj: weights on the first GPU (or the host with --no-mmproj-offload) plus the image graph", () => {
  const h = tiny();
  const weights = EMBD + OUTPUT + L * LAYER;
  const on = estimateMmproj(h, args(["-mm", "/m/p.gguf"]), [gpu("CUDA0")]);
  assertEquals(on.perDevice, { CUDA0: deviceBytes(up(weights), 0, MMPROJ_COMPUTE) });
  const off = estimateMmproj(h, args(["-mm", "/m/p.gguf"], ["--no-mmproj-offload", false]), [gpu("CUDA0")]);
  assertEquals(Object.keys(off.perDevice), [HOST]);
  assertEquals(Object.keys(estimateMmproj(h, args(["-mm", "/m/p.gguf"])).perDevice), [HOST]);
});

Deno.test("estimateFromFiles: model, draft and projector add up", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/m.gguf`, tinyLlamaGguf());
    const m = args(["-c", "512"], ["-np", "1"], ["-md", `${dir}/m.gguf`], ["-mm", `${dir}/m.gguf`]);
    const p = await estimateFromFiles(`${dir}/m.gguf`, m);
    const one = estimateModel({ header: tiny(), args: m }).perDevice[HOST];
    const mmproj = estimateMmproj(tiny(), m).perDevice[HOST];
    assertEquals(p.source, "gguf");
    assertEquals(p.perDevice[HOST].model, 2 * one.model + mmproj.model);
    assertEquals(p.perDevice[HOST].compute, 2 * one.compute + MMPROJ_COMPUTE);
    assert(p.perDevice[HOST].total > 100 * MiB);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
