/** A single-model command line's model, named as llama-server names it; Vertex AI's format names. */
import { assertEquals } from "../helpers/assert.ts";
import { singleModelSpec } from "../../router/sources/single_model.ts";
import { gcpFormatOf } from "../../router/routes/predict.ts";

const spec = (entries: [string, string][]) => singleModelSpec(new Map(entries));

Deno.test("the default model is named by its first alias, else its Hub repo, else its path or URL", () => {
  assertEquals(spec([["--model", "./m/a.gguf"]]).id, "./m/a.gguf");
  assertEquals(spec([["--hf-repo", "o/r:Q8_0"], ["--hf-file", "x.gguf"]]).id, "o/r:Q8_0");
  assertEquals(spec([["--model-url", "http://127.0.0.1:1/m.gguf"]]).id, "http://127.0.0.1:1/m.gguf");
  // std::set order: the alphabetically first alias names the model
  const aliased = spec([["--model", "a.gguf"], ["--alias", "tinyllama-2, fim,code"], [
    "--tags",
    "chat,small",
  ]]);
  assertEquals(aliased.id, "code");
  assertEquals(aliased.tags, ["chat", "small"]);
  assertEquals(aliased.source, "cli");
  assertEquals(aliased.options.get("--alias"), "tinyllama-2, fim,code", "the catalog turns it into aliases");
});

Deno.test("Vertex AI's @requestFormat names: camelCase of the path without /v1", () => {
  assertEquals(gcpFormatOf("/v1/chat/completions"), "chatCompletions");
  assertEquals(gcpFormatOf("/apply-template"), "applyTemplate");
  assertEquals(gcpFormatOf("/tokenize"), "tokenize");
  assertEquals(gcpFormatOf("/v1/responses/input_tokens"), "responsesInputTokens");
  assertEquals(gcpFormatOf("/slots/:id_slot"), "slots");
});
