import assert from "node:assert/strict";
import { InvalidRepoError } from "../../router/hub/errors.ts";
import {
  availableQuants,
  ggufSplitInfo,
  parseHubSpec,
  pickMmproj,
  pickPrimary,
  shardsOf,
} from "../../router/hub/quant.ts";

const files = (...paths: string[]) => paths.map((path) => ({ path }));
const pick = (paths: string[], tag?: string) => pickPrimary(files(...paths), tag)?.path;

Deno.test("parseHubSpec splits on the last colon and checks the repo id like llama.cpp", () => {
  assert.deepEqual(parseHubSpec("ggml-org/gemma-3-1b-it-GGUF:Q8_0"), {
    repo: "ggml-org/gemma-3-1b-it-GGUF",
    tag: "Q8_0",
  });
  assert.deepEqual(parseHubSpec("a/b"), { repo: "a/b" });
  assert.deepEqual(parseHubSpec("a/b:"), { repo: "a/b" });
  assert.deepEqual(parseHubSpec("a/b:x:q4_k_m"), { repo: "a/b", tag: "q4_k_m" });
  for (const bad of ["a", "a/b/c", "/a", "a//b", "a/b-", "a/b c", ""]) {
    assert.throws(() => parseHubSpec(bad), InvalidRepoError, bad);
  }
});

Deno.test("ggufSplitInfo derives the cache tag and shard numbers from the file name", () => {
  assert.deepEqual(ggufSplitInfo("m-Q4_K_M-00002-of-00003.gguf"), {
    prefix: "m-Q4_K_M",
    tag: "Q4_K_M",
    index: 2,
    count: 3,
  });
  assert.deepEqual(ggufSplitInfo("dir/model.q8_0.gguf"), {
    prefix: "dir/model.q8_0",
    tag: "Q8_0",
    index: 1,
    count: 1,
  });
  assert.equal(ggufSplitInfo("README.md"), undefined);
});

Deno.test("pickPrimary: a named tag matches case-insensitively anywhere, followed by . or -", () => {
  const repo = ["m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-IQ4_XS.gguf"];
  assert.equal(pick(repo, "q8_0"), "m-Q8_0.gguf");
  assert.equal(pick(["m-UD-Q4_K_M.gguf"], "Q4_K_M"), "m-UD-Q4_K_M.gguf");
  assert.equal(pick(["sub/m.Q5_K_S.gguf"], "Q5_K_S"), "sub/m.Q5_K_S.gguf");
  assert.equal(pick(repo, "Q5_K_S"), undefined);
});

Deno.test("pickPrimary without a tag: Q4_K_M, else Q8_0, else the first model file", () => {
  assert.equal(pick(["m-F16.gguf", "m-Q8_0.gguf", "m-Q4_K_M.gguf"]), "m-Q4_K_M.gguf");
  assert.equal(pick(["m-F16.gguf", "m-Q8_0.gguf"]), "m-Q8_0.gguf");
  assert.equal(pick(["README.md", "mmproj-F16.gguf", "m-F16.gguf", "m-BF16.gguf"]), "m-F16.gguf");
  assert.equal(pick(["README.md", "mmproj-F16.gguf"]), undefined);
});

Deno.test("pickPrimary skips sidecars and later shards", () => {
  const repo = [
    "imatrix-Q4_K_M.gguf",
    "mmproj-Q4_K_M.gguf",
    "mtp-m-Q4_K_M.gguf",
    "m-Q4_K_M-00002-of-00002.gguf",
  ];
  assert.equal(pick(repo, "Q4_K_M"), undefined);
  assert.equal(pick([...repo, "m-Q4_K_M-00001-of-00002.gguf"], "Q4_K_M"), "m-Q4_K_M-00001-of-00002.gguf");
});

Deno.test("shardsOf returns every shard of the same split in order, and a single file alone", () => {
  const repo = files(
    "m-Q8_0-00003-of-00003.gguf",
    "m-Q8_0-00001-of-00003.gguf",
    "m-Q4_K_M-00001-of-00002.gguf",
    "m-Q8_0-00002-of-00003.gguf",
  );
  assert.deepEqual(shardsOf(repo, repo[1]).map((f) => f.path), [
    "m-Q8_0-00001-of-00003.gguf",
    "m-Q8_0-00002-of-00003.gguf",
    "m-Q8_0-00003-of-00003.gguf",
  ]);
  const single = { path: "m-Q4_K_M.gguf" };
  assert.deepEqual(shardsOf([single], single), [single]);
});

Deno.test("pickMmproj: deepest folder above the model, then the closest quant width", () => {
  const repo = files("mmproj-F16.gguf", "mmproj-Q8_0.gguf", "m-Q4_K_M.gguf");
  assert.equal(pickMmproj(repo, "m-Q4_K_M.gguf")?.path, "mmproj-Q8_0.gguf");
  assert.equal(pickMmproj(repo, "m-BF16.gguf")?.path, "mmproj-F16.gguf");
  const nested = files("mmproj-F16.gguf", "q4/mmproj-F16.gguf", "other/mmproj-Q4_0.gguf");
  assert.equal(pickMmproj(nested, "q4/m-Q4_K_M.gguf")?.path, "q4/mmproj-F16.gguf");
  assert.equal(pickMmproj(nested, "m-Q4_K_M.gguf")?.path, "mmproj-F16.gguf");
  assert.equal(pickMmproj(files("m-Q4_K_M.gguf"), "m-Q4_K_M.gguf"), undefined);
});

Deno.test("availableQuants lists each model tag once", () => {
  assert.deepEqual(
    availableQuants([
      "m-Q8_0.gguf",
      "m-F16-00001-of-00002.gguf",
      "m-F16-00002-of-00002.gguf",
      "mmproj-F16.gguf",
      "README.md",
    ]),
    ["Q8_0", "F16"],
  );
});
