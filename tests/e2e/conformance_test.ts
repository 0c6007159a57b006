/**
 * llama.cpp's own router tests (`tools/server/tests/unit/test_router.py`, from the pinned source)
 * run unchanged against Switchyard: the harness starts `main.ts` as if it were llama-server. Only
 * its conftest (which downloads models) and two packages this machine cannot install are replaced
 * by the stand-ins in tests/conformance/; tiny models are placed in LLAMA_CACHE under the ids the
 * tests use, and the download tests reach a fake hub on loopback through HF_ENDPOINT.
 *
 * One deliberate difference: the harness starts every router with `--offline`, which llama.cpp only
 * passes to model instances, so its downloads still go online. Switchyard's `--offline` never
 * touches the network, so the wrapper below leaves that flag out.
 */
import { join } from "node:path";
import { assertEquals } from "../helpers/assert.ts";
import {
  harnessMissing,
  prepareHarness,
  runPytest,
  switchyardAsLlamaServer,
} from "../helpers/llamacpp_pytest.ts";
import { addToHfCache } from "../helpers/models.ts";
import { startFakeHub } from "../fixtures/fake_hub.ts";
import { tinyLlamaGguf } from "../fixtures/gguf.ts";

const FILES = ["test_router.py"];
/**
 * The Hub repos the tests use, served by the fake hub. `test-preset-ci` is our stand-in for
 * llama.cpp's remote-preset test repo: a preset.ini naming the two models the test looks for.
 */
const REMOTE_PRESET = [
  "[tinygemma3-preset]",
  "hf-repo = ggml-org/tinygemma3-GGUF:Q8_0",
  "",
  "[stories260K-test]",
  "hf-repo = ggml-org/test-model-stories260K:F32",
  "",
].join("\n");

const skip = await harnessMissing(FILES);
if (skip) console.error(`skipping llama.cpp conformance tests: ${skip}`);

Deno.test({
  name: "llama.cpp's test_router.py passes against Switchyard",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const work = await prepareHarness(FILES);
    let hub: Awaited<ReturnType<typeof startFakeHub>> | undefined;
    try {
      const cache = join(work, "cache");
      await addToHfCache(cache, "ggml-org/tinygemma3-GGUF", "tinygemma3-Q8_0.gguf");
      await addToHfCache(cache, "ggml-org/test-model-stories260K", "stories260K-F32.gguf");
      await addToHfCache(cache, "ggml-org/test-model-stories260K-infill", "stories260K-infill-F32.gguf");
      hub = await startFakeHub({
        repos: {
          "ggml-org/test-model-router-download": { files: { "model-F16.gguf": tinyLlamaGguf({ seed: 3 }) } },
          "ggml-org/test-preset-ci": { files: { "preset.ini": new TextEncoder().encode(REMOTE_PRESET) } },
        },
      });
      const wrapper = await switchyardAsLlamaServer(work, { dropOffline: true });
      const run = await runPytest(work, FILES, wrapper, { LLAMA_CACHE: cache, HF_ENDPOINT: hub.url });
      const failed = [...run.outcomes].filter(([, outcome]) => outcome !== "passed").map(([id]) => id);
      assertEquals(failed, [], "llama.cpp's router tests that did not pass (their output is above)");
      assertEquals(run.outcomes.size, 16, "every case of test_router.py ran");
      assertEquals(run.code, 0, "pytest's exit code");
    } finally {
      await hub?.close();
      await Deno.remove(work, { recursive: true });
    }
  },
});
