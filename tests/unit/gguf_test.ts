// Parses the fixture's output with an independent reader, so a writer bug cannot hide behind shared code.
import {
  CHATML_TEMPLATE,
  encodeGguf,
  GGUF_ALIGNMENT,
  splitPath,
  suppressedTokens,
  tinyLlamaGguf,
  tinyLlamaVocab,
  TokenType,
  writeTinyLlamaSharded,
} from "../fixtures/gguf.ts";

// Local asserts: node:assert would need npm:@types/node for `deno check`, which node_modules lacks.
function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length || Array.isArray(a) !== Array.isArray(b)) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

const show = (x: unknown): string => Deno.inspect(x, { depth: 2, iterableLimit: 8 });

interface Asserts {
  ok(cond: unknown, msg?: string): asserts cond;
  equal(actual: unknown, expected: unknown, msg?: string): void;
  deepEqual(actual: unknown, expected: unknown, msg?: string): void;
  notDeepEqual(actual: unknown, expected: unknown, msg?: string): void;
  match(s: string, re: RegExp, msg?: string): void;
  throws(fn: () => unknown, re: RegExp): void;
}

const assert: Asserts = {
  ok(cond: unknown, msg = "assertion failed"): asserts cond {
    if (!cond) throw new Error(msg);
  },
  equal(actual: unknown, expected: unknown, msg = ""): void {
    if (!Object.is(actual, expected)) {
      throw new Error(`${msg} expected ${show(expected)}, got ${show(actual)}`);
    }
  },
  deepEqual(actual: unknown, expected: unknown, msg = ""): void {
    if (!deepEqual(actual, expected)) {
      throw new Error(`${msg} expected ${show(expected)}, got ${show(actual)}`);
    }
  },
  notDeepEqual(actual: unknown, expected: unknown, msg = ""): void {
    if (deepEqual(actual, expected)) throw new Error(`${msg} expected a difference`);
  },
  match(s: string, re: RegExp, msg = ""): void {
    if (!re.test(s)) throw new Error(`${msg} ${show(s)} does not match ${re}`);
  },
  throws(fn: () => unknown, re: RegExp): void {
    try {
      fn();
    } catch (e) {
      if (!re.test(String(e))) throw new Error(`threw ${show(String(e))}, expected ${re}`);
      return;
    }
    throw new Error(`did not throw ${re}`);
  },
};

type Value = number | bigint | boolean | string | Value[];

interface Parsed {
  version: number;
  kv: Map<string, { type: number; itemType?: number; value: Value }>;
  tensors: { name: string; dims: number[]; type: number; offset: number }[];
  dataStart: number;
}

function parseGguf(bytes: Uint8Array): Parsed {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder("utf-8", { fatal: true });
  let p = 0;
  const u32 = (): number => (p += 4, dv.getUint32(p - 4, true));
  const u64 = (): number => (p += 8, Number(dv.getBigUint64(p - 8, true)));
  const str = (): string => {
    const n = u64();
    p += n;
    return dec.decode(bytes.subarray(p - n, p));
  };
  const scalar = (t: number): Value => {
    switch (t) {
      case 0:
        return (p += 1, dv.getUint8(p - 1));
      case 1:
        return (p += 1, dv.getInt8(p - 1));
      case 2:
        return (p += 2, dv.getUint16(p - 2, true));
      case 3:
        return (p += 2, dv.getInt16(p - 2, true));
      case 4:
        return u32();
      case 5:
        return (p += 4, dv.getInt32(p - 4, true));
      case 6:
        return (p += 4, dv.getFloat32(p - 4, true));
      case 7:
        return (p += 1, dv.getUint8(p - 1) !== 0);
      case 8:
        return str();
      case 10:
        return (p += 8, dv.getBigUint64(p - 8, true));
      case 11:
        return (p += 8, dv.getBigInt64(p - 8, true));
      case 12:
        return (p += 8, dv.getFloat64(p - 8, true));
    }
    throw new Error(`bad type ${t} at ${p}`);
  };
  assert.equal(dec.decode(bytes.subarray(0, 4)), "GGUF");
  p = 4;
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const kv: Parsed["kv"] = new Map();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    assert.ok(!kv.has(key), `duplicate key ${key}`);
    const type = u32();
    if (type === 9) {
      const itemType = u32();
      const n = u64();
      const value: Value[] = [];
      for (let j = 0; j < n; j++) value.push(scalar(itemType));
      kv.set(key, { type, itemType, value });
    } else {
      kv.set(key, { type, value: scalar(type) });
    }
  }
  const tensors: Parsed["tensors"] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    const dims: number[] = [];
    for (let j = 0; j < nd; j++) dims.push(u64());
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  const align = Number(kv.get("general.alignment")?.value ?? 32);
  return { version, kv, tensors, dataStart: Math.ceil(p / align) * align };
}

