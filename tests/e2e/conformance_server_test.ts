/**
 * llama.cpp's own single-model server tests (`tools/server/tests/unit/test_*.py`, from the pinned
 * source) run twice, unchanged: against llama-server itself, then against Switchyard given the same
 * command lines (`-hf owner/repo`, `--alias`, `-c`, `--no-slots`...). Every test that passes on
 * llama-server must pass through Switchyard; the differences are listed.
 *
 * The Hub models the tests name are stood in for by tiny random models in LLAMA_CACHE, and the Hub
 * itself is a closed loopback port: both servers then fall back to the cache, as llama-server does.
 * Tests whose verdict needs the real weights (an answer matching a regex) fail on both alike.
 * Left out: the files that import Python's `openai` package, which this machine cannot install
 * (test_chat_completion, test_completion, test_embedding, test_security, test_compat_oai_responses),
 * and those that fetch files from huggingface.co or example.com themselves, since tests send traffic
 * to loopback only (test_slot_save, test_compat_anthropic, test_proxy, test_speculative, test_lora,
 * test_vision_api).
 */
import { join } from "node:path";
import { assert, assertEquals } from "../helpers/assert.ts";
import {
  harnessMissing,
  prepareHarness,
  runPytest,
  switchyardAsLlamaServer,
} from "../helpers/llamacpp_pytest.ts";
import { freePort } from "../helpers/llama_server.ts";
import { addToHfCache } from "../helpers/models.ts";
import { resolveEngine } from "../../router/engine/binary.ts";

const FILES = [
  "test_basic.py",
  "test_tokenize.py",
  "test_ignore_eos.py",
  "test_infill.py",
  "test_ctx_shift.py",
  "test_template.py",
  "test_stream.py",
  "test_metrics.py",
  "test_sleep.py",
  "test_kv_keep_only_active.py",
  "test_compat_gcp.py",
  "test_tool_call.py",
  "test_rerank.py",
  "test_tools_builtin.py",
  "test_mcp_servers.py",
];

/** The Hub models of the harness's presets, as tiny stand-ins. */
const STAND_INS: [repo: string, file: string][] = [
  ["ggml-org/test-model-stories260K", "stories260K-F32.gguf"],
  ["ggml-org/test-model-stories260K-infill", "stories260K-infill-F32.gguf"],
  ["ggml-org/tinygemma3-GGUF", "tinygemma3-Q8_0.gguf"],
];

/**
 * Tests that pass on llama-server and not through Switchyard for a reason that is not a gap in
 * Switchyard's llama-server behaviour; they are reported, not hidden.
 */
const KNOWN_DIFFERENCES: Record<string, string> = {
  // HTTP header names are case-insensitive (RFC 9110 §5.1); Deno's server sends them in lower case,
  // and these tests look `Process-Start-Time-Unix` up in a plain, case-sensitive dict
  "test_metrics::test_metrics_prometheus_format": "header name case",
  "test_metrics::test_metrics_prompt_processed_and_cached": "header name case",
  "test_metrics::test_metrics_predicted_total_matches_requests": "header name case",
  // reads the server's log right after an answer for a line the engine wrote while answering: the
  // engine's log reaches the gateway's through its runner, a moment after the answer itself
  "test_kv_keep_only_active::test_clear_and_restore": "engine log relayed by the runner",
};

const skip = await harnessMissing(FILES);
if (skip) console.error(`skipping llama.cpp's single-model tests: ${skip}`);

Deno.test({
  name: "llama.cpp's single-model server tests: all that pass on llama-server pass through Switchyard",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const work = await prepareHarness(FILES);
    try {
      const cache = join(work, "cache");
      for (const [repo, file] of STAND_INS) await addToHfCache(cache, repo, file);
      // the Hub is a loopback port nothing listens on: unreachable
      const env = { LLAMA_CACHE: cache, HF_ENDPOINT: `http://127.0.0.1:${freePort()}` };
      const engine = await resolveEngine({ env: Deno.env.toObject(), build: false });

      console.error("---- llama.cpp's single-model tests against llama-server itself");
      const direct = await runPytest(work, FILES, engine, env);
      console.error("---- the same tests against Switchyard");
      const wrapper = await switchyardAsLlamaServer(work, { dropOffline: false });
      const via = await runPytest(work, FILES, wrapper, env);

      const passing = (run: typeof direct) =>
        [...run.outcomes].filter(([, o]) => o === "passed").map(([id]) => id);
      const differing = passing(direct).filter((id) => via.outcomes.get(id) !== "passed");
      const lost = differing.filter((id) => !(id in KNOWN_DIFFERENCES))
        .map((id) => `${id}: ${via.outcomes.get(id) ?? "did not run"} through Switchyard`);
      const known = differing.filter((id) => id in KNOWN_DIFFERENCES);
      const gained = passing(via).filter((id) => direct.outcomes.get(id) !== "passed");
      console.error(
        `llama-server passed ${passing(direct).length} of ${direct.outcomes.size}; ` +
          `Switchyard passed ${passing(via).length} of ${via.outcomes.size}` +
          (gained.length ? `; passing only through Switchyard: ${gained.join(", ")}` : "") +
          (known.length
            ? `; known differences: ${known.map((id) => `${id} (${KNOWN_DIFFERENCES[id]})`).join(", ")}`
            : ""),
      );
      assert(passing(direct).length > 0, "llama-server itself passed none: the harness did not run");
      assertEquals(via.outcomes.size, direct.outcomes.size, "the same tests ran on both");
      assertEquals(lost, [], "tests that pass on llama-server but not through Switchyard");
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});
