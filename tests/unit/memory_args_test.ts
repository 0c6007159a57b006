/**
 * The memory-relevant arguments with the server's defaults written out (router/memory/args.ts):
 * absent `-np` means 4 slots on one unified cache, absent `-c` the training context, and `LLAMA_ARG_*`
 * stand in for absent options as they do in llama.cpp.
 */
import { assertEquals } from "../helpers/assert.ts";
import { assertThrows } from "./sources_assert.ts";
import {
  MEMORY_FLAGS,
  memoryArgs,
  MemoryArgsError,
  memoryArgsText,
  optionsFromArgv,
} from "../../router/memory/args.ts";
import { renderArgs } from "../../router/flags/flags.ts";
import type { OptionMap } from "../../router/flags/flags.ts";
import { canonicalFlag } from "../../router/sources/spec.ts";

/** Options as a spec holds them: keyed by canonical flag, whichever spelling the test uses. */
const opts = (...pairs: Array<[string, string | boolean]>): OptionMap =>
  new Map(pairs.map(([flag, value]) => [canonicalFlag(flag), value]));

Deno.test("memoryArgs: the server's defaults, written out", () => {
  assertEquals(memoryArgs(opts(["--model", "/m/a.gguf"])), {
    model: "/m/a.gguf",
    ctx: 0,
    parallel: 4,
    kvUnified: true,
    batch: 2048,
    ubatch: 512,
    cacheTypeK: "f16",
    cacheTypeV: "f16",
    flashAttn: "auto",
    gpuLayers: -1,
    cpuMoe: false,
    nCpuMoe: 0,
    nCpuFfn: 0,
    swaFull: false,
    kvOffload: true,
    cacheRamMib: 8192,
  });
});

Deno.test("memoryArgs: an explicit -np turns the unified cache off unless -kvu says otherwise", () => {
  const np2 = memoryArgs(opts(["--parallel", "2"]));
  assertEquals([np2.parallel, np2.kvUnified], [2, false]);
  const np2u = memoryArgs(opts(["--parallel", "2"], ["--kv-unified", true]));
  assertEquals([np2u.parallel, np2u.kvUnified], [2, true]);
  // with auto slots server.cpp sets kv_unified = true whatever -no-kvu said
  assertEquals(memoryArgs(opts(["--kv-unified", false])).kvUnified, true);
  const auto = memoryArgs(opts(["--parallel", "-1"]));
  assertEquals([auto.parallel, auto.kvUnified], [4, true]);
});

Deno.test("memoryArgs: --kv-unified-per-slot sizes the context only when -c is absent", () => {
  assertEquals(memoryArgs(opts(["--kv-unified-per-slot", "1024"])).ctx, 4096);
  assertEquals(memoryArgs(opts(["--kv-unified-per-slot", "1024"], ["--parallel", "3"])).ctx, 3072);
  assertEquals(memoryArgs(opts(["--kv-unified-per-slot", "1024"], ["--ctx-size", "8192"])).ctx, 8192);
});

Deno.test("memoryArgs: GPU placement, KV types, flash attention spellings", () => {
  const m = memoryArgs(opts(
    ["--gpu-layers", "all"],
    ["--device", "CUDA0,CUDA1"],
    ["--tensor-split", "3,1"],
    ["--split-mode", "layer"],
    ["--main-gpu", "1"],
    ["--cache-type-k", "q8_0"],
    ["--cache-type-v", "q4_0"],
    ["--flash-attn", "enabled"],
    ["--kv-offload", false],
    ["--swa-full", true],
    ["--n-cpu-moe", "3"],
  ));
  assertEquals(
    [m.gpuLayers, m.devices, m.tensorSplit, m.splitMode, m.mainGpu, m.cacheTypeK, m.cacheTypeV, m.flashAttn],
    [-2, "CUDA0,CUDA1", "3,1", "layer", 1, "q8_0", "q4_0", "on"],
  );
  assertEquals([m.kvOffload, m.swaFull, m.nCpuMoe], [false, true, 3]);
  assertEquals(memoryArgs(opts(["--gpu-layers", "auto"])).gpuLayers, -1);
  assertEquals(memoryArgs(opts(["--gpu-layers", "20"])).gpuLayers, 20);
  assertEquals(memoryArgs(opts(["--flash-attn", "off"])).flashAttn, "off");
});

