/**
 * Out-of-memory load failures: recognised from the engine's own messages (as the pinned llama.cpp
 * prints them), retried once after evicting every idle unpinned model, failed the second time.
 */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { type LoadFailure, onLoadFailure, oomEvidence } from "../../router/scheduler/policies/oom.ts";

const failure = (logLines: string[], over: Partial<LoadFailure> = {}): LoadFailure => ({
  modelId: "big",
  logLines,
  signal: null,
  killedByGateway: false,
  ...over,
});

/** Lines printed by the pinned engine when an allocation fails, one per backend or layer. */
const OOM_LINES = [
  "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 9216.00 MiB on device 0: cudaMalloc failed: out of memory",
  "alloc_tensor_range: failed to allocate CUDA0 buffer of size 9663676416",
  "llama_model_load: error loading model: unable to allocate CUDA0 buffer",
  "ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 137438953472",
  "llama_init_from_model: failed to initialize the context: failed to allocate buffer for kv cache",
  "ggml_gallocr_reserve_n: failed to allocate ROCm0 buffer of size 2147483648",
  "graph_reserve: failed to allocate compute buffers",
  "ggml_aligned_malloc: insufficient memory (attempted to allocate 131072.00 MB)",
  "ggml_metal_buffer_init: error: failed to allocate buffer, size = 20480.00 MiB",
  "ggml_backend_metal_buffer_type_alloc_buffer: failed to allocate Metal buffer of 21474836480 bytes (out of memory)",
  "ggml_vulkan: Device memory allocation of size 8589934592 failed.",
  "ggml_vulkan: vk::Device::allocateMemory: ErrorOutOfDeviceMemory",
  "CUDA error: out of memory",
  "terminate called after throwing an instance of 'std::bad_alloc'",
  // with the log prefix and timestamp llama.cpp adds
  "0.01.234.567 E llama_model_load: error loading model: unable to allocate CUDA0 buffer",
];

/** Failures of other kinds, and allocation warnings the engine survives. */
const NOT_OOM_LINES = [
  "llama_model_load: error loading model: tensor 'blk.0.attn_q.weight' data is not within the file bounds",
  "gguf_init_from_file_impl: failed to read magic",
  "common_init_from_params: failed to load model '/models/broken.gguf'",
  "srv    load_model: failed to load model, '/models/broken.gguf'",
  "WARNING: failed to allocate 512.00 MB of pinned memory",
  "ggml_vulkan: Failed to allocate pinned memory (vk::Device::allocateMemory: ErrorOutOfHostMemory)",
  "llama_model_load_from_file_impl: failed to allocate host buffer for async uploads for device CUDA0",
  "ggml_sycl_reorder: failed to allocate 4096 bytes for reorder temp buffer, skipping reorder",
  "CPU_RISCV64_SPACEMIT: failed to allocate init_barrier from shared mem, falling back to heap",
];

Deno.test("oom: every backend's allocation failure is recognised", () => {
  for (const line of OOM_LINES) {
    assertEquals(
      oomEvidence(failure(["main: loading model", line, "main: exiting due to model loading error"])),
      line.trim(),
      line,
    );
  }
});

Deno.test("oom: other failures and survivable allocation warnings are not out of memory", () => {
  for (const line of NOT_OOM_LINES) assertEquals(oomEvidence(failure([line])), undefined, line);
  assertEquals(oomEvidence(failure(NOT_OOM_LINES)), undefined, "all of them together");
  assertEquals(onLoadFailure(failure(NOT_OOM_LINES), false), { kind: "not-oom" });
});

Deno.test("oom: a tensor bigger than Vulkan's largest buffer is not a memory shortage eviction can fix", () => {
  const lines = [
    "ggml_vulkan: Memory allocation of size 4294967296 failed.",
    "ggml_vulkan: Requested buffer size exceeds device buffer size limit",
  ];
  assertEquals(oomEvidence(failure(lines)), undefined);
});

Deno.test("oom: the evidence is the last allocation failure, nearest the exit", () => {
  const lines = [
    "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 512.00 MiB on device 0: cudaMalloc failed: out of memory",
    "WARNING: failed to allocate 512.00 MB of pinned memory",
    "llama_model_load: error loading model: unable to allocate CUDA0 buffer",
    "main: exiting due to model loading error",
  ];
  assertEquals(
    oomEvidence(failure(lines)),
    "llama_model_load: error loading model: unable to allocate CUDA0 buffer",
  );
});

Deno.test("oom: a SIGKILL the gateway did not send during a load is the kernel's OOM killer", () => {
  assertMatch(oomEvidence(failure([], { signal: "SIGKILL" }))!, /SIGKILL.*out-of-memory killer/);
  assertEquals(
    oomEvidence(failure([], { signal: "SIGKILL", killedByGateway: true })),
    undefined,
    "a hung load we killed",
  );
  assertEquals(oomEvidence(failure([], { signal: "SIGSEGV" })), undefined);
});

Deno.test("oom: the first failure retries after evicting all idle unpinned models, the second fails with the reason", () => {
  const f = failure(["llama_model_load: error loading model: unable to allocate CUDA0 buffer"]);
  assertEquals(onLoadFailure(f, false), {
    kind: "retry-after-evicting-all-idle-unpinned",
    evidence: "llama_model_load: error loading model: unable to allocate CUDA0 buffer",
  });
  const second = onLoadFailure(f, true);
  assertEquals(second.kind, "fail");
  assert(second.kind === "fail");
  assertEquals(
    second.reason,
    "model big ran out of memory while loading, again after every idle unpinned model was unloaded: " +
      "llama_model_load: error loading model: unable to allocate CUDA0 buffer",
  );
});

Deno.test("oom: never a loop, however often the load fails", () => {
  const f = failure(["CUDA error: out of memory"]);
  let retried = false;
  let loads = 0;
  for (;;) {
    loads++;
    const decision = onLoadFailure(f, retried);
    if (decision.kind !== "retry-after-evicting-all-idle-unpinned") break;
    retried = true;
    assert(loads < 10, "the policy keeps asking for retries");
  }
  assertEquals(loads, 2, "the first load and one retry");
});
