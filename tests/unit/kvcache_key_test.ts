/** The cache key: the same for the same model, files and cache shape; another for any change that matters. */
import { keyParts, kvCacheKey } from "../../router/kvcache/key.ts";
import { memoryArgs, optionsFromArgv } from "../../router/memory/args.ts";
import type { FileIdentity } from "../../router/memory/projection.ts";
import { assert, assertEquals } from "../helpers/assert.ts";

const FILE: FileIdentity = { path: "/models/a.gguf", size: 1000, mtimeMs: 1 };

/** The key of a launch with these arguments (after `--model`), as the store reads a launch. */
function keyOf(
  argv: string[],
  opts: { id?: string; files?: FileIdentity[]; build?: string; env?: Record<string, string> } = {},
) {
  const options = optionsFromArgv(["--model", FILE.path, ...argv]);
  const args = memoryArgs(options, opts.env ?? {});
  return kvCacheKey(keyParts(opts.id ?? "a", args, options, opts.files ?? [FILE], opts.build ?? "b1-abc"));
}

Deno.test("a key is 16 hex digits and the same for the same launch, however it is spelled", () => {
  const key = keyOf(["-c", "4096", "-np", "2"]);
  assert(/^[0-9a-f]{16}$/.test(key), key);
  assertEquals(keyOf(["--ctx-size", "4096", "--parallel", "2"]), key);
  assertEquals(keyOf(["-c", "4096", "-np", "2", "-ctk", "f16"]), key, "the default KV type written out");
  // the env form stands in for an absent option, as the engine reads it
  assertEquals(keyOf(["-np", "2"], { env: { LLAMA_ARG_CTX_SIZE: "4096" } }), key);
});

Deno.test("what does not shape the cache does not change the key", () => {
  const key = keyOf(["-c", "4096"]);
  for (
    const extra of [["--temp", "0.2"], ["-b", "512"], ["-t", "3"], ["--metrics"], ["--slot-save-path", "/x"]]
  ) {
    assertEquals(keyOf(["-c", "4096", ...extra]), key, extra.join(" "));
  }
});

Deno.test("the model, its files, the engine build and the cache's shape each change the key", () => {
  const base = ["-c", "4096", "-np", "2"];
  const key = keyOf(base);
  const changed: Record<string, string> = {
    "another model id": keyOf(base, { id: "b" }),
    "the file changed": keyOf(base, { files: [{ ...FILE, mtimeMs: 2 }] }),
    "another engine build": keyOf(base, { build: "b2-def" }),
    "context": keyOf(["-c", "8192", "-np", "2"]),
    "slots": keyOf(["-c", "4096", "-np", "1"]),
    "a unified cache": keyOf([...base, "-kvu"]),
    "K type": keyOf([...base, "-ctk", "q8_0"]),
    "V type": keyOf([...base, "-ctv", "q8_0"]),
    "flash attention": keyOf([...base, "-fa", "on"]),
    "a full SWA cache": keyOf([...base, "--swa-full"]),
    "a LoRA adapter": keyOf([...base, "--lora", "/a/lora.gguf"]),
  };
  for (const [what, other] of Object.entries(changed)) assert(other !== key, what);
  assertEquals(
    new Set(Object.values(changed)).size,
    Object.keys(changed).length,
    "each change is its own key",
  );
  // the server's own slot count (no -np: 4 slots on one unified cache) is the same cache as asking for it
  assertEquals(keyOf(["-c", "4096"]), keyOf(["-c", "4096", "-np", "4", "-kvu"]));
});
