/** Ollama's model names onto Switchyard's ids (router/ollama/names.ts): found, ambiguous, missing. */
import { assertEquals } from "../helpers/assert.ts";
import { type NamedModel, resolveOllamaName } from "../../router/ollama/names.ts";

const model = (id: string, ...aliases: string[]): NamedModel => ({ id, names: [id, ...aliases] });

const MODELS: NamedModel[] = [
  model("alpha", "first"),
  model("Beta"),
  model("org/tiny-GGUF:Q4_K_M"),
  model("org/tiny-GGUF:Q8_0"),
  model("org/solo-GGUF:Q8_0"),
  model("qwen:7b"),
];

const CASES: [name: string, expected: ReturnType<typeof resolveOllamaName>][] = [
  ["alpha", { kind: "found", id: "alpha" }],
  ["first", { kind: "found", id: "alpha" }],
  ["alpha:latest", { kind: "found", id: "alpha" }],
  ["ALPHA:Latest", { kind: "found", id: "alpha" }],
  ["beta", { kind: "found", id: "Beta" }],
  ["org/tiny-GGUF:Q8_0", { kind: "found", id: "org/tiny-GGUF:Q8_0" }],
  ["org/tiny-gguf:q8_0", { kind: "found", id: "org/tiny-GGUF:Q8_0" }],
  ["hf.co/org/tiny-GGUF:Q4_K_M", { kind: "found", id: "org/tiny-GGUF:Q4_K_M" }],
  ["huggingface.co/org/tiny-GGUF:q4_k_m", { kind: "found", id: "org/tiny-GGUF:Q4_K_M" }],
  // an untagged repo stands for its one tag...
  ["org/solo-GGUF", { kind: "found", id: "org/solo-GGUF:Q8_0" }],
  ["hf.co/org/solo-GGUF:latest", { kind: "found", id: "org/solo-GGUF:Q8_0" }],
  ["qwen", { kind: "found", id: "qwen:7b" }],
  // ...and is never a guess between several
  ["org/tiny-GGUF", { kind: "ambiguous", candidates: ["org/tiny-GGUF:Q4_K_M", "org/tiny-GGUF:Q8_0"] }],
  ["org/tiny-GGUF:latest", { kind: "ambiguous", candidates: ["org/tiny-GGUF:Q4_K_M", "org/tiny-GGUF:Q8_0"] }],
  ["org/tiny-GGUF:Q5_K_M", { kind: "missing" }],
  ["alph", { kind: "missing" }],
  ["qwen:14b", { kind: "missing" }],
  ["", { kind: "missing" }],
];

for (const [name, expected] of CASES) {
  Deno.test(`ollama names: ${JSON.stringify(name)} is ${expected.kind}`, () => {
    assertEquals(resolveOllamaName(name, MODELS), expected);
  });
}

Deno.test("ollama names: an exact id wins over a case-insensitive match of another model", () => {
  const models = [model("Alpha"), model("alpha")];
  assertEquals(resolveOllamaName("alpha", models), { kind: "found", id: "alpha" });
  assertEquals(resolveOllamaName("ALPHA", models), { kind: "ambiguous", candidates: ["Alpha", "alpha"] });
});
