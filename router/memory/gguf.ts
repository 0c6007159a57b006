/**
 * A GGUF header reader: metadata and tensor infos, never the tensor data, so a 100 GB model costs a
 * read of its first megabytes. Layout per the pinned llama.cpp's ggml/include/gguf.h; tensor sizes per
 * ggml's type traits (`ggml_blck_size` / `ggml_type_size`, printed from the pinned build).
 */
import { parseGgufName } from "../sources/gguf_name.ts";

/** A metadata value. String arrays keep only their length: a vocabulary can be megabytes of strings. */
export type GgufValue =
  | string
  | number
  | boolean
  | readonly number[]
  | readonly boolean[]
  | { readonly strings: number };

export interface GgufTensorInfo {
  name: string;
  /** fastest-varying first, as GGUF stores them */
  dims: readonly number[];
  /** ggml_type id */
  type: number;
  /** bytes of the data (`ggml_nbytes`) */
  bytes: number;
}

export interface GgufHeader {
  version: number;
  metadata: ReadonlyMap<string, GgufValue>;
  tensors: readonly GgufTensorInfo[];
}

/** The bytes are not a GGUF header, or one this reader cannot follow. */
export class GgufError extends Error {
  override name = "GgufError";
}

/** The header goes on past the bytes given: read a longer prefix and parse again. */
export class GgufTruncatedError extends GgufError {
  override name = "GgufTruncatedError";
}

/** A ggml tensor type: `block` elements take `size` bytes. */
export interface GgmlType {
  id: number;
  name: string;
  block: number;
  size: number;
}

// [id, name, elements per block, bytes per block]; ids missing here were removed from ggml.
const TYPE_ROWS: ReadonlyArray<readonly [number, string, number, number]> = [
  [0, "f32", 1, 4],
  [1, "f16", 1, 2],
  [2, "q4_0", 32, 18],
  [3, "q4_1", 32, 20],
  [6, "q5_0", 32, 22],
  [7, "q5_1", 32, 24],
  [8, "q8_0", 32, 34],
  [9, "q8_1", 32, 36],
  [10, "q2_K", 256, 84],
  [11, "q3_K", 256, 110],
  [12, "q4_K", 256, 144],
  [13, "q5_K", 256, 176],
  [14, "q6_K", 256, 210],
  [15, "q8_K", 256, 292],
  [16, "iq2_xxs", 256, 66],
  [17, "iq2_xs", 256, 74],
  [18, "iq3_xxs", 256, 98],
  [19, "iq1_s", 256, 50],
  [20, "iq4_nl", 32, 18],
  [21, "iq3_s", 256, 110],
  [22, "iq2_s", 256, 82],
  [23, "iq4_xs", 256, 136],
  [24, "i8", 1, 1],
  [25, "i16", 1, 2],
  [26, "i32", 1, 4],
  [27, "i64", 1, 8],
  [28, "f64", 1, 8],
  [29, "iq1_m", 256, 56],
  [30, "bf16", 1, 2],
  [34, "tq1_0", 256, 54],
  [35, "tq2_0", 256, 66],
  [39, "mxfp4", 32, 17],
  [40, "nvfp4", 64, 36],
  [41, "q1_0", 128, 18],
  [42, "q2_0", 64, 18],
];

export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map(
  TYPE_ROWS.map(([id, name, block, size]) => [id, { id, name, block, size }]),
);

const TYPE_BY_NAME: ReadonlyMap<string, GgmlType> = new Map([...GGML_TYPES.values()].map((t) => [t.name, t]));

/** A ggml type by id or by name (`q8_0`, as `-ctk` takes it); throws for an unknown one. */
export function ggmlType(type: number | string): GgmlType {
  const found = typeof type === "number" ? GGML_TYPES.get(type) : TYPE_BY_NAME.get(type);
  if (!found) throw new GgufError(`unknown ggml type ${type}`);
  return found;
}

/**
 * Bytes of `n` consecutive elements of a ggml type, as `ggml_row_size`: whole blocks only, so `n`
 * must be a multiple of the block size.
 */
export function rowBytes(type: number | string, n: number): number {
  const { block, size, name } = ggmlType(type);
  if (n % block !== 0) throw new GgufError(`${n} elements are not whole ${name} blocks of ${block}`);
  return (n / block) * size;
}

