/**
 * Generates `router/flags/llama_flags.json` from llama.cpp's `common/arg.cpp`, so that the gateway
 * knows every llama-server option (spellings, negations, env name, whether it takes a value) without
 * running the engine.
 *
 * @example
 *   deno run -A scripts/gen_flag_table.ts ~/.cache/switchyard/engine/src/common/arg.cpp
 */
import { writeFileSync } from "node:fs";
import { readFileSync } from "node:fs";

export interface FlagDef {
  /** every positive spelling, as written in arg.cpp (e.g. ["-c", "--ctx-size"]) */
  names: string[];
  /** negative spellings (e.g. ["--no-mmap"]); empty when none */
  negs: string[];
  /** LLAMA_ARG_* (or other) environment variable, when one exists */
  env?: string;
  /** "none": a switch; "bool": a switch with negative spellings; "value": takes one value; "pair": takes two */
  kind: "none" | "bool" | "value" | "pair";
}

function stringsIn(list: string): string[] {
  return [...list.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
}

export function parseArgCpp(src: string): FlagDef[] {
  const flags: FlagDef[] = [];
  const blocks = src.split("add_opt(common_arg(").slice(1);
  for (const block of blocks) {
    // the block ends where the next add_opt starts; the option's examples come after the closing "))"
    const first = block.match(/^\s*\{([^{}]*)\}/);
    if (!first) continue;
    const names = stringsIn(first[1]);
    if (!names.every((n) => n.startsWith("-"))) continue;
    let negs: string[] = [];
    const afterFirst = block.slice(first[0].length);
    const second = afterFirst.match(/^\s*,\s*\{([^{}]*)\}/);
    if (second) {
      const s = stringsIn(second[1]);
      if (s.length && s.every((n) => n.startsWith("-"))) negs = s;
    }
    const lambda = block.match(/\[\]\s*\(common_params\s*&\s*\w*\s*(,[^)]*)?\)/);
    let kind: FlagDef["kind"] = "none";
    if (lambda?.[1]) {
      const params = lambda[1].split(",").filter((p) => p.trim());
      if (params.length >= 2) kind = "pair";
      else if (/\bbool\b/.test(params[0])) kind = "bool";
      else kind = "value";
    }
    if (negs.length && kind === "none") kind = "bool";
    // the setters chained after the constructor: everything up to the next statement that adds options
    const chain = block.split(/\badd_opt\(/)[0];
    const env = chain.match(/set_env\("([^"]+)"\)/)?.[1];
    const examples = chain.match(/set_examples\(\{([^}]*)\}\)/)?.[1];
    const excludes = chain.match(/set_excludes\(\{([^}]*)\}\)/)?.[1] ?? "";
    const inServer = !examples || /LLAMA_EXAMPLE_(SERVER|COMMON)\b/.test(examples);
    if (!inServer || /LLAMA_EXAMPLE_SERVER\b/.test(excludes)) continue;
    flags.push({ names, negs, env, kind });
  }
  return flags;
}

if (import.meta.main) {
  const path = Deno.args[0];
  if (!path) throw new Error("usage: gen_flag_table.ts <llama.cpp>/common/arg.cpp");
  const flags = parseArgCpp(readFileSync(path, "utf8"));
  writeFileSync(
    new URL("../router/flags/llama_flags.json", import.meta.url),
    JSON.stringify(flags, null, 0).replaceAll("},{", "},\n{") + "\n",
  );
  console.log(`wrote ${flags.length} llama-server options`);
}
