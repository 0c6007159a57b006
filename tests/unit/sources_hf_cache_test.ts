import { join } from "node:path";
import { mkdir, writeFile } from "node:fs/promises";
import { assertEquals } from "./sources_assert.ts";
import { COMMIT_A, COMMIT_B, withTempDir, writeHubRepo } from "./sources_fixture.ts";
import {
  cacheFileFor,
  isValidRepoId,
  resolveCachedFile,
  scanCache,
  scanCacheRepos,
} from "../../router/sources/hf_cache.ts";

const ids = async (cacheDir: string) => (await scanCache(cacheDir)).map((s) => s.id).sort();

Deno.test("cache ids: owner/repo:TAG per tag, untagged files unlisted", () =>
  withTempDir(async (cache) => {
    await writeHubRepo(cache, "ggml-org/gemma-3-4b-it-GGUF", {
      "gemma-3-4b-it-Q4_K_M.gguf": "q4",
      "gemma-3-4b-it-Q8_0.gguf": "q8",
      "README.md": "readme",
    });
    await writeHubRepo(cache, "ggml-org/models", {
      "ggml-model-f16.gguf": "f16",
      "tinyllamas/stories260K.gguf": "stories",
      "Foo-UD-Q4_K_XL.gguf": "ud",
    });
    assertEquals(await ids(cache), [
      "ggml-org/gemma-3-4b-it-GGUF:Q4_K_M",
      "ggml-org/gemma-3-4b-it-GGUF:Q8_0",
      "ggml-org/models:F16",
      "ggml-org/models:Q4_K_XL",
    ]);
    const spec = (await scanCache(cache)).find((s) => s.id === "ggml-org/models:F16")!;
    assertEquals(spec.source, "cache");
    assertEquals(spec.options, new Map([["--hf-repo", "ggml-org/models:F16"]]));
    assertEquals(spec.hidden, false);
    assertEquals(spec.cache?.repoDir, join(cache, "models--ggml-org--models"));
  }));

Deno.test("cache: shards list once, companions are skipped", () =>
  withTempDir(async (cache) => {
    await writeHubRepo(cache, "o/big", {
      "Big-Q8_0-00001-of-00002.gguf": "s1",
      "Big-Q8_0-00002-of-00002.gguf": "s2",
      "Big-F16-00002-of-00002.gguf": "orphan shard",
      "mmproj-Big-F16.gguf": "mm",
      "mtp-Big-Q4_0.gguf": "mtp",
      "eagle3-Big-Q4_0.gguf": "e3",
      "dflash-Big-Q4_0.gguf": "df",
      "dspark-Big-Q4_0.gguf": "ds",
      "Big.imatrix.gguf": "imatrix",
      "Q4_K_M/Big-Q4_K_M.gguf": "sub",
    });
    assertEquals(await ids(cache), ["o/big:Q4_K_M", "o/big:Q8_0"]);
    const q8 = (await scanCache(cache)).find((s) => s.id === "o/big:Q8_0")!;
    const snap = join(cache, "models--o--big", "snapshots", COMMIT_A);
    assertEquals(q8.cache?.files, [
      join(snap, "Big-Q8_0-00001-of-00002.gguf"),
      join(snap, "Big-Q8_0-00002-of-00002.gguf"),
    ]);
  }));

Deno.test("cache: same tag twice gives one id owning both files", () =>
  withTempDir(async (cache) => {
    await writeHubRepo(cache, "o/r", { "a-F16.gguf": "a", "b-f16.gguf": "b", "c-Q4_0.gguf": "c" });
    const specs = await scanCache(cache);
    assertEquals(specs.map((s) => s.id), ["o/r:F16", "o/r:Q4_0"]);
    assertEquals(specs[0].cache?.files.map((f) => f.split("/").pop()), ["a-F16.gguf", "b-f16.gguf"]);
  }));

