import { assertEquals, assertThrows } from "./sources_assert.ts";
import { canonicalModelName, canonicalTag, parseGgufName } from "../../router/sources/gguf_name.ts";
import { isSafeModelName } from "../../router/sources/names.ts";
import { resolveCacheDir } from "../../router/sources/cache_dir.ts";
import { SourceError } from "../../router/sources/types.ts";

Deno.test("tags follow llama.cpp's rules (reference doc examples)", () => {
  assertEquals(parseGgufName("gemma-3-4b-it-Q4_K_M.gguf")?.tag, "Q4_K_M");
  assertEquals(parseGgufName("ggml-model-f16.gguf")?.tag, "F16");
  assertEquals(parseGgufName("Foo-UD-Q4_K_XL.gguf")?.tag, "Q4_K_XL");
  assertEquals(parseGgufName("stories260K.gguf")?.tag, "");
  assertEquals(parseGgufName("model.Q8_0.gguf")?.tag, "Q8_0");
  assertEquals(parseGgufName("sub/dir/stories260K.gguf")?.tag, "", "a / is no tag separator");
  assertEquals(parseGgufName("README.md"), undefined);
  assertEquals(parseGgufName("x-Q4_0.GGUF"), undefined, ".gguf is case-sensitive");
});

Deno.test("shard suffixes are stripped before the tag", () => {
  assertEquals(parseGgufName("Big-Q8_0-00002-of-00003.gguf"), {
    prefix: "Big-Q8_0",
    tag: "Q8_0",
    index: 2,
    count: 3,
  });
  assertEquals(parseGgufName("Big-Q8_0-00001-OF-00003.gguf")?.index, 1, "case-insensitive");
  assertEquals(parseGgufName("plain-F16.gguf")?.count, 1);
});

Deno.test("section tags are canonicalised like cache tags", () => {
  assertEquals(canonicalTag("q4_k_m"), "Q4_K_M");
  assertEquals(canonicalTag("ud-q4_k_xl"), "Q4_K_XL");
  assertEquals(canonicalModelName("ggml-org/x-GGUF:q4_k_m"), "ggml-org/x-GGUF:Q4_K_M");
  assertEquals(canonicalModelName("a:b:ud-q8_0"), "a:b:Q8_0", "the last ':' splits");
  assertEquals(canonicalModelName("my-model"), "my-model");
});

Deno.test("isSafeModelName rejects traversal, absolute paths and control characters", () => {
  for (const ok of ["ggml-org/gemma-3-4b-it-GGUF:Q4_K_M", "my model", "a..b", "x/.hidden"]) {
    assertEquals(isSafeModelName(ok), true, ok);
  }
  for (
    const bad of [
      "",
      "..",
      "../x",
      "a/../b",
      "a\\..\\b",
      "/etc/passwd",
      "\\x",
      "C:\\x",
      "a\0b",
      "a\nb",
      "a\x7f",
    ]
  ) {
    assertEquals(isSafeModelName(bad), false, JSON.stringify(bad));
  }
});

Deno.test("resolveCacheDir follows hf-cache.cpp's order", () => {
  const all = {
    LLAMA_CACHE: "/l",
    HF_HUB_CACHE: "/hh",
    HUGGINGFACE_HUB_CACHE: "/hf",
    HF_HOME: "/home-hf",
    XDG_CACHE_HOME: "/xdg",
    HOME: "/home/u",
  };
  assertEquals(resolveCacheDir(all, "linux"), "/l", "LLAMA_CACHE is used as-is, no /hub");
  assertEquals(resolveCacheDir({ ...all, LLAMA_CACHE: "" }, "linux"), "/hh", "empty counts as unset");
  assertEquals(resolveCacheDir({ ...all, LLAMA_CACHE: undefined, HF_HUB_CACHE: undefined }, "linux"), "/hf");
  assertEquals(resolveCacheDir({ HF_HOME: "/home-hf", XDG_CACHE_HOME: "/xdg" }, "linux"), "/home-hf/hub");
  assertEquals(resolveCacheDir({ XDG_CACHE_HOME: "/xdg", HOME: "/h" }, "linux"), "/xdg/huggingface/hub");
  assertEquals(resolveCacheDir({ HOME: "/h" }, "linux"), "/h/.cache/huggingface/hub");
  assertEquals(
    resolveCacheDir({ HOME: "/h", USERPROFILE: "/w" }, "windows").replaceAll("\\", "/"),
    "/w/.cache/huggingface/hub",
  );
  assertEquals(resolveCacheDir({}, "linux").endsWith(".cache/huggingface/hub"), true, "passwd home fallback");
  assertThrows(() => resolveCacheDir({}, "windows"), SourceError);
});
