/**
 * llama-server's single-model command line (`-m model.gguf`, `-hf owner/repo[:quant]`, `--hf-file`,
 * `-mu URL`) as an entry of the model table: the default model, which requests without a known
 * `model` go to. Named as llama-server names it (`server_context` and `common_params_model::get_name`):
 * the first alias in sorted order, else the Hub repo, else the path or URL as given.
 */
import type { OptionMap } from "../flags/flags.ts";
import { FLAG, newSpec, splitList } from "./spec.ts";
import type { ModelSpec } from "./types.ts";

export function singleModelSpec(identity: OptionMap): ModelSpec {
  const aliases = splitList(identity.get(FLAG.alias)).sort();
  const source = [FLAG.hfRepo, FLAG.model, "--model-url"].map((f) => identity.get(f))
    .find((v): v is string => typeof v === "string" && v !== "");
  if (!source) throw new Error("a single-model command line needs -m, -hf or -mu");
  const spec = newSpec(aliases[0] ?? source, "cli", new Map(identity));
  // llama-server lists every alias, its name among them; the catalog turns the option into `aliases`
  spec.tags = splitList(identity.get(FLAG.tags));
  return spec;
}
