/** Where the Hugging Face hub cache lives, located exactly as llama.cpp's `hf-cache.cpp` does. */
import { homedir } from "node:os";
import { join } from "node:path";
import { SourceError } from "./types.ts";

type Env = Record<string, string | undefined>;

/**
 * The hub cache root: the first non-empty of `LLAMA_CACHE`, `HF_HUB_CACHE`,
 * `HUGGINGFACE_HUB_CACHE` (all used as-is), `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub`,
 * `$HOME/.cache/huggingface/hub` (`%USERPROFILE%` on Windows), then the account's home directory.
 *
 * @example
 * resolveCacheDir({ HF_HOME: "/data/hf" }); // "/data/hf/hub"
 */
export function resolveCacheDir(env: Env, platform: string = Deno.build.os): string {
  const homeVar = platform === "windows" ? "USERPROFILE" : "HOME";
  const entries: [string, string[]][] = [
    ["LLAMA_CACHE", []],
    ["HF_HUB_CACHE", []],
    ["HUGGINGFACE_HUB_CACHE", []],
    ["HF_HOME", ["hub"]],
    ["XDG_CACHE_HOME", ["huggingface", "hub"]],
    [homeVar, [".cache", "huggingface", "hub"]],
  ];
  for (const [name, rest] of entries) {
    const base = env[name];
    if (base) return rest.length ? join(base, ...rest) : base;
  }
  // llama.cpp falls back to the passwd entry when HOME is unset; node's homedir() does the same.
  const home = platform === "windows" ? "" : homedir();
  if (home) return join(home, ".cache", "huggingface", "hub");
  throw new SourceError("failed to determine the HF cache directory (set LLAMA_CACHE or HF_HOME)");
}