const utf8 = new TextDecoder("utf-8", { fatal: false });

class Reader {
  readonly #view: DataView;
  pos = 0;
  constructor(readonly bytes: Uint8Array) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  #need(n: number): number {
    const at = this.pos;
    if (at + n > this.bytes.length) {
      throw new GgufTruncatedError(`GGUF header ends after ${this.bytes.length} bytes`);
    }
    this.pos += n;
    return at;
  }
  u8(): number {
    return this.#view.getUint8(this.#need(1));
  }
  i8(): number {
    return this.#view.getInt8(this.#need(1));
  }
  u16(): number {
    return this.#view.getUint16(this.#need(2), true);
  }
  i16(): number {
    return this.#view.getInt16(this.#need(2), true);
  }
  u32(): number {
    return this.#view.getUint32(this.#need(4), true);
  }
  i32(): number {
    return this.#view.getInt32(this.#need(4), true);
  }
  f32(): number {
    return this.#view.getFloat32(this.#need(4), true);
  }
  f64(): number {
    return this.#view.getFloat64(this.#need(8), true);
  }
  // Counts and dimensions past 2^53 would be a corrupt file, not a model.
  u64(): number {
    return safe(this.#view.getBigUint64(this.#need(8), true));
  }
  i64(): number {
    return safe(this.#view.getBigInt64(this.#need(8), true));
  }
  str(): string {
    const n = this.u64();
    const at = this.#need(n);
    return utf8.decode(this.bytes.subarray(at, at + n));
  }
}

function safe(v: bigint): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new GgufError(`GGUF value ${v} is out of range`);
  return n;
}

const T_STRING = 8;
const T_ARRAY = 9;

function scalar(r: Reader, type: number): number | boolean | string {
  switch (type) {
    case 0:
      return r.u8();
    case 1:
      return r.i8();
    case 2:
      return r.u16();
    case 3:
      return r.i16();
    case 4:
      return r.u32();
    case 5:
      return r.i32();
    case 6:
      return r.f32();
    case 7:
      return r.u8() !== 0;
    case T_STRING:
      return r.str();
    case 10:
      return r.u64();
    case 11:
      return r.i64();
    case 12:
      return r.f64();
  }
  throw new GgufError(`unknown GGUF value type ${type}`);
}

function value(r: Reader, type: number): GgufValue {
  if (type !== T_ARRAY) return scalar(r, type);
  const itemType = r.u32();
  const n = r.u64();
  if (itemType === T_STRING) {
    for (let i = 0; i < n; i++) r.str();
    return { strings: n };
  }
  if (itemType === T_ARRAY) throw new GgufError("nested GGUF arrays are not supported");
  const items: (number | boolean)[] = [];
  for (let i = 0; i < n; i++) items.push(scalar(r, itemType) as number | boolean);
  return items as number[] | boolean[];
}

/**
 * Parses a GGUF header from the first bytes of a file. Throws `GgufTruncatedError` when `bytes` ends
 * inside the header, `GgufError` when it is not GGUF.
 */
/** The first 4 bytes of every GGUF file. */
const GGUF_MAGIC = "GGUF";
/** llama.cpp reads GGUF from version 2 on. */
const MIN_GGUF_VERSION = 2;

export function parseGgufHeader(bytes: Uint8Array): GgufHeader {
  const r = new Reader(bytes);
  if (bytes.length >= 4 && utf8.decode(bytes.subarray(0, 4)) !== GGUF_MAGIC) {
    throw new GgufError("not a GGUF file (bad magic)");
  }
  r.pos = 4;
  const version = r.u32();
  if (version < MIN_GGUF_VERSION) throw new GgufError(`GGUF version ${version} is not supported`);
  const nTensors = r.u64();
  const nKv = r.u64();
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = r.str();
    metadata.set(key, value(r, r.u32()));
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = r.str();
    const nDims = r.u32();
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(r.u64());
    const type = r.u32();
    r.u64(); // offset: only the data reader needs it
    const t = GGML_TYPES.get(type);
    if (!t) throw new GgufError(`tensor ${name} has unknown ggml type ${type}`);
    // ggml_nbytes: the first dimension in whole blocks, times the rest
    const rows = dims.slice(1).reduce((a, b) => a * b, 1);
    tensors.push({ name, dims, type, bytes: Math.ceil((dims[0] ?? 1) / t.block) * t.size * rows });
  }
  return { version, metadata, tensors };
}

