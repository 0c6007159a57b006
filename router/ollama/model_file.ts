/**
 * A model's file as Ollama lists it: size on disk (every shard), modification time, a digest and
 * the GGUF header the details come from. Headers are read once per file identity (path, size,
 * mtime), so listing many models costs a `stat` each after the first time.
 */
import { createHash } from "node:crypto";
import { basename } from "node:path";
import { readModelHeader, shardPaths } from "../memory/gguf.ts";
import type { GgufHeader } from "../memory/gguf.ts";
import { fileIdentity } from "../memory/projection.ts";
import { modelFileOf } from "../sources/model_file.ts";
import type { ModelSpec } from "../sources/types.ts";

export interface ModelFileFacts {
  path: string;
  /** bytes of every shard */
  size: number;
  modifiedAt: Date;
  /** hex: the Hub's sha256 of a cached blob, else a sha256 of the file's identity */
  digest: string;
  /** undefined when the file is not a readable GGUF */
  header?: GgufHeader;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

export class ModelFileReader {
  /** by real path: the facts of the file as it was at `identity` */
  readonly #known = new Map<string, { identity: string; facts: ModelFileFacts }>();

  /** The facts of the spec's file; undefined when it has none that can be found (yet). */
  async read(spec: ModelSpec): Promise<ModelFileFacts | undefined> {
    const path = modelFileOf(spec);
    if (!path) return undefined;
    let identity;
    try {
      identity = await fileIdentity(path);
    } catch {
      return undefined;
    }
    const key = `${identity.path}:${identity.size}:${identity.mtimeMs}`;
    const known = this.#known.get(identity.path);
    if (known?.identity === key) return known.facts;
    const shards = await Promise.all(
      shardPaths(path).map((p) => Deno.stat(p).then((s) => s.size, () => 0)),
    );
    // a cache snapshot links to its blob, named by the Hub's sha256 of the file
    const blob = basename(identity.path);
    const facts: ModelFileFacts = {
      path,
      size: shards.reduce((a, b) => a + b, 0),
      modifiedAt: new Date(identity.mtimeMs),
      digest: SHA256_HEX.test(blob) ? blob : createHash("sha256").update(key).digest("hex"),
      header: await readModelHeader(path).catch(() => undefined),
    };
    this.#known.set(identity.path, { identity: key, facts });
    return facts;
  }
}
