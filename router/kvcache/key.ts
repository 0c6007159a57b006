/**
 * The cache key of a model's saved slots: what a saved KV cache is only valid for. A file saved under
 * one key is never restored under another: another model file (its size or mtime changed), another
 * engine build, or another shape of the cache (context, slots, unified or not, KV types, flash
 * attention's V layout, SWA) make another key, and the old files are dropped.
 */
import { createHash } from "node:crypto";
import type { OptionMap } from "../flags/flags.ts";
import { type Env, type MemoryArgs, memoryArgs, optionsFromArgv } from "../memory/args.ts";
import { shardPaths } from "../memory/gguf.ts";
import { modelPath } from "../memory/model_files.ts";
import { type FileIdentity, fileIdentity } from "../memory/projection.ts";
import type { EngineLaunch } from "../../runners/protocol.ts";

/** Everything a saved cache depends on. */
export interface KvCacheKeyParts {
  modelId: string;
  /** `build_info` of the engine: its state file format is its own */
  engineBuild: string;
  /** each shard of the model, and the projector */
  files: readonly FileIdentity[];
  ctx: number;
  parallel: number;
  kvUnified: boolean;
  cacheTypeK: string;
  cacheTypeV: string;
  flashAttn: string;
  swaFull: boolean;
  /** `--override-kv`, `--lora`, `--lora-scaled`, `--control-vector*` as given: they change what the cache holds */
  contentOptions: string;
}

/** Options that change the cache's contents without changing its shape. */
const CONTENT_FLAGS = [
  "--override-kv",
  "--lora",
  "--lora-scaled",
  "--control-vector",
  "--control-vector-scaled",
  "--control-vector-layer-range",
];

/**
 * The key's parts from a launch's arguments (as `memoryArgs` reads them) and its files' identities.
 *
 * @example
 * keyParts("a", memoryArgs(new Map([["--ctx-size", "4096"]])), new Map(), [], "b1-abc").ctx; // 4096
 */
export function keyParts(
  modelId: string,
  args: MemoryArgs,
  options: OptionMap,
  files: readonly FileIdentity[],
  engineBuild: string,
): KvCacheKeyParts {
  return {
    modelId,
    engineBuild,
    files,
    ctx: args.ctx,
    parallel: args.parallel,
    kvUnified: args.kvUnified,
    cacheTypeK: args.cacheTypeK,
    cacheTypeV: args.cacheTypeV,
    flashAttn: args.flashAttn,
    swaFull: args.swaFull,
    contentOptions: CONTENT_FLAGS.filter((f) => options.has(f)).map((f) => `${f}=${options.get(f)}`).join(
      "\n",
    ),
  };
}

/**
 * The key: 16 hex digits of the sha256 of the parts, written in a fixed order.
 *
 * @example
 * kvCacheKey(parts) === kvCacheKey({ ...parts }); // true: equal parts, equal key
 */
export function kvCacheKey(parts: KvCacheKeyParts): string {
  const text = JSON.stringify([
    parts.modelId,
    parts.engineBuild,
    parts.files.map((f) => [f.path, f.size, f.mtimeMs]),
    parts.ctx,
    parts.parallel,
    parts.kvUnified,
    parts.cacheTypeK,
    parts.cacheTypeV,
    parts.flashAttn,
    parts.swaFull,
    parts.contentOptions,
  ]);
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/** What reading a launch's key needs besides the launch. */
export interface LaunchKeyContext {
  engineBuild: string;
  /** the environment engines inherit: `LLAMA_ARG_*` stand in for absent options */
  env: Env;
  /** the HF cache, where `-hf` models' files are */
  hfCacheDir: string;
}

/** The key of a launch as it runs: its arguments, and the identity of the files it loads (I/O). */
export async function launchKey(
  modelId: string,
  launch: EngineLaunch,
  ctx: LaunchKeyContext,
): Promise<string> {
  const options = optionsFromArgv(launch.args);
  const env = { ...ctx.env, ...launch.env };
  const args = memoryArgs(options, env);
  const path = await modelPath(options, args, ctx.hfCacheDir);
  const paths = [...shardPaths(path), ...(args.mmproj ? [args.mmproj.path] : [])];
  const files = await Promise.all(paths.map(fileIdentity));
  return kvCacheKey(keyParts(modelId, args, options, files, ctx.engineBuild));
}

/** How many slots the launch runs (the server's own count when `-np` is not given). */
export function slotCount(launch: EngineLaunch, env: Env): number {
  return memoryArgs(optionsFromArgv(launch.args), { ...env, ...launch.env }).parallel;
}