/**
 * What keeps the file at `path` from being a GGUF that llama.cpp opens, judged by its first 8 bytes (magic
 * and version); undefined when they look right. Synchronous, and asked once per failed load only: the
 * reason a load failed must be known when its waiting requests are answered.
 */
export function ggufFileProblem(path: string): string | undefined {
  const head = new Uint8Array(8);
  let got = 0;
  try {
    const file = Deno.openSync(path, { read: true });
    try {
      while (got < head.length) {
        const n = file.readSync(head.subarray(got));
        if (n === null) break;
        got += n;
      }
    } finally {
      file.close();
    }
  } catch (e) {
    return `cannot read the model file ${path}: ${(e as Error).message}`;
  }
  // each reads as an error ("invalid", "cannot"): the page picks a failure's telling line by such words
  if (got < head.length) return `invalid model file ${path}: not a GGUF file, only ${got} bytes long`;
  const magic = String.fromCharCode(...head.subarray(0, 4));
  if (magic !== GGUF_MAGIC) {
    return `invalid model file ${path}: not a GGUF file, it begins with ${
      JSON.stringify(magic)
    }, not "${GGUF_MAGIC}"`;
  }
  const version = new DataView(head.buffer).getUint32(4, true);
  if (version < MIN_GGUF_VERSION) {
    return `invalid model file ${path}: GGUF version ${version}, which llama.cpp does not read`;
  }
  return undefined;
}

const FIRST_READ = 1 << 20;
const MAX_HEADER = 1 << 30;

/** Reads the header of the GGUF file at `path`, reading a longer prefix until the header fits. */
export async function readGgufHeader(path: string): Promise<GgufHeader> {
  const file = await Deno.open(path, { read: true });
  try {
    const size = (await file.stat()).size;
    for (let want = Math.min(FIRST_READ, size);; want = Math.min(want * 4, size)) {
      const bytes = await readPrefix(file, want);
      try {
        return parseGgufHeader(bytes);
      } catch (e) {
        if (!(e instanceof GgufTruncatedError) || want >= size || want >= MAX_HEADER) throw e;
      }
    }
  } finally {
    file.close();
  }
}

async function readPrefix(file: Deno.FsFile, n: number): Promise<Uint8Array> {
  const buf = new Uint8Array(n);
  await file.seek(0, Deno.SeekMode.Start);
  let got = 0;
  while (got < n) {
    const read = await file.read(buf.subarray(got));
    if (read === null) break;
    got += read;
  }
  return buf.subarray(0, got);
}

/**
 * Every shard of a split model, in order, named as llama.cpp's `llama_split_path` names them; a single
 * file is its own only shard.
 */
export function shardPaths(path: string): string[] {
  const name = parseGgufName(path);
  if (!name || name.count <= 1) return [path];
  const n = (x: number): string => String(x).padStart(5, "0");
  return Array.from({ length: name.count }, (_, i) => `${name.prefix}-${n(i + 1)}-of-${n(name.count)}.gguf`);
}

/**
 * The header of a model: the first shard's metadata with the tensors of every shard (gguf-split puts
 * all metadata in the first file and spreads the tensors).
 */
export async function readModelHeader(path: string): Promise<GgufHeader> {
  const paths = shardPaths(path);
  const headers = await Promise.all(paths.map(readGgufHeader));
  return { ...headers[0], tensors: headers.flatMap((h) => h.tensors) };
}

/** A numeric metadata value, or undefined when absent or not a number. */
export function metaNumber(h: GgufHeader, key: string): number | undefined {
  const v = h.metadata.get(key);
  return typeof v === "number" ? v : undefined;
}

/** A per-layer value: an array as is, a scalar repeated for each of `n` layers, else undefined. */
export function metaPerLayer(h: GgufHeader, key: string, n: number): number[] | undefined {
  const v = h.metadata.get(key);
  if (typeof v === "number") return Array(n).fill(v);
  if (Array.isArray(v) && v.every((x) => typeof x === "number")) return v.slice(0, n) as number[];
  return undefined;
}
