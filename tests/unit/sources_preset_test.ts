import { join } from "node:path";
import { assert, assertEquals, assertRejects, assertThrows } from "./sources_assert.ts";
import { withTempDir } from "./sources_fixture.ts";
import { loadPreset, parsePreset, renderPresetText } from "../../router/sources/preset.ts";
import { newSpec } from "../../router/sources/spec.ts";
import { SourceError } from "../../router/sources/types.ts";

const section = (text: string, name = "m") => {
  const preset = parsePreset(text, "p.ini");
  const found = preset.sections.find((s) => s.name === name) ?? (name === "*" ? preset.global : undefined);
  if (!found) throw new Error(`no section ${name}`);
  return found;
};

Deno.test("preset keys: spellings, short flags and env names resolve to the canonical flag", () => {
  const s = section(
    "[m]\nc = 1\nngl = 99\nLLAMA_ARG_THREADS = 8\nhf = o/r:Q4_K_M\nm = ./x.gguf\nmodel-draft = d.gguf\n",
  );
  assertEquals(
    s.options,
    new Map([
      ["--ctx-size", "1"],
      ["--n-gpu-layers", "99"],
      ["--threads", "8"],
      ["--hf-repo", "o/r:Q4_K_M"],
      ["--model", "./x.gguf"],
      ["--model-draft", "d.gguf"],
    ]),
  );
  assertEquals(s.options.get("--model"), "./x.gguf", "relative paths stay as written");
  assertEquals(s.lines.get("--threads"), 4);
});

Deno.test("preset switches: booleans, no- forms and LLAMA_ARG_NO_*", () => {
  const s = section(
    "[m]\nmmap = off\nno-warmup = true\nLLAMA_ARG_NO_CONTEXT_SHIFT = 1\nswa-full = enabled\nkv-unified = 0\n",
  );
  assertEquals(
    s.options,
    new Map<string, string | boolean>([
      ["--mmap", false],
      ["--warmup", false],
      ["--context-shift", false],
      ["--swa-full", true],
      ["--kv-unified", false],
    ]),
  );
  assertEquals(section("[m]\nno-mmap = false\n").options.get("--mmap"), true);
});

Deno.test("preset errors name file, line, key and section", () => {
  const unknown = assertThrows(
    () => parsePreset("[*]\nc = 1\n[m]\nmodel = x\nctx_size = 4\n", "p.ini"),
    SourceError,
    "p.ini:5",
    "'ctx_size'",
    "[m]",
  );
  assertEquals([unknown.file, unknown.line, unknown.key], ["p.ini", 5, "ctx_size"]);
  assertThrows(
    () => parsePreset("[m]\nmmap = maybe\n", "p.ini"),
    SourceError,
    "p.ini:2",
    "'mmap'",
    "boolean",
  );
  assertThrows(() => parsePreset("[m]\nswa-full =\n", "p.ini"), SourceError, "boolean");
  assertThrows(
    () => parsePreset("[m]\nstop-timeout = 5s\n", "p.ini"),
    SourceError,
    "p.ini:2",
    "whole number",
  );
  assertThrows(() => parsePreset("[m]\nload-on-startup = yes\n", "p.ini"), SourceError, "boolean");
  assertThrows(
    () => parsePreset("[m]\ncontrol-vector-layer-range = 1 2\n", "p.ini"),
    SourceError,
    "two values",
  );
  assertThrows(
    () => parsePreset("[m]\nc = 1\nctx-size = 2\n", "p.ini"),
    SourceError,
    "p.ini:3",
    "'c' at line 2",
  );
  assertThrows(() => parsePreset("[x:q4_k_m]\n[x:Q4_K_M]\n", "p.ini"), SourceError, "p.ini:2", "line 1");
  assertThrows(() => parsePreset("[../etc]\nmodel = x\n", "p.ini"), SourceError, "not a safe model name");
});

Deno.test("preset-only keys, env-name forms included", () => {
  const s = section("[m]\nload-on-startup = true\nstop-timeout = 30\n__PRESET_DEDUP_CACHE_MODELS = on\n");
  assertEquals([s.loadOnStartup, s.stopTimeoutS, s.dedupCacheModels], [true, 30, true]);
  assertEquals(s.options.size, 0);
  assertEquals(
    s.presetOnly,
    new Map([["load-on-startup", "true"], ["stop-timeout", "30"], ["dedup-cache-models", "on"]]),
  );
});

