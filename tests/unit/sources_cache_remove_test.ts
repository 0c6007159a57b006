import { join } from "node:path";
import { readdir, writeFile } from "node:fs/promises";
import { assertEquals, assertRejects } from "./sources_assert.ts";
import { COMMIT_A, COMMIT_B, exists, withTempDir, writeHubRepo } from "./sources_fixture.ts";
import { removeCacheModel, scanCache } from "../../router/sources/hf_cache.ts";
import { newSpec } from "../../router/sources/spec.ts";
import { SourceError } from "../../router/sources/types.ts";

async function find(cache: string, id: string) {
  const spec = (await scanCache(cache)).find((s) => s.id === id);
  if (!spec) throw new Error(`no ${id}`);
  return spec;
}

Deno.test("removeCacheModel keeps blobs still used by other files and the other models", () =>
  withTempDir(async (cache) => {
    // identical content: both snapshot entries point at one blob
    const repoDir = await writeHubRepo(cache, "o/r", {
      "m-F16.gguf": "same bytes",
      "copy-BF16.gguf": "same bytes",
      "m-Q4_0.gguf": "q4 bytes",
      "mmproj-m-F16.gguf": "projector",
    });
    const snap = join(repoDir, "snapshots", COMMIT_A);
    const blobsBefore = (await readdir(join(repoDir, "blobs"))).length;

    const removed = await removeCacheModel(await find(cache, "o/r:F16"));
    assertEquals(removed, [join(snap, "m-F16.gguf")], "the shared blob stays");
    assertEquals((await readdir(join(repoDir, "blobs"))).length, blobsBefore);
    assertEquals(await exists(join(snap, "mmproj-m-F16.gguf")), true, "mmproj may serve the other models");

    const q4 = await removeCacheModel(await find(cache, "o/r:Q4_0"));
    assertEquals(q4.length, 2, "snapshot entry and its own blob");
    assertEquals((await scanCache(cache)).map((s) => s.id), ["o/r:BF16"]);
    assertEquals(await exists(join(repoDir, "refs", "main")), true);
  }));

Deno.test("removing a repo's last model removes the repo folder and nothing else", () =>
  withTempDir(async (cache) => {
    const repoDir = await writeHubRepo(cache, "o/r", {
      "m-Q4_K_M.gguf": "q4",
      "sub/mmproj-m-F16.gguf": "mm",
      "README.md": "readme",
    });
    const otherRepo = await writeHubRepo(cache, "o/other", { "m-Q4_K_M.gguf": "q4" });
    await writeFile(join(cache, "unrelated.txt"), "keep");

    await removeCacheModel(await find(cache, "o/r:Q4_K_M"));
    assertEquals(await exists(repoDir), false);
    assertEquals(
      await exists(join(otherRepo, "blobs")),
      true,
      "the same content in another repo is its own blob",
    );
    assertEquals((await scanCache(cache)).map((s) => s.id), ["o/other:Q4_K_M"]);
    assertEquals(await exists(join(cache, "unrelated.txt")), true);
  }));

Deno.test("removeCacheModel keeps a blob an older snapshot still points at", () =>
  withTempDir(async (cache) => {
    const repoDir = await writeHubRepo(cache, "o/r", { "m-Q8_0.gguf": "shared" }, {
      commit: COMMIT_B,
      refs: {},
    });
    await writeHubRepo(cache, "o/r", { "m-Q8_0.gguf": "shared", "m-F16.gguf": "f16" });
    await removeCacheModel(await find(cache, "o/r:Q8_0"));
    assertEquals(await exists(join(repoDir, "snapshots", COMMIT_B, "m-Q8_0.gguf")), true);
    assertEquals((await readdir(join(repoDir, "blobs"))).length, 2, "shared blob and F16 blob");
  }));

Deno.test("removing a snapshot's last files drops the refs to it, keeps other snapshots", () =>
  withTempDir(async (cache) => {
    const repoDir = await writeHubRepo(cache, "o/r", { "m-Q8_0.gguf": "old" }, {
      commit: COMMIT_B,
      refs: {},
    });
    await writeHubRepo(cache, "o/r", { "m-F16.gguf": "new" });
    const removed = await removeCacheModel(await find(cache, "o/r:F16"));
    assertEquals(removed.includes(join(repoDir, "refs", "main")), true);
    assertEquals(await exists(join(repoDir, "snapshots", COMMIT_A)), false);
    assertEquals(await exists(join(repoDir, "snapshots", COMMIT_B, "m-Q8_0.gguf")), true);
    assertEquals(await exists(join(repoDir, "refs")), false, "refs/ emptied");
  }));

Deno.test("removeCacheModel refuses what the scan could not have produced", () =>
  withTempDir(async (cache) => {
    await assertRejects(
      () => removeCacheModel(newSpec("m", "models_dir", new Map())),
      SourceError,
      "not removable",
    );
    const repoDir = await writeHubRepo(cache, "o/r", { "m-F16.gguf": "x" });
    await writeFile(join(cache, "victim.txt"), "keep");
    const spec = await find(cache, "o/r:F16");
    spec.cache!.files.push(join(cache, "victim.txt"), join(repoDir, "snapshots", "..", "..", "victim.txt"));
    await removeCacheModel(spec);
    assertEquals(await exists(join(cache, "victim.txt")), true);
  }));
