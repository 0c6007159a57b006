/** Which file a model spec loads, for whoever needs to read it (Ollama's details, a failed load's check). */
import { isHfModelFile, parseGgufName } from "./gguf_name.ts";
import { FLAG } from "./spec.ts";
import type { ModelSpec } from "./types.ts";

/** The GGUF a spec loads: `--model`, or the first shard of its cached model file. */
export function modelFileOf(spec: ModelSpec): string | undefined {
  const model = spec.options.get(FLAG.model);
  if (typeof model === "string" && model) return model;
  return spec.cache?.files.find((f) => isHfModelFile(f) && (parseGgufName(f)?.index ?? 1) === 1);
}