Deno.test("preset-only keys pin, priority and ttl: parsed, kept as written for status.preset", () => {
  const s = section("[m]\npin = on\npriority = -3\nttl = 600\n");
  assertEquals([s.pinned, s.priority, s.ttlS], [true, -3, 600]);
  assertEquals(s.options.size, 0, "never passed to the engine");
  assertEquals(s.presetOnly, new Map([["pin", "on"], ["priority", "-3"], ["ttl", "600"]]));
  const unset = section("[m]\nmodel = x\n");
  assertEquals([unset.pinned, unset.priority, unset.ttlS], [undefined, undefined, undefined]);
  assertEquals(section("[m]\npin = false\nttl = 0\n").ttlS, 0);
});

Deno.test("preset-only keys pin, priority and ttl: bad values name file, line, key and section", () => {
  const rows: Array<[string, string, string]> = [
    ["pin = sometimes", "'pin'", "boolean"],
    ["priority = high", "'priority'", "must be an integer"],
    ["priority = 1.5", "'priority'", "must be an integer"],
    ["priority = 99999999999999999999", "'priority'", "must be an integer"],
    ["ttl = 5m", "'ttl'", "whole number of seconds"],
    ["ttl = -1", "'ttl'", "whole number of seconds"],
  ];
  for (const [line, key, why] of rows) {
    const err = assertThrows(
      () => parsePreset(`[m]\nmodel = x\n${line}\n`, "p.ini"),
      SourceError,
      "p.ini:3",
      key,
      why,
    );
    assertEquals([err.file, err.line, err.key], ["p.ini", 3, key.slice(1, -1)]);
  }
});

Deno.test("preset sections: [*] is global, tags canonicalised, default only with keys", () => {
  const preset = parsePreset("[*]\nc = 1\n[org/x-GGUF:ud-q4_k_xl]\n[default]\n", "p.ini");
  assertEquals(preset.global?.options.get("--ctx-size"), "1");
  assertEquals(preset.sections.map((s) => s.name), ["org/x-GGUF:Q4_K_XL"]);
  assertEquals(parsePreset("c = 2\n", "p.ini").sections.map((s) => s.name), ["default"]);
});

Deno.test("preset: router-owned keys are dropped with a warning", () => {
  const preset = parsePreset("[m]\nmodel = x\nport = 9000\nhost = 0.0.0.0\nmodels-max = 2\n", "p.ini");
  assertEquals([...preset.sections[0].options.keys()], ["--model"]);
  assertEquals(preset.warnings.length, 3);
  assert(preset.warnings[0].includes("p.ini:3") && preset.warnings[0].includes("'port'"));
});

Deno.test("loadPreset reads a file; a missing one is a SourceError", () =>
  withTempDir(async (dir) => {
    const file = join(dir, "p.ini");
    await Deno.writeTextFile(file, "[m]\r\nmodel = x\r\n");
    assertEquals((await loadPreset(file)).sections[0].options.get("--model"), "x");
    await assertRejects(() => loadPreset(join(dir, "nope.ini")), SourceError, "nope.ini");
  }));

Deno.test("renderPresetText: llama.cpp's status.preset text", () => {
  const spec = newSpec(
    "m",
    "preset",
    new Map<string, string | boolean>([
      ["--model", "/m.gguf"],
      ["--ctx-size", "4096"],
      ["--mmap", false],
      ["--tags", "a,b"],
      ["--hf-repo", "o/r"],
    ]),
  );
  spec.presetOnly = new Map([["stop-timeout", "5"], ["load-on-startup", "true"]]);
  assertEquals(
    renderPresetText(spec, new Map([["--ctx-size", "8192"], ["--port", "1"], ["--temperature", "0"]])),
    // sorted by first spelling as strcmp does: "--mmap" < "--temp" < "-c" < "-hf" < "-m"
    "[m]\nmmap = false\ntemperature = 0\nctx-size = 8192\nhf-repo = o/r\nmodel = /m.gguf\n" +
      "load-on-startup = true\nstop-timeout = 5\n\n",
  );
  assertEquals(
    renderPresetText(newSpec("o/r:Q4_0", "cache", new Map([["--hf-repo", "o/r:Q4_0"]]))),
    "[o/r:Q4_0]\nhf-repo = o/r:Q4_0\n\n",
  );
});
