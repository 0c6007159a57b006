/**
 * The engine's own projection (router/memory/fit_params.ts): the arguments llama-fit-params accepts,
 * its `--fit-print on` rows, and the runner, on fake binaries and, where it has been built, on the real
 * one with the tiny models.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { engineBinPath } from "../helpers/llama_server.ts";
import { tinyLlamaGguf } from "../fixtures/gguf.ts";
import {
  BIG_MODEL,
  GPU_FIT_PRINT,
  GQA_MODEL,
  REAL_FIT_PRINT_BIG,
  REAL_FIT_PRINT_GQA_Q8,
  REAL_FIT_PRINT_STDERR,
} from "../fixtures/memory_outputs.ts";
import { type MemoryArgs, memoryArgs } from "../../router/memory/args.ts";
import {
  combineFitRuns,
  FIT_PARAMS_BUILD,
  fitParamsArgs,
  fitParamsBin,
  fitRuns,
  parseFitPrint,
  runFitParams,
} from "../../router/memory/fit_params.ts";
import { deviceBytes, HOST, type MemoryProjection } from "../../router/memory/projection.ts";
import { MiB } from "../../router/memory/size.ts";
import { canonicalFlag } from "../../router/sources/spec.ts";

const args = (...pairs: Array<[string, string | boolean]>): MemoryArgs =>
  memoryArgs(new Map(pairs.map(([flag, value]) => [canonicalFlag(flag), value])));
const mib = (model: number, context: number, compute: number) =>
  deviceBytes(model * MiB, context * MiB, compute * MiB);

Deno.test("parseFitPrint: the real CPU output, a Host row with a trailing space, in whole MiB", () => {
  assertEquals(parseFitPrint(REAL_FIT_PRINT_BIG), {
    perDevice: { [HOST]: mib(39, 1, 160) },
    source: "fit-params",
  });
  assertEquals(parseFitPrint(REAL_FIT_PRINT_GQA_Q8), {
    perDevice: { [HOST]: mib(2, 0, 3) },
    source: "fit-params",
  });
});

Deno.test("parseFitPrint: GPU rows before the host row; older builds' lowercase host", () => {
  assertEquals(parseFitPrint(GPU_FIT_PRINT)?.perDevice, {
    CUDA0: mib(7401, 814, 517),
    CUDA1: mib(3000, 200, 300),
    [HOST]: mib(1280, 0, 154),
  });
  assertEquals(parseFitPrint("MTL0 7401 814 517\nhost 1280 0 154\n")?.perDevice[HOST], mib(1280, 0, 154));
});

Deno.test("parseFitPrint: no host row means the run did not finish", () => {
  assertEquals(parseFitPrint(""), undefined);
  assertEquals(parseFitPrint("CUDA0 1 2 3 \n"), undefined);
  assertEquals(parseFitPrint(REAL_FIT_PRINT_STDERR), undefined);
});

Deno.test("fitParamsArgs: the server's defaults written out; a unified cache measured as one stream", () => {
  assertEquals(fitParamsArgs("/m/a.gguf", args(["-c", "8192"])), [
    "-m",
    "/m/a.gguf",
    "-c",
    "8192",
    "-np",
    "1",
    "-b",
    "2048",
    "-ub",
    "512",
    "-fa",
    "auto",
    "-ngl",
    "-1",
    "-ctk",
    "f16",
    "-ctv",
    "f16",
    "--fit-print",
    "on",
  ]);
  const np2 = fitParamsArgs("/m/a.gguf", args(["-np", "2"], ["-c", "4096"]));
  assertEquals(np2.slice(np2.indexOf("-np"), np2.indexOf("-np") + 2), ["-np", "2"]);
  // fit-params refuses the server-only --kv-unified: it must never be passed
  assert(!fitParamsArgs("/m/a.gguf", args(["-np", "2"], ["-kvu", true])).includes("-kvu"));
});

Deno.test("fitParamsArgs: GPU placement and cache options pass through; -c 0 stays the training context", () => {
  const a = fitParamsArgs(
    "/m/a.gguf",
    args(
      ["-ngl", "20"],
      ["-dev", "CUDA0,CUDA1"],
      ["-ts", "3,1"],
      ["-sm", "row"],
      ["-mg", "1"],
      ["-ot", "exps=CPU"],
      ["-cmoe", true],
      ["-ncmoe", "2"],
      ["-ncffn", "1"],
      ["--swa-full", true],
      ["-nkvo", false],
      ["--override-kv", "llama.context_length=int:2048"],
    ),
  );
  const joined = a.join(" ");
  for (
    const part of [
      "-c 0",
      "-ngl 20",
      "-dev CUDA0,CUDA1",
      "-ts 3,1",
      "-sm row",
      "-mg 1",
      "-ot exps=CPU",
      "-cmoe",
      "-ncmoe 2",
      "-ncffn 1",
      "--swa-full",
      "-nkvo",
      "--override-kv llama.context_length=int:2048",
    ]
  ) {
    assert(joined.includes(part), `${part} in ${joined}`);
  }
});

Deno.test("fitRuns: a draft gets its own run with its own placement; SWA with shared slots a second probe", () => {
  const m = args(["-c", "4096"], ["-md", "/m/draft.gguf"], ["-ngld", "0"], ["-ctk", "q8_0"]);
  const runs = fitRuns("/m/a.gguf", m);
  assertEquals(runs.map((r) => r.use), ["model", "draft"]);
  const draft = runs[1].args.join(" ");
  assert(draft.includes("-m /m/draft.gguf") && draft.includes("-ngl 0") && draft.includes("-ctk f16"), draft);
  assert(draft.includes("-c 4096"), draft);
  const swa = fitRuns("/m/a.gguf", args(["-c", "4096"]), { hasSwa: true });
  assertEquals(swa.map((r) => r.use), ["model", "context"]);
  assert(swa[1].args.join(" ").includes("-np 4"), swa[1].args.join(" "));
  assertEquals(fitRuns("/m/a.gguf", args(["-c", "4096"], ["-np", "1"]), { hasSwa: true }).length, 1);
});

Deno.test("combineFitRuns: the probe only raises the context; a draft adds to every column", () => {
  const runs = fitRuns("/m/a.gguf", args(["-c", "4096"], ["-md", "/m/d.gguf"]), { hasSwa: true });
  const fit = (perDevice: MemoryProjection["perDevice"]): MemoryProjection => ({
    perDevice,
    source: "fit-params",
  });
  const combined = combineFitRuns(runs, [
    fit({ CUDA0: mib(100, 10, 50), [HOST]: mib(5, 0, 2) }),
    fit({ CUDA0: mib(100, 30, 40), [HOST]: mib(5, 0, 2) }),
    fit({ CUDA0: mib(20, 4, 8), [HOST]: mib(1, 0, 1) }),
  ]);
  assertEquals(combined, {
    perDevice: { CUDA0: mib(120, 34, 58), [HOST]: mib(6, 0, 3) },
    source: "fit-params",
  });
});

Deno.test("fitParamsBin: built next to llama-server; the build plan names its cmake target", () => {
  assertEquals(fitParamsBin("/x/build/bin/llama-server"), "/x/build/bin/llama-fit-params");
  assertEquals(fitParamsBin("llama-server"), "llama-fit-params");
  assertEquals(FIT_PARAMS_BUILD.target, "llama-fit-params");
  assert(FIT_PARAMS_BUILD.cmakeBuildArgs.includes("llama-fit-params"));
});

/** A fake fitter: records its arguments, prints `stdout`, exits with `code` (or never, with `hang`). */
async function fakeFitter(dir: string, stdout: string, code = 0, hang = false): Promise<string> {
  const path = `${dir}/llama-fit-params`;
  const body = hang ? "exec sleep 60" : `printf '%s' '${stdout}'\nexit ${code}`;
  await Deno.writeTextFile(
    path,
    `#!/bin/sh\necho "$@" >> '${dir}/args'\necho 'some log line' >&2\n${body}\n`,
  );
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("runFitParams: parses a fitter's rows and passes the allow-listed arguments", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bin = await fakeFitter(dir, "CUDA0 10 2 3 \nHost 1 0 1 \n");
    const p = await runFitParams(bin, "/m/a.gguf", args(["-c", "2048"]));
    assertEquals(p, { perDevice: { CUDA0: mib(10, 2, 3), [HOST]: mib(1, 0, 1) }, source: "fit-params" });
    assertEquals(
      (await Deno.readTextFile(`${dir}/args`)).trim(),
      fitParamsArgs("/m/a.gguf", args(["-c", "2048"])).join(" "),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runFitParams: undefined, with a reason, when the fitter fails, prints no host row, is missing or hangs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const reasons: string[] = [];
    const onFailure = (r: string) => void reasons.push(r);
    const m = args(["-c", "2048"]);
    assertEquals(await runFitParams(await fakeFitter(dir, "", 1), "/m/a.gguf", m, { onFailure }), undefined);
    assert(reasons.pop()!.includes("exit 1: some log line"));
    assertEquals(
      await runFitParams(await fakeFitter(dir, "CUDA0 1 2 3\n"), "/m/a.gguf", m, { onFailure }),
      undefined,
    );
    assert(reasons.pop()!.includes("no Host row"));
    assertEquals(await runFitParams(`${dir}/missing`, "/m/a.gguf", m, { onFailure }), undefined);
    assert(reasons.pop()!.includes(`${dir}/missing`));
    // the fitter never finishes, so the bound is reached however fast the machine is
    const hung = await fakeFitter(dir, "", 0, true);
    assertEquals(await runFitParams(hung, "/m/a.gguf", m, { onFailure, timeoutMs: 100 }), undefined);
    assert(reasons.pop()!.includes("no answer within 100 ms"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const realFitter = fitParamsBin(engineBinPath());
const haveFitter = await Deno.stat(realFitter).then(() => true, () => false);
if (!haveFitter) {
  console.warn(
    `memory_fit_params_test: no ${realFitter} (build it with cmake --build <engine>/build --target llama-fit-params); ` +
      "the real-fitter tests are skipped",
  );
}

async function withModels(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/big.gguf`, tinyLlamaGguf(BIG_MODEL));
    await Deno.writeFile(`${dir}/gqa.gguf`, tinyLlamaGguf(GQA_MODEL));
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "runFitParams: the real fitter's figures on the tiny models match the captured output",
  ignore: !haveFitter,
  fn: () =>
    withModels(async (dir) => {
      const onFailure = (r: string) => console.error(r);
      const big = await runFitParams(realFitter, `${dir}/big.gguf`, args(["-c", "2048"]), { onFailure });
      assertEquals(big, parseFitPrint(REAL_FIT_PRINT_BIG));
      const q8 = args(["-c", "2048"], ["-np", "2"], ["-ctk", "q8_0"], ["-ctv", "q8_0"], ["-fa", "on"]);
      assertEquals(
        await runFitParams(realFitter, `${dir}/gqa.gguf`, q8, { onFailure }),
        parseFitPrint(REAL_FIT_PRINT_GQA_Q8),
      );
    }),
});

Deno.test({
  name: "runFitParams: the real fitter accepts every argument the allow-list can produce, draft included",
  ignore: !haveFitter,
  fn: () =>
    withModels(async (dir) => {
      const reasons: string[] = [];
      const m = args(
        ["-c", "1024"],
        ["-b", "512"],
        ["-ub", "256"],
        // a quantized V cache needs flash attention (the engine refuses otherwise)
        ["-fa", "on"],
        ["-ngl", "0"],
        ["-ts", "1"],
        ["-sm", "layer"],
        ["-mg", "0"],
        ["-ot", "blk\\.0\\.=CPU"],
        ["-cmoe", true],
        ["-ncmoe", "1"],
        ["-ncffn", "1"],
        ["--swa-full", true],
        ["-nkvo", false],
        ["--override-kv", "llama.context_length=int:2048"],
        ["-md", `${dir}/gqa.gguf`],
        ["-ngld", "0"],
        ["-ctkd", "q8_0"],
        ["-ctvd", "q8_0"],
      );
      const p = await runFitParams(realFitter, `${dir}/big.gguf`, m, {
        onFailure: (r) => void reasons.push(r),
      });
      assertEquals(reasons, []);
      assert(p && p.perDevice[HOST].model >= 39 * MiB, Deno.inspect(p));
    }),
});