Deno.test("memoryArgs: the projector and the draft, which keeps its own f16 KV by default", () => {
  const m = memoryArgs(opts(
    ["--mmproj", "/m/mmproj.gguf"],
    ["--mmproj-offload", false],
    ["--model-draft", "/m/draft.gguf"],
    ["--gpu-layers-draft", "10"],
    ["--cache-type-k", "q8_0"],
  ));
  assertEquals(m.mmproj, { path: "/m/mmproj.gguf", offload: false });
  assertEquals(m.draft, {
    model: "/m/draft.gguf",
    gpuLayers: 10,
    cpuMoe: false,
    nCpuMoe: 0,
    cacheTypeK: "f16",
    cacheTypeV: "f16",
  });
});

Deno.test("memoryArgs: LLAMA_ARG_* fill in absent options; given options win", () => {
  const env = { LLAMA_ARG_CTX_SIZE: "16384", LLAMA_ARG_N_PARALLEL: "1", LLAMA_ARG_SWA_FULL: "1" };
  const m = memoryArgs(opts(), env);
  assertEquals([m.ctx, m.parallel, m.kvUnified, m.swaFull], [16384, 1, false, true]);
  assertEquals(memoryArgs(opts(["--ctx-size", "512"]), env).ctx, 512);
  assertEquals(memoryArgs(opts(), { LLAMA_ARG_KV_OFFLOAD: "0" }).kvOffload, false);
});

Deno.test("memoryArgs: a value it cannot read names the option", () => {
  assertThrows(() => memoryArgs(opts(["--ctx-size", "big"])), MemoryArgsError, "--ctx-size", "'big'");
  assertThrows(
    () => memoryArgs(opts(["--gpu-layers", "most"])),
    MemoryArgsError,
    canonicalFlag("-ngl"),
    "'most'",
  );
  assertThrows(() => memoryArgs(opts(["--flash-attn", "maybe"])), MemoryArgsError, "--flash-attn");
  assertThrows(() => memoryArgs(opts(["--parallel", "0"])), MemoryArgsError, "--parallel");
});

Deno.test("memoryArgsText: equal configurations give equal text, whatever the options' order", () => {
  const a = memoryArgs(opts(["--ctx-size", "4096"], ["--parallel", "4"], ["--kv-unified", true]));
  const b = memoryArgs(opts(["--kv-unified", true], ["--parallel", "4"], ["--ctx-size", "4096"]));
  const c = memoryArgs(opts(["--ctx-size", "4096"]));
  assertEquals(memoryArgsText(a), memoryArgsText(b));
  // explicit -np 4 -kvu is what the server does without -np
  assertEquals(memoryArgsText(a), memoryArgsText(c));
  assertEquals(memoryArgsText(a) === memoryArgsText(memoryArgs(opts(["--ctx-size", "8192"]))), false);
});

Deno.test("MEMORY_FLAGS: the options a cache key must cover, by canonical flag", () => {
  for (const spelling of ["-c", "-np", "-ngl", "-md", "-mm", "-ctk", "-ctkd", "-ts", "-ot", "-cram"]) {
    assertEquals(MEMORY_FLAGS.has(canonicalFlag(spelling)), true, spelling);
  }
});

Deno.test("optionsFromArgv: reads back what renderArgs writes, any spelling, --flag=value too", () => {
  const options = opts(["-m", "/m/a.gguf"], ["-c", "4096"], ["-nkvo", false], ["--swa-full", true], [
    "-ngl",
    "-1",
  ]);
  assertEquals(optionsFromArgv(renderArgs(options)), options);
  const argv = [
    "-m",
    "/m/a.gguf",
    "--ctx-size=8192",
    "-np",
    "2",
    "--no-kv-offload",
    "--alias",
    "x",
    "--bogus",
  ];
  assertEquals(
    memoryArgs(optionsFromArgv(argv)),
    memoryArgs(opts(["-m", "/m/a.gguf"], ["-c", "8192"], ["-np", "2"], ["-nkvo", false])),
  );
});
