/**
 * The gateway's memory port (router/memory/port.ts): budgets and serialised devices from the devices
 * found, projections as claims (cached by key, the fitter first, the estimate after it), the engine's
 * own figures after a load, `-hf` models found in the cache, `/props`' device report; on fake
 * fitters, and on the real one when it is built.
 */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { engineBinPath } from "../helpers/llama_server.ts";
import { addToHfCache } from "../helpers/models.ts";
import { tinyLlamaGguf } from "../fixtures/gguf.ts";
import { REAL_SERVER_LOG_BIG } from "../fixtures/memory_outputs.ts";
import { renderArgs } from "../../router/flags/flags.ts";
import { memoryArgs } from "../../router/memory/args.ts";
import { MemorySpecError } from "../../router/memory/budget.ts";
import type { Device } from "../../router/memory/devices.ts";
import { fitParamsBin } from "../../router/memory/fit_params.ts";
import { estimateFromFiles } from "../../router/memory/gguf_estimate.ts";
import { pinnedOverBudget } from "../../router/memory/pinned.ts";
import { createMemoryPort, type GatewayMemory, type MemoryPortOptions } from "../../router/memory/port.ts";
import { claimBytes, defaultOverheads, HOST } from "../../router/memory/projection.ts";
import { GiB, MiB } from "../../router/memory/size.ts";
import { newSpec } from "../../router/sources/spec.ts";
import type { EngineLaunch } from "../../runners/protocol.ts";

const device = (name: string, total: number): Device => ({
  name,
  description: name,
  total,
  free: total,
  kind: name === HOST ? "host" : "gpu",
});
const host = (total: number) => device(HOST, total);
const gpu = device;

interface World {
  dir: string;
  model: string;
  /** the fitter's invocations, one argv per line */
  calls(): Promise<string[]>;
  logs: string[];
  options(extra?: Partial<MemoryPortOptions>): MemoryPortOptions;
}