Deno.test("cache: the only model of a snapshot owns its companions, not other untagged models", () =>
  withTempDir(async (cache) => {
    await writeHubRepo(cache, "o/vision", {
      "v-Q4_K_M.gguf": "m",
      "mmproj-v-F16.gguf": "mm",
      "README.md": "r",
      "stories260K.gguf": "s",
    });
    const [spec] = await scanCache(cache);
    assertEquals(spec.cache?.files.map((f) => f.split("/").pop()), [
      "README.md",
      "mmproj-v-F16.gguf",
      "v-Q4_K_M.gguf",
    ]);
  }));

Deno.test("cache: refs/main wins, another valid ref is the fallback, other snapshots are ignored", () =>
  withTempDir(async (cache) => {
    await writeHubRepo(cache, "o/old", { "m-Q4_0.gguf": "old" }, { commit: COMMIT_A, refs: {} });
    await writeHubRepo(cache, "o/old", { "m-Q8_0.gguf": "new" }, {
      commit: COMMIT_B,
      refs: { main: COMMIT_B },
    });
    await writeHubRepo(cache, "o/branch", { "m-F16.gguf": "x" }, { refs: { dev: COMMIT_A } });
    await writeHubRepo(cache, "o/noref", { "m-F16.gguf": "x" }, { refs: {} });
    await writeHubRepo(cache, "o/badref", { "m-F16.gguf": "x" }, { refs: { main: "not-a-commit" } });
    await writeHubRepo(cache, "o/gone", { "m-F16.gguf": "x" }, { refs: { main: COMMIT_B } });
    assertEquals(await ids(cache), ["o/branch:F16", "o/old:Q8_0"]);
  }));

Deno.test("cache: foreign folders and a missing cache are ignored", () =>
  withTempDir(async (cache) => {
    assertEquals(await ids(join(cache, "nope")), []);
    await writeHubRepo(cache, "o/ok", { "m-F16.gguf": "x" });
    await mkdir(join(cache, "datasets--o--d", "snapshots"), { recursive: true });
    await mkdir(join(cache, "models--bad..name", "snapshots"), { recursive: true });
    await mkdir(join(cache, "models--no-snapshots"), { recursive: true });
    await writeFile(join(cache, "version.txt"), "1");
    assertEquals(await ids(cache), ["o/ok:F16"]);
  }));

Deno.test("isValidRepoId follows llama.cpp", () => {
  for (const ok of ["a/b", "ggml-org/gemma-3-4b-it-GGUF", "a_b/c.d"]) {
    assertEquals(isValidRepoId(ok), true, ok);
  }
  for (const bad of ["a", "a/b/c", "a//b", "-a/b", "a/b-", "a/b c", "a--b/c.", ""]) {
    assertEquals(isValidRepoId(bad), false, bad);
  }
});

Deno.test("resolveCachedFile mirrors -hf offline resolution", () =>
  withTempDir(async (cache) => {
    await writeHubRepo(cache, "o/r", {
      "m-F16.gguf": "f",
      "m-Q4_K_M.gguf": "q4",
      "mmproj-m-Q4_K_M.gguf": "mm",
      "m-Q8_0-00001-of-00002.gguf": "a",
      "m-Q8_0-00002-of-00002.gguf": "b",
    });
    const repos = await scanCacheRepos(cache);
    const snap = join(cache, "models--o--r", "snapshots", COMMIT_A);
    assertEquals(resolveCachedFile(repos, "o/r:q4_k_m"), join(snap, "m-Q4_K_M.gguf"));
    assertEquals(resolveCachedFile(repos, "o/r"), join(snap, "m-Q4_K_M.gguf"), "no tag prefers Q4_K_M");
    assertEquals(resolveCachedFile(repos, "o/r:Q8_0"), join(snap, "m-Q8_0-00001-of-00002.gguf"));
    assertEquals(resolveCachedFile(repos, "o/r:Q2_K"), undefined);
    assertEquals(resolveCachedFile(repos, "o/r", "m-F16.gguf"), join(snap, "m-F16.gguf"));
    assertEquals(resolveCachedFile(repos, "o/other:F16"), undefined);
    assertEquals(resolveCachedFile(repos, "not-a-repo"), undefined);
    assertEquals(await cacheFileFor(cache, "o/r:F16"), join(snap, "m-F16.gguf"));
  }));
