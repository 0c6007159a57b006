/**
 * `deno task bench:kv`: what `--swap-kv-cache` buys and costs (issue 11). Two models under
 * `--models-max 1`; for contexts of 1k, 4k and 16k tokens, a conversation that nearly fills the context
 * with model `a`, one request to `b` (which evicts `a`), then the conversation's next turn to `a`. That
 * turn's first-token time is measured with the feature off (the whole conversation is prefilled again)
 * and on (the saved cache is restored while `a` loads, and only the new tokens are prefilled), with the
 * save's and the restore's time and size. Writes `bench/results/kv_swap.{json,md}` (`--no-write`: print
 * only; `--render`: the Markdown again from the JSON); `--runs N` conversations per case (default 3,
 * medians reported), `--contexts 1024,4096`.
 *
 * The model is a tiny random one (4 layers of 256, head dim 64, f16 KV: 4 KiB of cache per token), so
 * that a 16k prefill takes seconds on two cores; a real model's cache is larger per token, and so are
 * both its prefill and its files.
 */
import { formatBytes } from "../router/memory/size.ts";
import { turn, wordTokens } from "../tests/helpers/conversation.ts";
import { isolatedEnv, startGateway, type TestGateway } from "../tests/helpers/gateway.ts";
import { getJson } from "../tests/helpers/http.ts";
import { makeModelsDir } from "../tests/helpers/models.ts";
import { machineInfo } from "./procs.ts";
import { markdownTable } from "./report.ts";

const MODEL = { seed: 7, nEmbd: 256, nLayer: 4, nHead: 4, ctxLength: 16384 };
/** tokens answered per turn, and added by the next turn */
const ANSWER = 16;
const NEXT_TURN = 64;
/** the next turn's prompt leaves this much of the context for its answer */
const HEADROOM = 8;

/** The next turn's prompt: the conversation, its answer and the new tokens, all but `HEADROOM` of the context. */
const promptTokens = (context: number) => context - HEADROOM;

/** One conversation's swap, as measured. */
interface Sample {
  firstTokenMs: number;
  promptN: number;
  /** wall time of the save and the restore, and the engine's own time for each (ms) */
  saveMs?: number;
  saveEngineMs?: number;
  restoreMs?: number;
  restoreEngineMs?: number;
  bytes?: number;
}

interface Row {
  context: number;
  /** the next turn's prompt: the conversation so far and the new tokens */
  promptTokens: number;
  /** medians over the runs */
  off: Sample;
  on: Sample;
  /** every run */
  samples: { off: Sample[]; on: Sample[] };
}

const LINE = (what: "saved" | "restored") =>
  new RegExp(`kv cache: ${what} a: \\d+ slots?, \\d+ tokens, .* in (\\d+) ms \\(engine ([\\d.]+) ms\\)`);

