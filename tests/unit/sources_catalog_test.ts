import { join } from "node:path";
import { assert, assertEquals, assertRejects } from "./sources_assert.ts";
import { withTempDir, writeFiles, writeHubRepo } from "./sources_fixture.ts";
import { findModel, isSafeModelName, loadCatalog } from "../../router/sources/catalog.ts";
import { renderPresetText } from "../../router/sources/preset.ts";
import { SourceError } from "../../router/sources/types.ts";

interface World {
  cacheDir: string;
  modelsDir: string;
  presetFile: string;
}

/** A cache with two repos, a models dir with two models, and the given preset text. */
async function world(root: string, preset: string): Promise<World> {
  const cacheDir = join(root, "hub");
  const modelsDir = join(root, "models");
  const presetFile = join(root, "preset.ini");
  await writeHubRepo(cacheDir, "ggml-org/gemma-3-4b-it-GGUF", {
    "gemma-3-4b-it-Q4_K_M.gguf": "q4",
    "gemma-3-4b-it-Q8_0.gguf": "q8",
  });
  await writeHubRepo(cacheDir, "o/tiny", { "tiny-F16.gguf": "f16" });
  await writeFiles(modelsDir, [
    "local-Q4_0.gguf",
    "vision/v.gguf",
    "vision/mmproj-v.gguf",
  ]);
  await Deno.writeTextFile(presetFile, preset);
  return { cacheDir, modelsDir, presetFile };
}

const byId = (models: { id: string }[]) => models.map((m) => m.id);

Deno.test("catalog merges cache, models-dir and preset as llama.cpp does", () =>
  withTempDir(async (root) => {
    const w = await world(
      root,
      [
        "[*]",
        "ctx-size = 2048",
        "n-gpu-layers = 10",
        "",
        "[ggml-org/gemma-3-4b-it-GGUF:q4_k_m]",
        "ctx-size = 8192",
        "",
        "[vision]",
        "LLAMA_ARG_N_GPU_LAYERS = 99",
        "",
        "[remote]",
        "hf-repo = ggml-org/other-GGUF:Q8_0",
        "alias = r1, r2",
        "tags = chat,small",
        "load-on-startup = true",
        "stop-timeout = 3",
      ].join("\n"),
    );
    const { models, warnings } = await loadCatalog(w);
    assertEquals(warnings, []);
    assertEquals(byId(models), [
      "ggml-org/gemma-3-4b-it-GGUF:Q4_K_M",
      "ggml-org/gemma-3-4b-it-GGUF:Q8_0",
      "local-Q4_0",
      "o/tiny:F16",
      "remote",
      "vision",
    ]);
    const get = (id: string) => models.find((m) => m.id === id)!;

    const q4 = get("ggml-org/gemma-3-4b-it-GGUF:Q4_K_M");
    assertEquals(
      [q4.source, q4.cache],
      ["preset", undefined],
      "a section makes a cache entry a preset entry",
    );
    assertEquals(q4.options.get("--hf-repo"), q4.id);
    assertEquals(q4.options.get("--ctx-size"), "8192", "section beats [*]");
    assertEquals(q4.options.get("--n-gpu-layers"), "10", "[*] reaches sections");

    const q8 = get("ggml-org/gemma-3-4b-it-GGUF:Q8_0");
    assertEquals(q8.source, "cache");
    assert(q8.cache);
    assertEquals(q8.options.get("--ctx-size"), "2048", "[*] reaches pure cache entries");

    // (models-dir names never hold a '/', so they cannot replace a cache id in practice)
    assertEquals(get("local-Q4_0").options.get("--model"), join(w.modelsDir, "local-Q4_0.gguf"));

    const vision = get("vision");
    assertEquals(vision.source, "preset");
    assertEquals(vision.options.get("--mmproj"), join(w.modelsDir, "vision", "mmproj-v.gguf"));
    assertEquals(vision.options.get("--n-gpu-layers"), "99");

    const remote = get("remote");
    assertEquals([remote.aliases, remote.tags], [["r1", "r2"], ["chat", "small"]]);
    assertEquals(remote.options.has("--alias"), false, "aliases live on the spec, the child gets the id");
    assertEquals(remote.options.get("--tags"), "chat,small");
    assertEquals([remote.loadOnStartup, remote.stopTimeoutS], [true, 3]);
    assertEquals([q8.loadOnStartup, q8.stopTimeoutS], [false, 10]);
    assertEquals(
      renderPresetText(remote),
      "[remote]\nctx-size = 2048\nhf-repo = ggml-org/other-GGUF:Q8_0\nn-gpu-layers = 10\n" +
        "load-on-startup = true\nstop-timeout = 3\n\n",
    );
  }));