const U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, U16 = 2;

function val(g: Parsed, key: string, type: number): Value {
  const e = g.kv.get(key);
  assert.ok(e, `missing ${key}`);
  assert.equal(e.type, type, `type of ${key}`);
  return e.value;
}

function tensorData(bytes: Uint8Array, g: Parsed, name: string): Float32Array {
  const t = g.tensors.find((x) => x.name === name);
  assert.ok(t, `missing tensor ${name}`);
  const n = t.dims.reduce((a, b) => a * b, 1);
  return new Float32Array(bytes.slice(g.dataStart + t.offset, g.dataStart + t.offset + n * 4).buffer);
}

/** Mirrors gguf.cpp's reader: offsets are the running sum of aligned sizes and the data fits in the file. */
function assertLayout(bytes: Uint8Array, g: Parsed): void {
  let expected = 0;
  for (const t of g.tensors) {
    assert.equal(t.type, 0, `${t.name} is F32`);
    assert.equal(t.offset, expected, `${t.name} offset`);
    expected += Math.ceil((t.dims.reduce((a, b) => a * b, 1) * 4) / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
  }
  assert.ok(g.dataStart + expected <= bytes.length, "data section within file");
}

Deno.test("tiny llama: header, llama metadata and tensor shapes match llama.cpp's expectations", () => {
  const bytes = tinyLlamaGguf({ name: "unit" });
  const g = parseGguf(bytes);
  assert.equal(g.version, 3);
  assert.equal(val(g, "general.architecture", STRING), "llama");
  assert.equal(val(g, "general.name", STRING), "unit");
  assert.equal(val(g, "general.alignment", U32), 32);
  assert.equal(val(g, "llama.context_length", U32), 4096);
  assert.equal(val(g, "llama.embedding_length", U32), 64);
  assert.equal(val(g, "llama.block_count", U32), 2);
  assert.equal(val(g, "llama.feed_forward_length", U32), 128);
  assert.equal(val(g, "llama.attention.head_count", U32), 4);
  assert.equal(val(g, "llama.attention.head_count_kv", U32), 4);
  assert.equal(val(g, "llama.rope.dimension_count", U32), 16);
  assert.ok(Math.abs((val(g, "llama.attention.layer_norm_rms_epsilon", F32) as number) - 1e-5) < 1e-9);
  assert.equal(val(g, "tokenizer.ggml.model", STRING), "llama");
  assert.equal(val(g, "tokenizer.chat_template", STRING), CHATML_TEMPLATE);
  assert.equal(val(g, "tokenizer.ggml.add_bos_token", BOOL), true);

  const tokens = val(g, "tokenizer.ggml.tokens", 9) as string[];
  const nVocab = tokens.length;
  assert.equal(val(g, "llama.vocab_size", U32), nVocab);
  assert.equal(g.kv.get("tokenizer.ggml.scores")?.itemType, F32);
  assert.equal(g.kv.get("tokenizer.ggml.token_type")?.itemType, I32);
  assert.equal((val(g, "tokenizer.ggml.scores", 9) as number[]).length, nVocab);
  assert.equal((val(g, "tokenizer.ggml.token_type", 9) as number[]).length, nVocab);
  assert.equal(tokens[val(g, "tokenizer.ggml.bos_token_id", U32) as number], "<s>");
  assert.equal(tokens[val(g, "tokenizer.ggml.eos_token_id", U32) as number], "</s>");
  assert.equal(tokens[val(g, "tokenizer.ggml.unknown_token_id", U32) as number], "<unk>");

  const shapes = new Map(g.tensors.map((t) => [t.name, t.dims.join("x")]));
  assert.equal(shapes.size, g.tensors.length, "tensor names unique");
  assert.equal(shapes.get("token_embd.weight"), `64x${nVocab}`);
  assert.equal(shapes.get("output.weight"), `64x${nVocab}`);
  assert.equal(shapes.get("output_norm.weight"), "64");
  for (const i of [0, 1]) {
    assert.equal(shapes.get(`blk.${i}.attn_norm.weight`), "64");
    assert.equal(shapes.get(`blk.${i}.attn_q.weight`), "64x64");
    assert.equal(shapes.get(`blk.${i}.attn_k.weight`), "64x64");
    assert.equal(shapes.get(`blk.${i}.attn_v.weight`), "64x64");
    assert.equal(shapes.get(`blk.${i}.attn_output.weight`), "64x64");
    assert.equal(shapes.get(`blk.${i}.ffn_norm.weight`), "64");
    assert.equal(shapes.get(`blk.${i}.ffn_gate.weight`), "64x128");
    assert.equal(shapes.get(`blk.${i}.ffn_up.weight`), "64x128");
    assert.equal(shapes.get(`blk.${i}.ffn_down.weight`), "128x64");
  }
  // llama.cpp fails a load whose file holds tensors the architecture does not create.
  assert.equal(g.tensors.length, 3 + 2 * 9);
  assertLayout(bytes, g);
  assert.equal(bytes.length % GGUF_ALIGNMENT, 0);
});

Deno.test("tiny llama: GQA shapes follow nHeadKv", () => {
  const g = parseGguf(tinyLlamaGguf({ nEmbd: 128, nHead: 8, nHeadKv: 2, nLayer: 1, nFf: 96 }));
  const shapes = new Map(g.tensors.map((t) => [t.name, t.dims.join("x")]));
  assert.equal(shapes.get("blk.0.attn_k.weight"), "128x32");
  assert.equal(shapes.get("blk.0.attn_v.weight"), "128x32");
  assert.equal(shapes.get("blk.0.ffn_down.weight"), "96x128");
  assert.equal(val(g, "llama.rope.dimension_count", U32), 16);
  assert.equal(val(g, "llama.attention.head_count_kv", U32), 2);
});

Deno.test("tiny llama: deterministic per seed", () => {
  const a = tinyLlamaGguf({ seed: 7 });
  assert.deepEqual(a, tinyLlamaGguf({ seed: 7 }));
  assert.notDeepEqual(a, tinyLlamaGguf({ seed: 8 }));
  assert.equal(a.length, tinyLlamaGguf({ seed: 8 }).length);
});

Deno.test("tiny llama: vocabulary is SPM-shaped and safe to sample", () => {
  const v = tinyLlamaVocab();
  assert.equal(new Set(v.tokens).size, v.tokens.length, "no duplicate pieces (llama.cpp asserts this)");
  for (
    const t of [
      "<unk>",
      "<s>",
      "</s>",
      "<|im_start|>",
      "<|im_end|>",
      "\u2581",
      "<0x0A>",
      "<0xFF>",
      "\u2581hello",
    ]
  ) {
    assert.ok(v.tokens.includes(t), `has ${t}`);
  }
  for (const id of [v.bos, v.eos, v.imStart, v.imEnd]) assert.equal(v.types[id], TokenType.CONTROL);
  assert.equal(v.types[v.unk], TokenType.UNKNOWN);
  v.tokens.forEach((t, i) => {
    if (v.types[i] === TokenType.NORMAL) {
      assert.match(t, /^\u2581?[\x21-\x7e]*$/, `normal piece ${t} is ASCII`);
    }
  });
  // Every ▁-prefixed word is reachable by SPM's pairwise merges only if all its prefixes exist too.
  const set = new Set(v.tokens);
  for (const t of v.tokens) {
    if (t.startsWith("\u2581") && t.length > 2) assert.ok(set.has(t.slice(0, -1)), `prefix of ${t}`);
  }
  const sup = suppressedTokens(v);
  for (const id of sup) {
    const m = /^<0x([0-9A-F]{2})>$/.exec(v.tokens[id]);
    if (m) assert.ok(parseInt(m[1], 16) >= 0x7f || parseInt(m[1], 16) < 0x20, `byte ${m[1]} suppressed`);
  }
  assert.ok(sup.has(v.tokens.indexOf("<0x80>")) && sup.has(v.eos) && sup.has(v.imEnd));
  assert.ok(!sup.has(v.tokens.indexOf("<0x0A>")) && !sup.has(v.tokens.indexOf("<0x41>")));
  assert.ok(!suppressedTokens(v, true).has(v.eos));
});

Deno.test("tiny llama: suppression invariants hold in the weights", () => {
  const bytes = tinyLlamaGguf({ seed: 3 });
  const g = parseGguf(bytes);
  const v = tinyLlamaVocab();
  const n = 64;
  const embd = tensorData(bytes, g, "token_embd.weight");
  for (let t = 0; t < v.tokens.length; t++) assert.equal(embd[t * n], 1);
  for (const i of [0, 1]) {
    assert.ok(tensorData(bytes, g, `blk.${i}.attn_output.weight`).subarray(0, n).every((x) => x === 0));
    assert.ok(tensorData(bytes, g, `blk.${i}.ffn_down.weight`).subarray(0, 128).every((x) => x === 0));
  }
  const out = tensorData(bytes, g, "output.weight");
  for (const id of suppressedTokens(v)) {
    assert.equal(out[id * n], -1000);
    assert.ok(out.subarray(id * n + 1, (id + 1) * n).every((x) => x === 0));
  }
  assert.ok(tensorData(bytes, g, "output_norm.weight").every((x) => x === 1));
});

Deno.test("tiny llama: padToBytes gives the exact size with real weights", () => {
  const target = 3 * 1024 * 1024 + 12345;
  const bytes = tinyLlamaGguf({ padToBytes: target });
  assert.equal(bytes.length, target);
  const g = parseGguf(bytes);
  const nFf = val(g, "llama.feed_forward_length", U32) as number;
  assert.ok(nFf > 128, `nFf grew (${nFf})`);
  assertLayout(bytes, g);
  const t = g.tensors.at(-1)!;
  const end = g.dataStart + t.offset + t.dims.reduce((a, b) => a * b, 1) * 4;
  assert.ok(target - end < 2 * 3 * 64 * 4 + GGUF_ALIGNMENT, `only a little zero padding (${target - end})`);
  assert.throws(() => tinyLlamaGguf({ padToBytes: 1000 }), /below/);
});

Deno.test("tiny llama: bad options are rejected", () => {
  assert.throws(() => tinyLlamaGguf({ nEmbd: 60, nHead: 8 }), /divisible/);
  assert.throws(() => tinyLlamaGguf({ nHead: 4, nHeadKv: 3 }), /divisible/);
  assert.throws(() => tinyLlamaGguf({ nLayer: 0 }), /positive/);
});

Deno.test("encodeGguf: arrays of every scalar type round-trip", () => {
  const bytes = encodeGguf([
    { key: "a.u16", type: "u16", value: 65535 },
    { key: "a.i64", type: "i64", value: -5n },
    { key: "a.strs", type: "array", itemType: "string", value: ["x", "\u00e9\u2581"] },
    { key: "a.bools", type: "array", itemType: "bool", value: [true, false] },
  ], [{ name: "t", dims: [3], data: new Float32Array([1, 2, 3]) }]);
  const g = parseGguf(bytes);
  assert.equal(val(g, "a.u16", U16), 65535);
  assert.equal(val(g, "a.i64", 11), -5n);
  assert.deepEqual(val(g, "a.strs", 9), ["x", "\u00e9\u2581"]);
  assert.deepEqual(val(g, "a.bools", 9), [true, false]);
  assert.deepEqual([...tensorData(bytes, g, "t")], [1, 2, 3]);
  assert.throws(() => encodeGguf([], [{ name: "t", dims: [2], data: new Float32Array(3) }]), /hold 2/);
});

Deno.test("sharded tiny llama: split keys and names follow gguf-split", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gguf_unit_" });
  try {
    const paths = await writeTinyLlamaSharded(dir, 3, { name: "sharded" });
    assert.deepEqual(paths, [0, 1, 2].map((i) => splitPath(`${dir}/sharded`, i, 3)));
    assert.ok(paths[0].endsWith("sharded-00001-of-00003.gguf"));
    const names: string[] = [];
    for (const [i, p] of paths.entries()) {
      const bytes = await Deno.readFile(p);
      const g = parseGguf(bytes);
      assert.equal(val(g, "split.no", U16), i);
      assert.equal(val(g, "split.count", U16), 3);
      assert.equal(val(g, "split.tensors.count", I32), 21);
      assert.equal(g.kv.has("general.architecture"), i === 0);
      assert.ok(g.tensors.length > 0);
      assertLayout(bytes, g);
      names.push(...g.tensors.map((t) => t.name));
    }
    assert.deepEqual(names, parseGguf(tinyLlamaGguf()).tensors.map((t) => t.name));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
