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
import { addToHfCache } from "../helpers/models.ts";
import { startFakeHub } from "../fixtures/fake_hub.ts";
import { tinyLlamaGguf } from "../fixtures/gguf.ts";
import { engineCacheDir } from "../../router/engine/binary.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const UPSTREAM_TESTS = join(engineCacheDir(Deno.env.toObject()), "src", "tools", "server", "tests");
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

async function why(): Promise<string | undefined> {
  try {
    await Deno.stat(join(UPSTREAM_TESTS, "unit", "test_router.py"));
  } catch {
    return `llama.cpp's test sources are not at ${UPSTREAM_TESTS} (they come with the engine build)`;
  }
  const probe = await new Deno.Command("python3", {
    args: ["-c", "import pytest, requests"],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => undefined);
  if (!probe?.success) return "python3 with pytest and requests is needed for llama.cpp's harness";
  return undefined;
}

const skip = await why();
if (skip) console.error(`skipping llama.cpp conformance tests: ${skip}`);

Deno.test({
  name: "llama.cpp's test_router.py passes against Switchyard",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const work = await Deno.makeTempDir({ prefix: "switchyard-conformance-" });
    let hub: Awaited<ReturnType<typeof startFakeHub>> | undefined;
    try {
      await Deno.mkdir(join(work, "unit"));
      await Deno.mkdir(join(work, "tmp"));
      await Deno.copyFile(join(UPSTREAM_TESTS, "utils.py"), join(work, "utils.py"));
      await Deno.copyFile(
        join(UPSTREAM_TESTS, "unit", "test_router.py"),
        join(work, "unit", "test_router.py"),
      );
      for (const f of ["conftest.py", "filelock.py", "wget.py"]) {
        await Deno.copyFile(join(ROOT, "tests", "conformance", f), join(work, f));
      }
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
      const wrapper = join(work, "switchyard-as-llama-server");
      await Deno.writeTextFile(
        wrapper,
        [
          "#!/bin/sh",
          'for a in "$@"; do shift; [ "$a" = "--offline" ] || set -- "$@" "$a"; done',
          `exec "${Deno.execPath()}" run --allow-all "${join(ROOT, "main.ts")}" "$@"`,
          "",
        ].join("\n"),
      );
      await Deno.chmod(wrapper, 0o755);
      const port = 18000 + Math.floor(Math.random() * 2000);
      const out = await new Deno.Command("python3", {
        args: [
          "-m",
          "pytest",
          "-v",
          "-p",
          "no:cacheprovider",
          "unit/test_router.py",
        ],
        cwd: work,
        env: {
          LLAMA_SERVER_BIN_PATH: wrapper,
          LLAMA_CACHE: cache,
          HF_ENDPOINT: hub.url,
          PORT: String(port),
          PYTHONPATH: work,
        },
        stdout: "inherit",
        stderr: "inherit",
      }).output();
      assertEquals(out.code, 0, "llama.cpp's router tests failed (see their output above)");
    } finally {
      await hub?.close();
      await Deno.remove(work, { recursive: true });
    }
  },
});