Deno.test("catalog: generated keys beat [*], preset-only keys from [*] reach every model", () =>
  withTempDir(async (root) => {
    const w = await world(root, "[*]\nmmproj = /global-mmproj.gguf\nload-on-startup = 1\nstop-timeout = 7\n");
    const { models } = await loadCatalog(w);
    const vision = models.find((m) => m.id === "vision")!;
    assertEquals(vision.options.get("--mmproj"), join(w.modelsDir, "vision", "mmproj-v.gguf"));
    assertEquals(models.find((m) => m.id === "local-Q4_0")!.options.get("--mmproj"), "/global-mmproj.gguf");
    assert(models.every((m) => m.loadOnStartup && m.stopTimeoutS === 7));
  }));

Deno.test("catalog: pin, priority and ttl reach every model from [*], a section's own winning", () =>
  withTempDir(async (root) => {
    const w = await world(root, "[*]\npin = true\npriority = 2\n\n[local-Q4_0]\npin = false\nttl = 30\n");
    const { models } = await loadCatalog(w);
    const local = models.find((m) => m.id === "local-Q4_0")!;
    assertEquals([local.pinned, local.priority, local.ttlS], [false, 2, 30]);
    const others = models.filter((m) => m !== local);
    assert(others.length > 0 && others.every((m) => m.pinned && m.priority === 2 && m.ttlS === undefined));
    assert(
      renderPresetText(local).endsWith("pin = false\npriority = 2\nttl = 30\n\n"),
      renderPresetText(local),
    );
    await Deno.writeTextFile(w.presetFile, "");
    const plain = (await loadCatalog(w)).models;
    assert(plain.every((m) => !m.pinned && m.priority === 0 && m.ttlS === undefined), "the defaults");
  }));

Deno.test("catalog: a section without a model source is an error", () =>
  withTempDir(async (root) => {
    const w = await world(root, "[*]\nc = 1\n\n[orphan]\nctx-size = 4096\n");
    await assertRejects(
      () => loadCatalog(w),
      SourceError,
      "preset.ini:4",
      "section [orphan] has no model source (set model or hf-repo)",
    );
    await Deno.writeTextFile(w.presetFile, "[local-Q4_0]\nctx-size = 1\n[docker]\ndocker-repo = ai/x\n");
    assertEquals((await loadCatalog(w)).models.length, 6, "matching an entry, or docker-repo, is a source");
    const ids = byId((await loadCatalog(w)).models);
    assert(ids.includes("docker") && ids.includes("local-Q4_0"));
  }));

Deno.test("catalog: alias conflicts fail a first load and are dropped on reload", () =>
  withTempDir(async (root) => {
    const text = "[a]\nmodel = a.gguf\nalias = shared, a, mine\n\n[b]\nmodel = b.gguf\nalias = shared\n";
    const w = await world(root, text);
    await assertRejects(() => loadCatalog(w), SourceError, "preset.ini:7", "alias 'shared'", "model 'a'");
    const { models, warnings } = await loadCatalog(w, { onReload: true });
    assertEquals(models.find((m) => m.id === "a")?.aliases, ["shared", "mine"], "own id is no alias");
    assertEquals(models.find((m) => m.id === "b")?.aliases, []);
    assertEquals(warnings.length, 1);
    assert(warnings[0].includes("dropped"));

    await Deno.writeTextFile(w.presetFile, "[a]\nmodel = a.gguf\nalias = local-Q4_0\n");
    await assertRejects(() => loadCatalog(w), SourceError, "conflicts with model name 'local-Q4_0'");
    await Deno.writeTextFile(w.presetFile, "[a]\nmodel = a.gguf\nalias = ../up\n");
    await assertRejects(() => loadCatalog(w, { onReload: true }), SourceError, "not a safe model name");
  }));

