/**
 * The engine's own figures after a load (router/memory/observed.ts), from llama-server's buffer lines:
 * captured from the pinned build, assembled from the source's format strings for GPUs, and live from the
 * real server where it is built.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { engineBinPath, freePort } from "../helpers/llama_server.ts";
import { within } from "../helpers/wait.ts";
import { tinyLlamaGguf } from "../fixtures/gguf.ts";
import {
  BIG_MODEL,
  GPU_SERVER_LOG,
  REAL_SERVER_LOG_BIG,
  REAL_SERVER_LOG_GQA_Q8,
} from "../fixtures/memory_outputs.ts";
import { bufferDevice, ObservedMemory, parseObserved } from "../../router/memory/observed.ts";
import { deviceBytes, HOST } from "../../router/memory/projection.ts";
import { MiB } from "../../router/memory/size.ts";
import { forEachLine } from "../../runners/lines.ts";

const mib = (model: number, context: number, compute: number) =>
  deviceBytes(Math.round(model * MiB), Math.round(context * MiB), Math.round(compute * MiB));

Deno.test("bufferDevice: CPU buffers, pinned host buffers and BLAS are the host; suffixes name the device", () => {
  const cases: Array<[string, string]> = [
    ["CPU", HOST],
    ["CPU_Mapped", HOST],
    ["CPU_REPACK", HOST],
    ["CPU_KLEIDIAI", HOST],
    ["CUDA_Host", HOST],
    ["Vulkan_Host", HOST],
    ["BLAS", HOST],
    ["AMX", HOST],
    ["CUDA0", "CUDA0"],
    ["ROCm1", "ROCm1"],
    ["MTL0_Mapped", "MTL0"],
    ["MTL0_Private", "MTL0"],
    ["Vulkan0", "Vulkan0"],
  ];
  for (const [buffer, device] of cases) assertEquals(bufferDevice(buffer), device, buffer);
});

Deno.test("parseObserved: the real CPU log, timestamps and all; the output buffer counts as compute", () => {
  assertEquals(parseObserved(REAL_SERVER_LOG_BIG), {
    perDevice: { [HOST]: mib(39.98, 1.00, 160.60 + 0.01) },
    source: "observed",
  });
});

Deno.test("parseObserved: a log without prefixes; a non-unified quantized cache", () => {
  assertEquals(parseObserved(REAL_SERVER_LOG_GQA_Q8)?.perDevice, { [HOST]: mib(2.36, 0.80, 3.26 + 0.01) });
});

Deno.test("parseObserved: GPU offload, two SWA caches, a draft, a re-reserve and an mmproj", () => {
  assertEquals(parseObserved(GPU_SERVER_LOG)?.perDevice, {
    // weights: the main model's mapped CPU part and the draft's; KV: the layer kept on the CPU;
    // compute: the pinned output and compute buffers and the projector's CPU graph
    [HOST]: mib(281.81 + 50.00, 16.00, 0.49 + 16.01 + 12.00),
    // the model, the draft and the projector's weights; both SWA caches and the draft's; the draft's
    // second reserve (64) replaces its first (60)
    CUDA0: mib(3745.00 + 400.00 + 812.42, 80.00 + 150.00 + 20.00, 300.75 + 64.00 + 390.00),
  });
});

Deno.test("ObservedMemory: nothing before the first buffer line, or at the default verbosity", () => {
  const o = new ObservedMemory();
  assertEquals(o.projection(), undefined);
  o.line("0.00.022.475 I srv    load_model: prompt cache is enabled, size limit: 8192 MiB");
  o.line("main: model loaded");
  assertEquals([o.projection(), o.lines], [undefined, 0]);
  o.line("load_tensors:        CUDA0 model buffer size =   100.00 MiB");
  assertEquals(o.projection()?.perDevice, { CUDA0: mib(100, 0, 0) });
  assertEquals(o.lines, 1);
});

const engine = engineBinPath();
const haveEngine = await Deno.stat(engine).then(() => true, () => false);
if (!haveEngine) {
  console.warn(`memory_observed_test: no llama-server at ${engine}; the live-log test is skipped`);
}

Deno.test({
  name: "ObservedMemory: a real llama-server at -lv 4 logs what the captured fixture holds",
  ignore: !haveEngine,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const model = `${dir}/big.gguf`;
    await Deno.writeFile(model, tinyLlamaGguf(BIG_MODEL));
    const child = new Deno.Command(engine, {
      args: ["-m", model, "-c", "2048", "-lv", "4", "--host", "127.0.0.1", "--port", String(freePort())],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const observed = new ObservedMemory();
    let listening = false;
    try {
      // the load's lines all come before "listening"; the test ends on that line, not on a timer
      await within(
        forEachLine(child.stderr, (line) => {
          observed.line(line);
          if (!listening && line.includes("listening on")) {
            listening = true;
            // not SIGTERM: llama-server can miss a stop that comes right after it starts listening
            child.kill("SIGKILL");
          }
        }),
        "llama-server to log its load",
      );
      assert(listening, "llama-server exited before listening");
      assertEquals(observed.projection(), parseObserved(REAL_SERVER_LOG_BIG));
    } finally {
      if (!listening) child.kill("SIGKILL");
      await child.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
