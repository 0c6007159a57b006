/**
 * `deno task bench:memory`: how far each memory projection is from what the engine really allocates.
 * For tiny models of three sizes, contexts of 512, 2048 and 8192 and an f16 or a q8_0 KV cache, the
 * engine's fitter (`llama-fit-params`) and the GGUF estimate each project the model; then llama-server
 * loads it at `-lv 4` and its buffer lines say what it took. Writes `bench/results/projection.{json,md}`
 * (`--no-write`: print only).
 */
import { join } from "node:path";
import { engineVersion, resolveEngine } from "../router/engine/binary.ts";
import { memoryArgs, optionsFromArgv } from "../router/memory/args.ts";
import { ObservedMemory } from "../router/memory/observed.ts";
import { projectModel } from "../router/memory/project.ts";
import type { MemoryProjection } from "../router/memory/projection.ts";
import { MiB } from "../router/memory/size.ts";
import { writeTinyLlama } from "../tests/fixtures/gguf.ts";
import { machineInfo, spawnServer, waitHealthy } from "./procs.ts";
import {
  COMPONENTS,
  type Figures,
  type ProjectionResults,
  type ProjectionRow,
  renderProjectionReport,
} from "./projection_report.ts";

/**
 * Head dim 32 (a q8_0 cache needs whole 32-element blocks), grouped-query attention, a training context
 * that covers the largest case; the feed-forward layer grows to reach each file size.
 */
const MODELS: ReadonlyArray<{ name: string; mib?: number }> = [
  { name: "base" },
  { name: "wide", mib: 32 },
  { name: "wider", mib: 128 },
];
const ARCH = { nEmbd: 128, nHead: 4, nHeadKv: 2, nLayer: 4, ctxLength: 8192 };
const CONTEXTS = [512, 2048, 8192];
const KV_TYPES = ["f16", "q8_0"];
/** one thread: the bench measures memory, and two loads at once on 2 cores would only be slower */
const FLAGS = ["-t", "1"];
const HEALTHY_MS = 60_000;

function figures(p: MemoryProjection): Figures {
  const sum: Figures = { model: 0, context: 0, compute: 0, total: 0 };
  for (const b of Object.values(p.perDevice)) for (const c of COMPONENTS) sum[c] += b[c];
  return sum;
}

/** What the engine allocates for `args`: its buffer lines while it loads, once it answers. */
async function observe(bin: string, args: string[]): Promise<Figures> {
  const seen = new ObservedMemory();
  const server = spawnServer(bin, [...args, "-lv", "4"], (line) => seen.line(line));
  try {
    await waitHealthy(`${server.url}/health`, server, HEALTHY_MS);
  } finally {
    await server.stop();
  }
  const p = seen.projection();
  if (!p) {
    throw new Error(`llama-server ${args.join(" ")} logged no buffer sizes:\n${server.logs.join("\n")}`);
  }
  return figures(p);
}

async function measure(
  bin: string,
  path: string,
  ctx: number,
  kv: string,
): Promise<Omit<ProjectionRow, "model" | "fileMiB">> {
  const args = [
    "-m",
    path,
    "-c",
    String(ctx),
    "-ctk",
    kv,
    "-ctv",
    kv,
    ...(kv === "f16" ? [] : ["-fa", "on"]),
    ...FLAGS,
  ];
  const m = memoryArgs(optionsFromArgv(args));
  const fit = await projectModel({ engineBin: bin, modelPath: path, args: m });
  const gguf = await projectModel({ engineBin: bin, modelPath: path, args: m, fitParams: false });
  return {
    ctx,
    kv,
    observed: await observe(bin, args),
    fitParams: fit.source === "fit-params" ? figures(fit) : null,
    gguf: figures(gguf),
  };
}

if (import.meta.main) {
  const write = !Deno.args.includes("--no-write");
  const bin = await resolveEngine({ env: Deno.env.toObject(), log: (l) => console.error(l) });
  const dir = await Deno.makeTempDir({ prefix: "switchyard-bench-memory-" });
  try {
    const rows: ProjectionRow[] = [];
    for (const model of MODELS) {
      const path = join(dir, `${model.name}.gguf`);
      await writeTinyLlama(path, { ...ARCH, seed: 7, ...(model.mib ? { padToBytes: model.mib * MiB } : {}) });
      const fileMiB = Math.round((await Deno.stat(path)).size / MiB * 10) / 10;
      for (const ctx of CONTEXTS) {
        for (const kv of KV_TYPES) {
          console.error(`bench:memory: ${model.name} -c ${ctx} ${kv}`);
          rows.push({ model: model.name, fileMiB, ...await measure(bin, path, ctx, kv) });
        }
      }
    }
    const results: ProjectionResults = {
      date: new Date().toISOString().slice(0, 10),
      engine: await engineVersion(bin),
      flags: FLAGS,
      machine: machineInfo(),
      rows,
    };
    const report = renderProjectionReport(results);
    console.log(report);
    if (write) {
      const out = new URL("./results/", import.meta.url);
      await Deno.writeTextFile(new URL("projection.json", out), JSON.stringify(results, null, 2) + "\n");
      await Deno.writeTextFile(new URL("projection.md", out), report);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
