/**
 * The files a launch reads and the cache key of its projection. A cache model's options name only
 * `--hf-repo` (and maybe `--hf-file`): its file is found in the HF cache as the engine, which runs
 * `--offline`, will find it. A changed file (size or mtime), other memory arguments, another engine
 * build or other visible GPUs make another key.
 */
import type { OptionMap } from "../flags/flags.ts";
import { cacheFileFor } from "../sources/hf_cache.ts";
import { FLAG } from "../sources/spec.ts";
import type { Env, MemoryArgs } from "./args.ts";
import { shardPaths } from "./gguf.ts";
import { fileIdentity, projectionKey } from "./projection.ts";

/** Environment variables that decide which GPUs an engine sees, and so where its layers go. */
const VISIBILITY_ENV = [
  "CUDA_VISIBLE_DEVICES",
  "HIP_VISIBLE_DEVICES",
  "ROCR_VISIBLE_DEVICES",
  "MUSA_VISIBLE_DEVICES",
  "GGML_VK_VISIBLE_DEVICES",
  "ONEAPI_DEVICE_SELECTOR",
];

/** The part of the environment that decides which GPUs are visible, as one text ("" when none). */
export function visibleDevices(env: Env): string {
  return VISIBILITY_ENV.filter((name) => env[name] !== undefined).map((name) => `${name}=${env[name]}`)
    .join(" ");
}

/** A model file that cannot be found; the message says where it was looked for. */
export class ModelFileError extends Error {
  override name = "ModelFileError";
}

/** The GGUF the engine loads: `--model`, or the cached file `--hf-repo`/`--hf-file` resolve to. */
export async function modelPath(options: OptionMap, args: MemoryArgs, cacheDir: string): Promise<string> {
  if (args.model) return args.model;
  const repo = options.get(FLAG.hfRepo);
  const file = options.get(FLAG.hfFile);
  if (typeof repo !== "string" || !repo) {
    throw new ModelFileError("the options name no model file (--model or --hf-repo)");
  }
  const hfFile = typeof file === "string" && file ? file : undefined;
  const found = await cacheFileFor(cacheDir, repo, hfFile);
  if (!found) {
    throw new ModelFileError(
      `-hf ${repo}${hfFile ? ` --hf-file ${hfFile}` : ""} is not in the cache ${cacheDir}`,
    );
  }
  return found;
}

/** Every file the projection reads: each shard of the model and of the draft, and the projector. */
export function projectedFiles(path: string, args: MemoryArgs): string[] {
  return [
    ...shardPaths(path),
    ...(args.draft ? shardPaths(args.draft.model) : []),
    ...(args.mmproj ? [args.mmproj.path] : []),
  ];
}

/** The cache key of a launch's projection. */
export async function launchKey(
  path: string,
  args: MemoryArgs,
  engineBuild: string,
  env: Env,
): Promise<string> {
  const files = await Promise.all(projectedFiles(path, args).map(fileIdentity));
  return projectionKey({ files, args, engineBuild, visibleDevices: visibleDevices(env) });
}