async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "switchyard-port-" });
  try {
    const model = `${dir}/m.gguf`;
    await Deno.writeFile(model, tinyLlamaGguf());
    const fitter = `${dir}/fit`;
    await Deno.writeTextFile(fitter, `#!/bin/sh\necho "$*" >> '${dir}/calls'\nprintf 'Host 3 1 4 \\n'\n`);
    await Deno.chmod(fitter, 0o755);
    const logs: string[] = [];
    await fn({
      dir,
      model,
      logs,
      calls: async () =>
        (await Deno.readTextFile(`${dir}/calls`).catch(() => "")).split("\n").filter(Boolean),
      options: (extra = {}) => ({
        engineBin: `${dir}/llama-server`,
        buildInfo: "b1-test",
        spec: "auto",
        env: {},
        cacheDir: `${dir}/hub`,
        log: (line) => logs.push(line),
        devices: [host(16 * GiB)],
        fitParams: fitter,
        ...extra,
      }),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const launchOf = (options: Map<string, string | boolean>): EngineLaunch => ({
  bin: "/x/llama-server",
  args: renderArgs(options),
  env: {},
});

Deno.test("port: budgets under --models-memory, GPUs that fit against live memory are serialised", () =>
  withWorld(async (w) => {
    const devices = [gpu("CUDA0", 24 * GiB), gpu("Vulkan1", 8 * GiB), gpu("MTL0", 32 * GiB), host(64 * GiB)];
    const auto = await createMemoryPort(w.options({ devices }));
    assertEquals(auto.budgets()[HOST], 64 * GiB - Math.round(64 * GiB * 0.05));
    assertEquals(auto.serialisedDevices(), ["CUDA0", "Vulkan1"]);
    const given = await createMemoryPort(w.options({ devices, spec: "host=12G,cuda0=20G" }));
    assertEquals([given.budgets()[HOST], given.budgets().CUDA0], [12 * GiB, 20 * GiB]);
    const unknown = await createMemoryPort(w.options({ devices, spec: "CUDA7=1G" })).catch((e) => e);
    assert(unknown instanceof MemorySpecError);
    assertMatch(unknown.message, /unknown device 'CUDA7' \(devices: host, CUDA0, Vulkan1, MTL0\)/);
    // one line at start-up names every device, its budget and where projections come from
    const line = w.logs.findLast((l) => l.startsWith("memory: CUDA0 24 GiB"));
    assert(line, w.logs.join("\n"));
    assertMatch(
      line,
      /Host 64 GiB \(64 GiB free\), budget 12 GiB \(spec, reserve 52 GiB\); projections by fit/,
    );
  }));

Deno.test("port: a projection is the fitter's answer as a claim, run once per key", () =>
  withWorld(async (w) => {
    const port = await createMemoryPort(w.options());
    const options = new Map([["--model", w.model], ["--ctx-size", "512"], ["--cache-ram", "0"]]);
    const view = await port.project(newSpec("m", "models_dir", options), launchOf(options));
    // `Host 3 1 4`, whole MiB rounded down: each figure is claimed at the top of its MiB
    assertEquals(view, { bytes: { [HOST]: 11 * MiB }, source: "fit-params" });
    // the same launch again, and another spelling of the same memory arguments: the cache answers
    await port.project(newSpec("m", "models_dir", options), launchOf(options));
    const respelled = new Map([["--model", w.model], ["--ctx-size", "512"], ["--cache-ram", "0"], [
      "--temp",
      "0.1",
    ]]);
    await port.project(newSpec("m", "models_dir", respelled), launchOf(respelled));
    assertEquals((await w.calls()).length, 1);
    const bigger = new Map([["--model", w.model], ["--ctx-size", "4096"], ["--cache-ram", "0"]]);
    await port.project(newSpec("m", "models_dir", bigger), launchOf(bigger));
    assertEquals((await w.calls()).length, 2, "other arguments, another key");
    // the host claim counts the prompt cache the engine may grow
    const cached = new Map([["--model", w.model], ["--ctx-size", "512"], ["--cache-ram", "100"]]);
    assertEquals((await port.project(newSpec("m", "models_dir", cached), launchOf(cached))).bytes, {
      [HOST]: 111 * MiB,
    });
    // a changed file is another key
    await Deno.writeFile(w.model, tinyLlamaGguf({ nFf: 256 }));
    await port.project(newSpec("m", "models_dir", options), launchOf(options));
    assertEquals((await w.calls()).length, 4);
  }));

Deno.test("port: concurrent projections of one launch share one fitter run", () =>
  withWorld(async (w) => {
    const port = await createMemoryPort(w.options());
    const options = new Map([["--model", w.model], ["--ctx-size", "512"]]);
    const spec = newSpec("m", "models_dir", options);
    const views = await Promise.all([1, 2, 3].map(() => port.project(spec, launchOf(options))));
    assert(views.every((v) => v.source === "fit-params"));
    assertEquals((await w.calls()).length, 1);
  }));

Deno.test("port: without a fitter, or when it fails, the GGUF estimate; the failure is logged once", () =>
  withWorld(async (w) => {
    const options = new Map([["--model", w.model], ["--ctx-size", "512"]]);
    const spec = newSpec("m", "models_dir", options);
    const args = memoryArgs(options);
    const estimate = claimBytes(await estimateFromFiles(w.model, args), defaultOverheads(args));
    const none = await createMemoryPort(w.options({ fitParams: undefined }));
    assertEquals(await none.project(spec, launchOf(options)), { bytes: estimate, source: "gguf" });
    assert(w.logs.some((l) => /projections by the GGUF estimate \(no llama-fit-params next to/.test(l)));
    const broken = `${w.dir}/broken`;
    await Deno.writeTextFile(broken, "#!/bin/sh\necho 'no such model' >&2\nexit 2\n");
    await Deno.chmod(broken, 0o755);
    const failing = await createMemoryPort(w.options({ fitParams: broken }));
    assertEquals((await failing.project(spec, launchOf(options))).source, "gguf");
    const other = new Map([["--model", w.model], ["--ctx-size", "1024"]]);
    assertEquals((await failing.project(spec, launchOf(other))).source, "gguf");
    assertEquals(w.logs.filter((l) => /exit 2: no such model; using the GGUF estimate/.test(l)).length, 2);
  }));

Deno.test("port: the fitter next to the engine is found; a model nothing can read is booked by its size", () =>
  withWorld(async (w) => {
    const engine = `${w.dir}/bin/llama-server`;
    await Deno.mkdir(`${w.dir}/bin`);
    await Deno.copyFile(`${w.dir}/fit`, fitParamsBin(engine));
    const port = await createMemoryPort(w.options({ engineBin: engine, fitParams: undefined }));
    const options = new Map([["--model", w.model], ["--ctx-size", "512"], ["--cache-ram", "0"]]);
    assertEquals(
      (await port.project(newSpec("m", "models_dir", options), launchOf(options))).source,
      "fit-params",
    );
    const junk = `${w.dir}/junk.gguf`;
    await Deno.writeTextFile(junk, "not a gguf at all");
    const estimateOnly = await createMemoryPort(w.options({ fitParams: false }));
    const bad = new Map([["--model", junk], ["--cache-ram", "0"]]);
    assertEquals(await estimateOnly.project(newSpec("j", "models_dir", bad), launchOf(bad)), {
      bytes: { [HOST]: 17 },
      source: "gguf",
    });
    assert(w.logs.some((l) => /memory: j: cannot project .*junk\.gguf .*claiming its file size/.test(l)));
  }));

Deno.test("port: a cache model's file is found in the HF cache; one not there is named", () =>
  withWorld(async (w) => {
    const port = await createMemoryPort(w.options());
    await addToHfCache(`${w.dir}/hub`, "o/tiny-GGUF", "tiny-Q8_0.gguf", tinyLlamaGguf());
    const options = new Map<string, string | boolean>([["--hf-repo", "o/tiny-GGUF:Q8_0"], [
      "--offline",
      true,
    ]]);
    const view = await port.project(newSpec("o/tiny-GGUF:Q8_0", "cache", options), launchOf(options));
    assertEquals(view.source, "fit-params");
    assertMatch((await w.calls())[0], /-m \S*snapshots\/\S+\/tiny-Q8_0\.gguf /);
    const missing = new Map<string, string | boolean>([["--hf-repo", "o/absent-GGUF"]]);
    const err = await port.project(newSpec("o/absent-GGUF", "cache", missing), launchOf(missing)).catch((e) =>
      e
    );
    assertMatch(String(err), /-hf o\/absent-GGUF is not in the cache/);
  }));

Deno.test("port: after a load the engine's figures stand for the launch; without buffer lines, nothing", () =>
  withWorld(async (w) => {
    const port = await createMemoryPort(w.options());
    const options = new Map([["--model", w.model], ["--ctx-size", "2048"], ["--cache-ram", "0"]]);
    const spec = newSpec("m", "models_dir", options);
    const launch = launchOf(options);
    await port.project(spec, launch);
    assertEquals(
      port.observe(spec, launch, ["srv load_model: loading model", "main: model loaded"]),
      undefined,
    );
    const seen = port.observe(spec, launch, REAL_SERVER_LOG_BIG.split("\n"));
    // 39.98 model + 1.00 KV + 0.01 output + 160.60 compute MiB
    assertEquals(seen?.source, "observed");
    assertEquals(Math.round(seen!.bytes[HOST] / MiB * 100) / 100, 201.59);
    assert(
      w.logs.some((l) =>
        /memory: m: the engine's buffers take 201\.6 MiB on Host \(fit-params projected 11 MiB\)$/.test(l)
      ),
    );
    assertEquals(
      await port.project(spec, launch),
      seen,
      "the next projection of that launch is what was seen",
    );
    assertEquals((await w.calls()).length, 1);
  }));

Deno.test("port: without GPUs, -lv 4 only until the fitter projected a launch or an engine logged it", () =>
  withWorld(async (w) => {
    const options = new Map([["--model", w.model], ["--ctx-size", "2048"], ["--cache-ram", "0"]]);
    const spec = newSpec("m", "models_dir", options);
    const verbosity = (o: Map<string, string | boolean>) => o.get("--log-verbosity");
    const launchFor = (port: GatewayMemory, o: Map<string, string | boolean>) =>
      launchOf(port.launchOptions(o));

    // the fitter's projection is the engine's own, claimed at the top of each MiB: no need to log it
    const fitted = await createMemoryPort(w.options());
    const first = fitted.launchOptions(options);
    assertEquals(verbosity(first), "4", "before any projection, the launch logs its buffer sizes");
    assertEquals((await fitted.project(spec, launchOf(first))).source, "fit-params");
    const quiet = fitted.launchOptions(options);
    assertEquals(verbosity(quiet), undefined, "projected by the fitter: the engine's own verbosity");
    assertEquals(renderArgs(quiet), renderArgs(first).filter((a) => a !== "--log-verbosity" && a !== "4"));
    // another launch of the model (another context) is projected on its own
    const other = new Map([...options, ["--ctx-size", "4096"]]);
    assertEquals(verbosity(fitted.launchOptions(other)), "4");
    // a user's verbosity is the user's, either way
    assertEquals(verbosity(fitted.launchOptions(new Map([...options, ["--log-verbosity", "1"]]))), "1");

    // with only the GGUF estimate, the engine logs its figures once, and they stand for the launch
    const estimated = await createMemoryPort(w.options({ fitParams: false }));
    const launch = launchFor(estimated, options);
    assertEquals((await estimated.project(spec, launch)).source, "gguf");
    assertEquals(verbosity(estimated.launchOptions(options)), "4", "an estimate: the load is observed");
    estimated.observe(spec, launch, ["srv load_model: loading model", "main: model loaded"]);
    assertEquals(verbosity(estimated.launchOptions(options)), "4", "no figures in the log: observe again");
    estimated.observe(spec, launch, REAL_SERVER_LOG_BIG.split("\n"));
    const again = estimated.launchOptions(options);
    assertEquals(verbosity(again), undefined, "figures seen: the next engine runs at its own verbosity");
    assertEquals((await estimated.project(spec, launchOf(again))).source, "observed");

    // with a GPU the engine's --fit may place a launch differently each time: it is always observed
    const withGpu = await createMemoryPort(w.options({ devices: [gpu("CUDA0", 24 * GiB), host(16 * GiB)] }));
    const gpuLaunch = launchFor(withGpu, options);
    await withGpu.project(spec, gpuLaunch);
    withGpu.observe(spec, gpuLaunch, REAL_SERVER_LOG_BIG.split("\n"));
    assertEquals(verbosity(withGpu.launchOptions(options)), "4");
  }));

Deno.test("port: the device report has the host's live free memory, budgets and reserves", () =>
  withWorld(async (w) => {
    const port = await createMemoryPort(w.options({ spec: "host=1G" }));
    const report = await port.report();
    assertEquals(Object.keys(report), [HOST]);
    const h = report[HOST];
    assertEquals([h.total, h.budget, h.reserve], [16 * GiB, GiB, 15 * GiB]);
    assert(h.free > 0, "read from /proc, not the fake's figure");
  }));

Deno.test({
  name: "port: on the real engine, devices are found and a projection comes from llama-fit-params",
  ignore: !await Deno.stat(fitParamsBin(engineBinPath())).then(() => true, () => false),
  fn: () =>
    withWorld(async (w) => {
      const port = await createMemoryPort(
        w.options({ engineBin: engineBinPath(), devices: undefined, fitParams: undefined }),
      );
      assert(port.budgets()[HOST] > 0);
      const options = new Map([["--model", w.model], ["--ctx-size", "512"], ["--cache-ram", "0"]]);
      const view = await port.project(newSpec("m", "models_dir", options), launchOf(options));
      assertEquals(view.source, "fit-params");
      assert(view.bytes[HOST] >= MiB, JSON.stringify(view));
    }),
});

Deno.test("pinnedOverBudget: pins that fit pass; over a budget, the device, the models and the sums", () => {
  const budgets = { [HOST]: 10 * GiB, CUDA0: 8 * GiB };
  assertEquals(pinnedOverBudget([{ modelId: "a", bytes: { [HOST]: 6 * GiB } }], budgets), undefined);
  const message = pinnedOverBudget([
    { modelId: "a", bytes: { [HOST]: 6 * GiB, CUDA0: 2 * GiB } },
    { modelId: "b", bytes: { [HOST]: 5 * GiB } },
    { modelId: "c", bytes: { GPU9: 99 * GiB } },
  ], budgets);
  assertEquals(
    message,
    "the pinned models need more than the memory budgets: on Host a (6 GiB), b (5 GiB) claim 11 GiB, more " +
      "than its budget of 10 GiB (unpin some, or raise --models-memory)",
  );
});
