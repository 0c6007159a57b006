/**
 * What Ollama says about a model, from its GGUF header (router/ollama/details.ts) and its file
 * (model_file.ts), on the tiny models the fixture writes: its figures are known (n_params 170048,
 * all F32, a 4096-token training context), as llama-server itself reports them.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../helpers/assert.ts";
import { CHATML_TEMPLATE, tinyLlamaGguf } from "../fixtures/gguf.ts";
import { parseGgufHeader } from "../../router/memory/gguf.ts";
import {
  capabilitiesOf,
  chatTemplate,
  fileTypeName,
  humanNumber,
  modelDetails,
  modelInfo,
  parameterCount,
  trainingContext,
} from "../../router/ollama/details.ts";
import { ModelFileReader } from "../../router/ollama/model_file.ts";
import { newSpec } from "../../router/sources/spec.ts";

const TINY = parseGgufHeader(tinyLlamaGguf({ seed: 7 }));
const TEXT = { embeddings: false, vision: false };

Deno.test("details: family, parameter size and quantization from the header", () => {
  assertEquals(parameterCount(TINY), 170_048, "llama-server's n_params for this model");
  assertEquals(modelDetails(TINY), {
    parent_model: "",
    format: "gguf",
    family: "llama",
    families: ["llama"],
    parameter_size: "170K",
    quantization_level: "F32",
  });
  assertEquals(modelDetails(undefined).family, "", "an unreadable file: empty fields, as Ollama leaves them");
});

Deno.test("details: Ollama's number and file type names", () => {
  assertEquals(
    [999, 1_000, 494_030_000, 1_000_000, 1_500_000_000, 7_000_000_000, 8_030_261_248].map(humanNumber),
    ["999", "1K", "494.03M", "1M", "1.5B", "7B", "8.0B"],
  );
  assertEquals([0, 1, 2, 7, 15, 18, 30, 32, 38].map(fileTypeName), [
    "F32",
    "F16",
    "Q4_0",
    "Q8_0",
    "Q4_K_M",
    "Q6_K",
    "IQ4_XS",
    "BF16",
    "MXFP4_MOE",
  ]);
  assertEquals([fileTypeName(4), fileTypeName(999), fileTypeName(undefined)], ["unknown", "unknown", ""]);
});

Deno.test("model_info: metadata without the name and template, long arrays only when verbose, the parameter count", () => {
  const header = parseGgufHeader(tinyLlamaGguf({
    seed: 7,
    extraMetadata: [{ key: "test.short", type: "array", itemType: "u32", value: [1, 2, 3] }],
  }));
  const info = modelInfo(header);
  assertEquals(info["general.architecture"], "llama");
  assertEquals(info["llama.context_length"], 4096);
  assertEquals(info["llama.embedding_length"], 64);
  assertEquals(info["general.parameter_count"], 170_048);
  assertEquals(info["test.short"], [1, 2, 3]);
  assertEquals(info["tokenizer.ggml.scores"], [], "a long array");
  assertEquals(info["tokenizer.ggml.tokens"], [], "a vocabulary is never kept");
  assert(!("general.name" in info) && !("tokenizer.chat_template" in info));
  const verbose = modelInfo(header, true);
  assertEquals(
    (verbose["tokenizer.ggml.scores"] as number[]).length,
    (header.metadata.get("tokenizer.ggml.scores") as number[]).length,
  );
  assertEquals(modelInfo(undefined), {});
});

Deno.test("template, training context and capabilities", () => {
  assertEquals(chatTemplate(TINY), CHATML_TEMPLATE);
  assertEquals(trainingContext(TINY), 4096);
  assertEquals(capabilitiesOf(TINY, TEXT), ["completion"]);
  assertEquals(capabilitiesOf(TINY, { embeddings: true, vision: true }), [
    "completion",
    "embedding",
    "vision",
  ]);
  const agent = parseGgufHeader(tinyLlamaGguf({
    chatTemplate: "{% if tools %}{{ tools }}{% endif %}{% if enable_thinking %}<think>{% endif %}",
  }));
  assertEquals(capabilitiesOf(agent, TEXT), ["completion", "tools", "thinking"]);
  const encoder = parseGgufHeader(tinyLlamaGguf({
    chatTemplate: null,
    extraMetadata: [{ key: "llama.pooling_type", type: "u32", value: 1 }],
  }));
  assertEquals(capabilitiesOf(encoder, TEXT), ["embedding"]);
});

Deno.test("model file: size, mtime, digest and header, read once per file identity", async () => {
  const dir = await Deno.makeTempDir({ prefix: "switchyard-ollama-file-" });
  try {
    const path = join(dir, "alpha.gguf");
    const bytes = tinyLlamaGguf({ seed: 7 });
    await Deno.writeFile(path, bytes);
    const spec = newSpec("alpha", "models_dir", new Map([["--model", path]]));
    const reader = new ModelFileReader();
    const facts = await reader.read(spec);
    assert(facts);
    assertEquals(facts.size, bytes.length);
    assertEquals(facts.modifiedAt.getTime(), (await Deno.stat(path)).mtime!.getTime());
    assertEquals(facts.digest.length, 64);
    assertEquals(facts.header?.metadata.get("general.architecture"), "llama");
    assert((await reader.read(spec)) === facts, "the same file is not read again");

    await Deno.writeFile(path, new Uint8Array(10));
    const changed = await reader.read(spec);
    assertEquals(
      [changed?.size, changed?.header],
      [10, undefined],
      "a changed file is read again; not a GGUF",
    );
    assert(changed?.digest !== facts.digest);

    // a cache snapshot links to its blob, which the Hub names by the file's sha256
    const sha = "a".repeat(64);
    await Deno.writeFile(join(dir, sha), bytes);
    await Deno.symlink(join(dir, sha), join(dir, "linked.gguf"));
    const cached = newSpec("o/r:F32", "cache", new Map([["--hf-repo", "o/r:F32"]]));
    cached.cache = { repoDir: dir, files: [join(dir, "README.md"), join(dir, "linked.gguf")] };
    assertEquals((await reader.read(cached))?.digest, sha);

    assertEquals(
      await reader.read(newSpec("gone", "models_dir", new Map([["--model", join(dir, "x.gguf")]]))),
      undefined,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
