/** A model's projection from the best source at hand (router/memory/project.ts), on fake and real fitters. */
import { assert, assertEquals } from "../helpers/assert.ts";
import { engineBinPath } from "../helpers/llama_server.ts";
import { tinyLlamaGguf } from "../fixtures/gguf.ts";
import { memoryArgs } from "../../router/memory/args.ts";
import { fitParamsBin } from "../../router/memory/fit_params.ts";
import { parseGgufHeader } from "../../router/memory/gguf.ts";
import { estimateFromFiles, estimateMmproj } from "../../router/memory/gguf_estimate.ts";
import { projectModel } from "../../router/memory/project.ts";
import { deviceBytes, HOST, sumProjections } from "../../router/memory/projection.ts";
import { MiB } from "../../router/memory/size.ts";
import { canonicalFlag } from "../../router/sources/spec.ts";

const args = (...pairs: Array<[string, string | boolean]>) =>
  memoryArgs(new Map(pairs.map(([flag, value]) => [canonicalFlag(flag), value])));

async function inDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/m.gguf`, tinyLlamaGguf());
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function script(path: string, body: string): Promise<string> {
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("projectModel: the fitter's answer, with the projector's estimate added", () =>
  inDir(async (dir) => {
    const fitter = await script(`${dir}/fit`, "printf 'Host 3 1 4 \\n'");
    const m = args(["-c", "512"], ["-mm", `${dir}/m.gguf`]);
    const p = await projectModel({
      engineBin: "unused",
      modelPath: `${dir}/m.gguf`,
      args: m,
      fitParams: fitter,
    });
    const mmproj = estimateMmproj(parseGgufHeader(tinyLlamaGguf()), m);
    const fit = { perDevice: { [HOST]: deviceBytes(3 * MiB, MiB, 4 * MiB) }, source: "fit-params" as const };
    assertEquals(p, sumProjections("fit-params", fit, mmproj));
  }));

Deno.test("projectModel: the GGUF estimate when the fitter fails or is not wanted", () =>
  inDir(async (dir) => {
    const reasons: string[] = [];
    const m = args(["-c", "512"]);
    const estimate = await estimateFromFiles(`${dir}/m.gguf`, m);
    const failing = await script(`${dir}/fit`, "echo broken >&2; exit 3");
    const input = {
      engineBin: "unused",
      modelPath: `${dir}/m.gguf`,
      args: m,
      onFailure: (r: string) => void reasons.push(r),
    };
    assertEquals(await projectModel({ ...input, fitParams: failing }), estimate);
    assert(reasons.length === 1 && reasons[0].includes("exit 3: broken"), reasons.join("\n"));
    assertEquals(await projectModel({ ...input, fitParams: false }), estimate);
    // the default fitter sits next to the engine binary, which does not exist here
    assertEquals(await projectModel({ ...input, engineBin: `${dir}/llama-server` }), estimate);
  }));

const realFitter = fitParamsBin(engineBinPath());
const haveFitter = await Deno.stat(realFitter).then(() => true, () => false);
if (!haveFitter) console.warn(`memory_project_test: no ${realFitter}; the real-fitter test is skipped`);

Deno.test({
  name: "projectModel: the real fitter answers for the tiny model, below the cautious estimate",
  ignore: !haveFitter,
  fn: () =>
    inDir(async (dir) => {
      const m = args(["-c", "2048"]);
      const p = await projectModel({ engineBin: engineBinPath(), modelPath: `${dir}/m.gguf`, args: m });
      assertEquals(p.source, "fit-params");
      const estimate = await estimateFromFiles(`${dir}/m.gguf`, m);
      assert(
        p.perDevice[HOST].total <= estimate.perDevice[HOST].total,
        `${Deno.inspect(p)} vs ${Deno.inspect(estimate)}`,
      );
    }),
});