/** The figures of the last line matching `re` among `lines`. */
function timesIn(lines: string[], re: RegExp): [number, number] | undefined {
  const m = lines.map((l) => re.exec(l)).filter((x) => x !== null).at(-1);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

async function measure(gw: TestGateway, context: number, run: number, on: boolean): Promise<Sample> {
  const conversation = wordTokens(promptTokens(context) - ANSWER - NEXT_TURN, 1 + run);
  const first = await turn(gw, "a", conversation, ANSWER);
  const mark = gw.logs.length;
  await turn(gw, "b", wordTokens(16, 100 + run), 4);
  const prompt = [...conversation, ...first.tokens, ...wordTokens(NEXT_TURN, 200 + run)];
  const next = await turn(gw, "a", prompt, 4);
  const sample: Sample = { firstTokenMs: next.firstTokenMs, promptN: next.promptN };
  if (!on) return sample;
  const lines = gw.logs.slice(mark);
  const saved = timesIn(lines, LINE("saved"));
  const restored = timesIn(lines, LINE("restored"));
  if (!saved || !restored) throw new Error(`no save or restore of a logged:\n${lines.join("\n")}`);
  const list = await getJson(gw, "/models");
  const a = list.data.find((m: { id: string }) => m.id === "a");
  return {
    ...sample,
    saveMs: saved[0],
    saveEngineMs: saved[1],
    restoreMs: restored[0],
    restoreEngineMs: restored[1],
    bytes: a.status.kv_cache?.bytes,
  };
}

function median(samples: Sample[]): Sample {
  const mid = (of: (s: Sample) => number | undefined) => {
    const xs = samples.map(of).filter((x): x is number => x !== undefined).sort((a, b) => a - b);
    return xs.length ? xs[Math.floor(xs.length / 2)] : undefined;
  };
  return {
    firstTokenMs: mid((s) => s.firstTokenMs)!,
    promptN: mid((s) => s.promptN)!,
    saveMs: mid((s) => s.saveMs),
    saveEngineMs: mid((s) => s.saveEngineMs),
    restoreMs: mid((s) => s.restoreMs),
    restoreEngineMs: mid((s) => s.restoreEngineMs),
    bytes: mid((s) => s.bytes),
  };
}

/** A gateway for one case, the feature on or off, with what to remove after it. */
async function gatewayFor(dir: string, context: number, on: boolean) {
  const kvDir = await Deno.makeTempDir({ prefix: "switchyard-bench-kv-" });
  const env = await isolatedEnv();
  const args = ["--models-dir", dir, "--models-max", "1", "-c", String(context), "-np", "1"];
  if (on) args.push("--swap-kv-cache", "--swap-kv-cache-dir", kvDir);
  const gw = await startGateway({ args, env });
  return {
    gw,
    async close() {
      await gw.stop();
      await Deno.remove(kvDir, { recursive: true });
      await Deno.remove(env.LLAMA_CACHE, { recursive: true });
    },
  };
}

/**
 * `runs` conversations with the feature off and on, taking turns on two gateways that run side by
 * side (each idle while the other is measured), so background load lands on both alike.
 */
async function runCase(dir: string, context: number, runs: number): Promise<{ off: Sample[]; on: Sample[] }> {
  const off = await gatewayFor(dir, context, false);
  const on = await gatewayFor(dir, context, true).catch(async (err) => {
    await off.close();
    throw err;
  });
  try {
    const samples = { off: [] as Sample[], on: [] as Sample[] };
    for (let run = 0; run < runs; run++) {
      samples.off.push(await measure(off.gw, context, run, false));
      samples.on.push(await measure(on.gw, context, run, true));
    }
    return samples;
  } finally {
    await Promise.all([off.close(), on.close()]);
  }
}

/** Milliseconds as the table shows them: whole from 100 on (and the gateway's own, whole anyway), else to a tenth. */
const ms = (x: number | undefined) =>
  x === undefined ? "—" : x >= 100 || Number.isInteger(x) ? String(Math.round(x)) : x.toFixed(1);

/** What a run stores in `results/kv_swap.json`, and the Markdown is rendered from. */
interface KvSwapResults {
  machine: ReturnType<typeof machineInfo>;
  model: typeof MODEL;
  answer: number;
  nextTurn: number;
  runs: number;
  rows: Row[];
}

/** `results/kv_swap.md`: where it ran, then the table. */
export function renderKvSwapReport(r: KvSwapResults): string {
  const m = r.machine;
  const header = [
    "context",
    "next turn's prompt",
    "first token, off (ms)",
    "first token, on (ms)",
    "off / on",
    "prompt_n off / on",
    "save ms (engine)",
    "restore ms (engine)",
    "saved",
  ];
  const rows = r.rows.map((row) => [
    String(row.context),
    String(row.promptTokens),
    ms(row.off.firstTokenMs),
    ms(row.on.firstTokenMs),
    `${(row.off.firstTokenMs / row.on.firstTokenMs).toFixed(1)}×`,
    `${row.off.promptN} / ${row.on.promptN}`,
    `${ms(row.on.saveMs)} (${ms(row.on.saveEngineMs)})`,
    `${ms(row.on.restoreMs)} (${ms(row.on.restoreEngineMs)})`,
    row.on.bytes === undefined ? "—" : formatBytes(row.on.bytes),
  ]);
  return `Measured by \`deno task bench:kv\`: medians of ${r.runs} runs, taken in turn with the feature off and on.\n\n` +
    `- machine: ${m.nproc} cores (${m.cpu}), ${m.memGiB} GiB, Deno ${m.deno}, load average ${m.loadavg}\n\n` +
    markdownTable(header, rows) + "\n";
}

function option(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

const RESULTS = new URL("results/", import.meta.url);

// `--render`: results/kv_swap.md again from the stored results/kv_swap.json, after a change of wording
if (import.meta.main && Deno.args.includes("--render")) {
  const stored: KvSwapResults = JSON.parse(await Deno.readTextFile(new URL("kv_swap.json", RESULTS)));
  await Deno.writeTextFile(new URL("kv_swap.md", RESULTS), renderKvSwapReport(stored));
} else if (import.meta.main) {
  const contexts = (option("--contexts") ?? "1024,4096,16384").split(",").map(Number);
  const runs = Number(option("--runs") ?? "3");
  const write = !Deno.args.includes("--no-write");
  const dir = await makeModelsDir(["a", "b"], MODEL);
  try {
    const rows: Row[] = [];
    for (const context of contexts) {
      console.error(`context ${context}: ${runs} runs, off and on in turn`);
      const samples = await runCase(dir, context, runs);
      const row = { context, promptTokens: promptTokens(context), samples };
      rows.push({ ...row, off: median(samples.off), on: median(samples.on) });
    }
    const results: KvSwapResults = {
      machine: machineInfo(),
      model: MODEL,
      answer: ANSWER,
      nextTurn: NEXT_TURN,
      runs,
      rows,
    };
    const report = renderKvSwapReport(results);
    console.log(report);
    if (write) {
      await Deno.writeTextFile(new URL("kv_swap.json", RESULTS), JSON.stringify(results, null, 2) + "\n");
      await Deno.writeTextFile(new URL("kv_swap.md", RESULTS), report);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
