import { join } from "node:path";
import { assert, assertEquals, assertRejects } from "./sources_assert.ts";
import { withTempDir, writeFiles } from "./sources_fixture.ts";
import { scanModelsDir } from "../../router/sources/models_dir.ts";
import { SourceError } from "../../router/sources/types.ts";
import { lookupFlag } from "../../router/flags/flags.ts";

const asObject = (dir: string, models: Awaited<ReturnType<typeof scanModelsDir>>["models"]) =>
  Object.fromEntries(
    models.map((m) => [
      m.id,
      Object.fromEntries([...m.options].map(([k, v]) => [k, String(v).replace(dir + "/", "")])),
    ]),
  );

Deno.test("models-dir: top-level files, companions skipped, shards grouped", () =>
  withTempDir(async (dir) => {
    await writeFiles(dir, [
      "llama-3.2-1b-Q4_K_M.gguf",
      "mmproj-llama.gguf",
      "vision-mmproj-f16.gguf",
      "mtp-llama.gguf",
      "dspark-x.gguf",
      "dflash-x.gguf",
      "big-00001-of-00002.gguf",
      "big-00002-of-00002.gguf",
      "notes.txt",
    ]);
    const { models, warnings } = await scanModelsDir(dir);
    assertEquals(asObject(dir, models), {
      "big": { "--model": "big-00001-of-00002.gguf" },
      "llama-3.2-1b-Q4_K_M": { "--model": "llama-3.2-1b-Q4_K_M.gguf" },
    });
    assertEquals(warnings, []);
    assert(models.every((m) => m.source === "models_dir" && !m.cache && !m.hidden));
  }));

Deno.test("models-dir: subfolders with mmproj, draft and shards", () =>
  withTempDir(async (dir) => {
    await writeFiles(dir, [
      "gemma/gemma-3-4b-it-Q4_K_M.gguf",
      "gemma/mmproj-gemma-f16.gguf",
      "qwen/mtp-qwen.gguf",
      "qwen/dflash-qwen.gguf",
      "qwen/qwen-Q8_0-00001-of-00003.gguf",
      "qwen/qwen-Q8_0-00002-of-00003.gguf",
      "qwen/qwen-Q8_0-00003-of-00003.gguf",
      "empty/readme.md",
      "deep/nested/x.gguf",
    ]);
    const { models } = await scanModelsDir(dir);
    assertEquals(asObject(dir, models), {
      gemma: { "--model": "gemma/gemma-3-4b-it-Q4_K_M.gguf", "--mmproj": "gemma/mmproj-gemma-f16.gguf" },
      qwen: { "--model": "qwen/qwen-Q8_0-00001-of-00003.gguf", "--model-draft": "qwen/dflash-qwen.gguf" },
    });
    assertEquals(
      lookupFlag("--spec-draft-model")?.option.flag,
      "--model-draft",
      "stored under the canonical flag",
    );
  }));

Deno.test("models-dir: incomplete shards, several model files and name clashes warn", () =>
  withTempDir(async (dir) => {
    await writeFiles(dir, [
      "half-00002-of-00002.gguf",
      "part-00001-of-00003.gguf",
      "two/a-Q4_0.gguf",
      "two/b-Q8_0.gguf",
      "same.gguf",
      "same/same-F16.gguf",
      "bad\nname.gguf",
    ]);
    const { models, warnings } = await scanModelsDir(dir);
    assertEquals(models.map((m) => m.id), ["part", "same", "two"]);
    assertEquals(
      models.find((m) => m.id === "same")?.options.get("--model"),
      join(dir, "same.gguf"),
      "the first in path order wins",
    );
    assertEquals(warnings.length, 5, warnings.join("\n"));
    assert(warnings.some((w) => w.includes("usable model name")));
    assert(warnings.some((w) => w.includes("'half' have no first shard")));
    assert(warnings.some((w) => w.includes("'part' has 1 of 3 shards")));
    assert(warnings.some((w) => w.includes("several model files")));
    assert(warnings.some((w) => w.includes("are both model 'same'")));
  }));

Deno.test("models-dir: a missing dir or a file is an error", () =>
  withTempDir(async (dir) => {
    const missing = join(dir, "nope");
    await assertRejects(
      () => scanModelsDir(missing),
      SourceError,
      `'${missing}' does not exist or is not a directory`,
    );
    await writeFiles(dir, ["file.gguf"]);
    await assertRejects(() => scanModelsDir(join(dir, "file.gguf")), SourceError, "is not a directory");
  }));
