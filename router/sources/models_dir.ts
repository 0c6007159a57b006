/**
 * Models in `--models-dir`, found as llama.cpp's `load_from_models_dir` finds them (no recursion):
 * - a top-level `X.gguf` is model `X` (every `.gguf` removed from the name); names containing
 *   `mmproj` or starting with `mtp-`, `dspark-`, `dflash-` are companions and skipped;
 * - a subfolder `X` is model `X`: its `-00001-of-` shard, else its model file, plus the mmproj (a
 *   name containing `mmproj`, the last one seen) and the draft (the first `mtp-`/`dspark-`/`dflash-`).
 *
 * Deviations, each for a model list that loads:
 * - top-level multi-shard files are one model named after the shard prefix (`X-00001-of-00003.gguf`
 *   gives `X`, loaded from its first shard); llama.cpp lists every shard as a model of its own,
 *   and only the first of them can load;
 * - later shards are never taken as a subfolder's model file, and name clashes (`X.gguf` beside
 *   folder `X`) keep the first in sorted order with a warning instead of silently the last;
 * - names that `isSafeModelName` refuses (control characters, `.gguf` alone) are skipped.
 *
 * Paths are `models-dir/name`: a relative `--models-dir` gives relative paths, resolved against the
 * router's working directory, as in llama.cpp.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { FLAG, newSpec } from "./spec.ts";
import { isDraftFileName, isMmprojFileName, parseGgufName } from "./gguf_name.ts";
import { isSafeModelName } from "./names.ts";
import { type ModelSpec, SourceError } from "./types.ts";

export interface ModelsDirScan {
  models: ModelSpec[];
  warnings: string[];
}

interface LocalModel {
  name: string;
  path: string;
  mmproj?: string;
  draft?: string;
}

/** Lists the models of a `--models-dir`; a missing or non-directory path is a `SourceError`. */
export async function scanModelsDir(dir: string): Promise<ModelsDirScan> {
  const st = await stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new SourceError(`'${dir}' does not exist or is not a directory`, dir);

  const warnings: string[] = [];
  const found: LocalModel[] = [];
  const shards = new Map<string, { name: string; count: number; files: Map<number, string> }>();
  for (const { name, path, isDir } of await listEntries(dir)) {
    if (isDir) {
      const model = await scanSubdir(path, name, warnings);
      if (model) found.push(model);
      continue;
    }
    if (!name.endsWith(".gguf") || isMmprojFileName(name) || isDraftFileName(name)) continue;
    const split = parseGgufName(name)!;
    if (split.count <= 1) {
      found.push({ name: name.replaceAll(".gguf", ""), path });
      continue;
    }
    const key = `${split.prefix}\0${split.count}`;
    const group = shards.get(key) ??
      { name: split.prefix.replaceAll(".gguf", ""), count: split.count, files: new Map() };
    group.files.set(split.index, path);
    shards.set(key, group);
  }
  for (const group of shards.values()) {
    const first = group.files.get(1);
    if (!first) {
      warnings.push(`models-dir: shards of '${group.name}' have no first shard (-00001-of-); skipped`);
      continue;
    }
    if (group.files.size !== group.count) {
      warnings.push(`models-dir: '${group.name}' has ${group.files.size} of ${group.count} shards`);
    }
    found.push({ name: group.name, path: first });
  }

  const byName = new Map<string, LocalModel>();
  for (const model of found.sort((a, b) => cmp(a.path, b.path))) {
    if (!isSafeModelName(model.name)) {
      warnings.push(`models-dir: ${JSON.stringify(model.path)} does not make a usable model name; skipped`);
      continue;
    }
    const other = byName.get(model.name);
    if (other) {
      warnings.push(
        `models-dir: '${model.path}' and '${other.path}' are both model '${model.name}'; using the first`,
      );
      continue;
    }
    byName.set(model.name, model);
  }
  const models = [...byName.values()].map((m) => {
    const options = new Map<string, string>([[FLAG.model, m.path]]);
    if (m.mmproj) options.set(FLAG.mmproj, m.mmproj);
    if (m.draft) options.set(FLAG.draft, m.draft);
    return newSpec(m.name, "models_dir", options);
  });
  return { models, warnings };
}

async function scanSubdir(dir: string, name: string, warnings: string[]): Promise<LocalModel | undefined> {
  let firstShard: string | undefined;
  let mmproj: string | undefined;
  let draft: string | undefined;
  const modelFiles: string[] = [];
  for (const file of await listEntries(dir)) {
    if (file.isDir || !file.name.endsWith(".gguf")) continue;
    if (isMmprojFileName(file.name)) mmproj = file.path;
    else if (isDraftFileName(file.name)) draft ??= file.path;
    else if (file.name.includes("-00001-of-")) firstShard = file.path;
    else if (parseGgufName(file.name)!.count <= 1) modelFiles.push(file.path);
  }
  const path = firstShard ?? modelFiles[modelFiles.length - 1];
  if (!firstShard && modelFiles.length > 1) {
    warnings.push(`models-dir: '${dir}' holds several model files; using '${path}'`);
  }
  return path ? { name, path, mmproj, draft } : undefined;
}

/** Sorted entries, symlinks followed (as llama.cpp's `fs_list`); unreadable entries are skipped. */
async function listEntries(dir: string): Promise<{ name: string; path: string; isDir: boolean }[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).sort(cmp);
  const out: { name: string; path: string; isDir: boolean }[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const st = await stat(path).catch(() => undefined);
    if (st?.isDirectory()) out.push({ name, path, isDir: true });
    else if (st?.isFile()) out.push({ name, path, isDir: false });
  }
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