Deno.test("catalog: findModel resolves ids and aliases", () =>
  withTempDir(async (root) => {
    const w = await world(root, "[a]\nmodel = a.gguf\nalias = first\n");
    const catalog = await loadCatalog(w);
    assertEquals(findModel(catalog, "a")?.id, "a");
    assertEquals(findModel(catalog, "first")?.id, "a");
    assertEquals(findModel(catalog, "o/tiny:F16")?.id, "o/tiny:F16");
    assertEquals(findModel(catalog, "nope"), undefined);
    assertEquals(isSafeModelName("a"), true);
  }));

Deno.test("catalog: dedup-cache-models hides pure cache entries resolving to the same file", () =>
  withTempDir(async (root) => {
    let n = 0;
    const hidden = async (text: string) => {
      const w = await world(join(root, String(n++)), text);
      return (await loadCatalog(w)).models.filter((m) => m.hidden).map((m) => m.id);
    };
    const gemma = "[gemma]\nhf-repo = ggml-org/gemma-3-4b-it-GGUF:q8_0\n";
    assertEquals(await hidden(gemma), [], "off by default");
    assertEquals(await hidden(gemma + "dedup-cache-models = true\n"), ["ggml-org/gemma-3-4b-it-GGUF:Q8_0"]);
    assertEquals(await hidden("[*]\ndedup-cache-models = on\n" + gemma), [
      "ggml-org/gemma-3-4b-it-GGUF:Q8_0",
    ]);
    assertEquals(
      await hidden("[*]\ndedup-cache-models = on\n[gemma]\nhf-repo = ggml-org/gemma-3-4b-it-GGUF\n"),
      [
        "ggml-org/gemma-3-4b-it-GGUF:Q4_K_M",
      ],
      "no tag resolves to Q4_K_M first",
    );
    assertEquals(
      await hidden(gemma + "dedup-cache-models = true\n[ggml-org/gemma-3-4b-it-GGUF:Q8_0]\nc = 1\n"),
      [],
      "an entry with its own section is not a pure cache entry",
    );
    assertEquals(
      await hidden("[*]\ndedup-cache-models = true\n" + gemma + "dedup-cache-models = false\n"),
      [],
    );
  }));

Deno.test("catalog: cache dir alone, and a missing models dir fails", () =>
  withTempDir(async (root) => {
    const w = await world(root, "");
    assertEquals(byId((await loadCatalog({ cacheDir: w.cacheDir })).models), [
      "ggml-org/gemma-3-4b-it-GGUF:Q4_K_M",
      "ggml-org/gemma-3-4b-it-GGUF:Q8_0",
      "o/tiny:F16",
    ]);
    await assertRejects(
      () => loadCatalog({ cacheDir: w.cacheDir, modelsDir: join(root, "none") }),
      SourceError,
      "does not exist or is not a directory",
    );
  }));

Deno.test("presets/example.ini loads, and shows each feature", () =>
  withTempDir(async (root) => {
    const cacheDir = join(root, "hub");
    const modelsDir = join(root, "models");
    await writeHubRepo(cacheDir, "ggml-org/gemma-3-4b-it-GGUF", { "gemma-3-4b-it-Q4_K_M.gguf": "q4" });
    await writeFiles(modelsDir, ["llama-3.2-1b-instruct-Q4_K_M.gguf"]);
    const presetFile = new URL("../../presets/example.ini", import.meta.url).pathname;
    const { models, warnings } = await loadCatalog({ cacheDir, modelsDir, presetFile });
    assertEquals(warnings, []);
    const get = (id: string) => models.find((m) => m.id === id)!;
    assertEquals(get("ggml-org/gemma-3-4b-it-GGUF:Q4_K_M").hidden, true);
    assertEquals(get("llama-3.2-1b-instruct-Q4_K_M").options.get("--mmap"), false);
    assertEquals(get("llama-3.2-1b-instruct-Q4_K_M").stopTimeoutS, 15);
    const gemma = get("gemma-3-4b");
    assertEquals([gemma.aliases, gemma.tags, gemma.loadOnStartup, gemma.stopTimeoutS], [
      ["gemma", "gemma3"],
      ["chat", "vision"],
      true,
      60,
    ]);
    assertEquals(gemma.options.get("--ctx-size"), "16384");
    assertEquals(
      findModel({ models, warnings }, "coder")?.options.get("--model-draft"),
      "/srv/models/qwen2.5-coder-0.5b-instruct-q8_0.gguf",
    );
    const coder = get("qwen-coder");
    assertEquals([gemma.pinned, coder.pinned, coder.priority, coder.ttlS], [true, false, 1, 600]);
  }));
