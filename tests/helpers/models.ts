/** Builds model folders for tests out of tiny real GGUF models (see tests/fixtures/gguf.ts). */
import { join } from "node:path";
import { tinyLlamaGguf, type TinyModelOptions } from "../fixtures/gguf.ts";
import { writeHubSnapshot } from "./hf_cache.ts";

let cached: Uint8Array | undefined;

/** One tiny model's bytes, made once per test process (models differ by name, not by weights). */
function tinyModel(opts?: TinyModelOptions): Uint8Array {
  if (opts) return tinyLlamaGguf(opts);
  return cached ??= tinyLlamaGguf({ seed: 7 });
}

/** A `--models-dir` with one top-level `<name>.gguf` per name. */
export async function makeModelsDir(names: string[], opts?: TinyModelOptions): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "switchyard-models-" });
  for (const name of names) await Deno.writeFile(join(dir, `${name}.gguf`), tinyModel(opts));
  return dir;
}

/**
 * Places a model in a Hugging Face hub cache as `llama-server -hf` leaves it: the file as a blob,
 * a snapshot link to it and `refs/main`. Returns the snapshot file's path.
 */
export async function addToHfCache(
  cacheDir: string,
  repo: string,
  file: string,
  bytes?: Uint8Array,
): Promise<string> {
  const commit = "0123456789abcdef0123456789abcdef01234567";
  const repoDir = await writeHubSnapshot(cacheDir, repo, { [file]: bytes ?? tinyModel() }, { commit });
  return join(repoDir, "snapshots", commit, file);
}

/** Engines and runners still alive, by command line (for orphan checks). */
export async function liveEngines(marker: string): Promise<number[]> {
  const out = await new Deno.Command("pgrep", { args: ["-f", marker], stdout: "piped", stderr: "null" })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map(Number);
}
