/**
 * Memory-aware scheduling on the real engine: tiny models of three sizes against a host budget made
 * from their own projections (computed here with the gateway's own memory port). Claims never exceed
 * the budget, sampled on every `/models/sse` event, nor does the engines' RSS; the least recently used
 * idle model goes first, a lower priority before it, a pinned model never; a model too big is refused
 * at once; `--models-ttl` unloads an idle model and never a busy one; an out-of-memory load is retried
 * once; pins beyond the budget stop the gateway from starting.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import {
  fakeServerBin,
  isolatedEnv,
  runMain,
  startGateway,
  stopAndCheck,
  type TestGateway,
} from "../helpers/gateway.ts";
import { engineAvailable, getJson, postJson, postJsonWith } from "../helpers/http.ts";
import { ENDLESS_ENGINE_ARGS, ENDLESS_GENERATION, engineBinPath } from "../helpers/llama_server.ts";
import { chatBody } from "../helpers/openai.ts";
import { enginesOf, statusKiB } from "../helpers/processes.ts";
import { type SseEvent, SseFeed } from "../helpers/sse_feed.ts";
import { delay, HANG_MS } from "../helpers/wait.ts";
import { writeTinyLlama } from "../fixtures/gguf.ts";
import { engineVersion } from "../../router/engine/binary.ts";
import { renderArgs } from "../../router/flags/flags.ts";
import { optionsFromArgv } from "../../router/memory/args.ts";
import { createMemoryPort } from "../../router/memory/port.ts";
import { HOST } from "../../router/memory/projection.ts";
import { MiB } from "../../router/memory/size.ts";
import { newSpec } from "../../router/sources/spec.ts";

const skip = await engineAvailable();

/**
 * The engine flags of every gateway here: one slot, a small batch (the fixture grows its feed-forward
 * layer to reach a size, and the compute buffer grows with batch × width) and no prompt cache, so a
 * claim is the model's buffers and the sizes of the files decide. The context is the presets' (`[*]`),
 * since the command line's would win over a model's own.
 */
const FLAGS = ["-np", "1", "-b", "64", "-ub", "64", "-t", "1", "--cache-ram", "0"];
const CTX = "512";
/** a context whose KV cache alone (1 GiB on these 4-layer models) is more than any budget here */
const HUGE_CTX = "1048576";

interface Files {
  dir: string;
  small: string;
  mid: string;
  large: string;
}

/** Three models, 48, 96 and 160 MiB: the same architecture, wider feed-forward layers. */
async function writeFiles(): Promise<Files> {
  const dir = await Deno.makeTempDir({ prefix: "switchyard-memory-" });
  const files = {
    dir,
    small: join(dir, "small.gguf"),
    mid: join(dir, "mid.gguf"),
    large: join(dir, "large.gguf"),
  };
  const sizes: Array<[string, number]> = [[files.small, 48], [files.mid, 96], [files.large, 160]];
  for (const [path, mib] of sizes) await writeTinyLlama(path, { seed: 7, nLayer: 4, padToBytes: mib * MiB });
  return files;
}

/** What each file claims on the host under `FLAGS` (plus `extra`), as the gateway will project it. */
async function claimsOf(paths: Record<string, string>, extra: Record<string, string[]> = {}) {
  const bin = engineBinPath();
  const port = await createMemoryPort({
    engineBin: bin,
    buildInfo: await engineVersion(bin),
    spec: "auto",
    env: {},
    cacheDir: "/nonexistent",
    log: () => {},
  });
  const claims: Record<string, number> = {};
  for (const [id, path] of Object.entries(paths)) {
    const options = optionsFromArgv(["--model", path, "-c", CTX, ...FLAGS, ...extra[id] ?? []]);
    const launch = { bin, args: renderArgs(port.launchOptions(options)), env: {} };
    const view = await port.project(newSpec(id, "preset", options), launch);
    assertEquals(view.source, "fit-params", `${id} is projected by the engine's fitter`);
    claims[id] = view.bytes[HOST];
  }
  return claims;
}

async function writePreset(dir: string, sections: Record<string, Record<string, string>>): Promise<string> {
  const file = join(dir, `preset-${crypto.randomUUID()}.ini`);
  const text = Object.entries({ "*": { c: CTX }, ...sections }).map(([name, keys]) =>
    `[${name}]\n${Object.entries(keys).map(([k, v]) => `${k} = ${v}\n`).join("")}`
  ).join("\n");
  await Deno.writeTextFile(file, text);
  return file;
}

interface ModelEntry {
  id: string;
  pinned: boolean;
  priority: number;
  expires_at: string | null;
  status: { value: string; args: string[]; failed?: boolean; error?: string; memory?: { source: string } };
}

async function entry(gw: TestGateway, id: string): Promise<ModelEntry> {
  return (await getJson(gw, "/models")).data.find((m: ModelEntry) => m.id === id);
}

async function states(gw: TestGateway): Promise<Record<string, string>> {
  const list: ModelEntry[] = (await getJson(gw, "/models")).data;
  return Object.fromEntries(list.map((m) => [m.id, m.status.value]));
}

async function chat(gw: TestGateway, model: string): Promise<Response> {
  return await postJsonWith(gw, "/v1/chat/completions", chatBody(model, { max_tokens: 2 }), {
    signal: AbortSignal.timeout(HANG_MS),
  });
}

async function chatOk(gw: TestGateway, model: string): Promise<void> {
  const res = await chat(gw, model);
  assertEquals(res.status, 200, `chat with ${model}: ${await res.clone().text()}`);
  await res.body?.cancel();
}

const unloaded = (e: SseEvent) => e.data?.status === "unloaded";

/** The unloads since `from`, as `model:reason`. */
const unloadsSince = (feed: SseFeed, from: number) =>
  feed.events.slice(from).filter(unloaded).map((e) => `${e.model}:${e.data?.reason}`);

/**
 * Samples the gateway after every event of its feed: what `/props` says is claimed on the host and
 * what its engines really hold (RSS), each against the budget.
 */
class BudgetWatch {
  readonly overruns: string[] = [];
  samples = 0;
  readonly #pending: Promise<void>[] = [];
  #on = true;

  constructor(readonly gw: TestGateway, readonly budget: number) {}

  onEvent = (): void => {
    if (this.#on) this.#pending.push(this.#sample());
  };

  async #sample(): Promise<void> {
    const memory = (await getJson(this.gw, "/props")).memory;
    const claimed = memory[HOST].claimed;
    let rss = 0;
    for (const pid of enginesOf(this.gw.pid)) {
      try {
        rss += statusKiB(pid, "VmRSS") * 1024;
      } catch { /* exited since it was listed */ }
    }
    this.samples++;
    if (claimed > this.budget) this.overruns.push(`claimed ${claimed} > ${this.budget}`);
    if (rss > this.budget) this.overruns.push(`engines' RSS ${rss} > ${this.budget}`);
  }

  async stop(): Promise<void> {
    this.#on = false;
    await Promise.all(this.#pending);
  }
}

Deno.test({
  name: "memory: budgets hold, the right models go, a model too big is refused, TTL, OOM retry, pins",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const files = await writeFiles();
    try {
      const claims = await claimsOf(
        { small: files.small, mid: files.mid, large: files.large, huge: files.small },
        { huge: ["-c", HUGE_CTX] },
      );
      const { small: s, mid: m, large: l } = claims;
      // room for the pinned small one and two and a half mid-sized ones: a third mid one needs one eviction
      const budget = s + 2 * m + Math.floor(m / 2);
      assert(
        l - m / 2 > m && s + l <= budget,
        `fixture sizes still make the cases: ${JSON.stringify(claims)}`,
      );
      assert(claims.huge > budget, "the huge context is more than the budget");

      await t.step("claims and RSS stay in the budget; LRU, priority and pins decide who goes", async () => {
        const model = (path: string, keys: Record<string, string> = {}) => ({ model: path, ...keys });
        const preset = await writePreset(files.dir, {
          keep: model(files.small, { pin: "true" }),
          m1: model(files.mid),
          m2: model(files.mid),
          m3: model(files.mid),
          hi: model(files.mid, { priority: "1" }),
          large: model(files.large),
          huge: model(files.small, { c: HUGE_CTX }),
        });
        const gw = await startGateway({
          args: [
            "--models-preset",
            preset,
            "--models-memory",
            `host=${budget}`,
            "--models-max",
            "0",
            ...FLAGS,
          ],
          env: await isolatedEnv(),
        });
        const watch = new BudgetWatch(gw, budget);
        const feed = new SseFeed(gw, watch.onEvent);
        try {
          for (const id of ["keep", "m1", "m2", "m1"]) await chatOk(gw, id);
          let mark = feed.events.length;
          await chatOk(gw, "m3");
          await feed.waitFor(unloaded, HANG_MS, mark);
          assertEquals(unloadsSince(feed, mark), ["m2:evicted"], "the least recently used idle one");
          mark = feed.events.length;
          await chatOk(gw, "hi");
          await feed.waitFor(unloaded, HANG_MS, mark);
          assertEquals(unloadsSince(feed, mark), ["m1:evicted"], "keep is older, but pinned");
          await chatOk(gw, "m3");
          mark = feed.events.length;
          await chatOk(gw, "m2");
          await feed.waitFor(unloaded, HANG_MS, mark);
          assertEquals(unloadsSince(feed, mark), ["m3:evicted"], "hi is older, but of a higher priority");
          mark = feed.events.length;
          await chatOk(gw, "large");
          await feed.waitFor(() => unloadsSince(feed, mark).length === 2, HANG_MS, mark);
          assertEquals(unloadsSince(feed, mark).sort(), ["hi:evicted", "m2:evicted"], "both, never the pin");
          const now = await states(gw);
          assertEquals([now.keep, now.large, now.m1, now.m2, now.m3, now.hi], [
            "loaded",
            "loaded",
            "unloaded",
            "unloaded",
            "unloaded",
            "unloaded",
          ]);
          const keep = await entry(gw, "keep");
          // on a host without GPUs the fitter's projection stands: the engine runs at its own verbosity
          assertEquals([keep.pinned, keep.expires_at, keep.status.memory?.source], [
            true,
            null,
            "fit-params",
          ]);
          assert(!keep.status.args.includes("--log-verbosity"), keep.status.args.join(" "));

          // too big for the budget whatever is evicted: refused at once, naming what it needs and what there is
          const refused = await chat(gw, "huge");
          assertEquals(refused.status, 503);
          const message = (await refused.json()).error.message;
          assertMatch(
            message,
            /^model huge does not fit: it needs \d+\.\d+ GiB on Host, more than that device's budget of \d+\.\d MiB$/,
          );
          assertEquals((await getJson(gw, "/props")).switchyard.queue, 0, "never queued");
          assertEquals((await states(gw)).keep, "loaded");
          // a later event is a fence: every event before it has arrived
          mark = feed.events.length;
          assertEquals((await postJson(gw, "/models/unload", { model: "large" })).status, 200);
          await feed.waitFor((e) => e.model === "large" && unloaded(e), HANG_MS, mark);
        } finally {
          await feed.close();
          await watch.stop();
          await stopAndCheck(gw);
        }
        assert(!feed.events.some((e) => e.model === "huge" && e.event !== "snapshot"), "huge never loaded");
        assert(!gw.logs.some((l) => /loading huge/.test(l)));
        assert(!unloadsSince(feed, 0).some((u) => u.startsWith("keep:evicted")), "the pin survived");
        assert(watch.samples >= 20, `sampled after every event (${watch.samples})`);
        assertEquals(watch.overruns, [], "never over the budget");
      });

      await t.step(
        "--models-ttl 1 unloads an idle model, and never one with a request in flight",
        async () => {
          const preset = await writePreset(files.dir, {
            brief: { model: files.small },
            stay: { model: files.small, ttl: "0" },
          });
          const gw = await startGateway({
            args: ["--models-preset", preset, "--models-ttl", "1", ...FLAGS, ...ENDLESS_ENGINE_ARGS],
            env: await isolatedEnv(),
          });
          const feed = new SseFeed(gw);
          try {
            await chatOk(gw, "stay");
            let mark = feed.events.length;
            await chatOk(gw, "brief");
            const idle = await entry(gw, "brief");
            assert(idle.expires_at !== null, "an idle model has an expiry");
            const gone = await feed.waitFor((e) => e.model === "brief" && unloaded(e), HANG_MS, mark);
            assertEquals(gone.data?.reason, "idle");

            // an endless generation holds it while its TTL passes many times over
            const abort = new AbortController();
            const res = await postJsonWith(
              gw,
              "/v1/chat/completions",
              chatBody("brief", { stream: true, ...ENDLESS_GENERATION }),
              { signal: abort.signal },
            );
            const reader = res.body!.getReader();
            await reader.read();
            mark = feed.events.length;
            const busySince = performance.now();
            while (performance.now() - busySince < 2_500) {
              const busy = await entry(gw, "brief");
              assertEquals([busy.status.value, busy.expires_at], ["loaded", null], "busy: no expiry");
              await delay(100);
            }
            const released = feed.events.length;
            abort.abort();
            await reader.cancel().catch(() => {});
            const after = await feed.waitFor((e) => e.model === "brief" && unloaded(e), HANG_MS, mark);
            assertEquals(after.data?.reason, "idle");
            assert(feed.events.indexOf(after) >= released, "unloaded only once the request had ended");
            const stay = await entry(gw, "stay");
            assertEquals([stay.status.value, stay.expires_at], ["loaded", null], "a preset ttl of 0 wins");
          } finally {
            await feed.close();
            await stopAndCheck(gw);
          }
        },
      );

      await t.step(
        "an out-of-memory load is retried once after the idle models go; twice fails it",
        async () => {
          // the engine's own lines (ggml-backend.cpp, llama-model.cpp, llama.cpp), then exit 1: once for
          // `flaky`, always for `doomed`; otherwise the real engine
          const fake = await fakeServerBin(
            [
              `case " $* " in *" --alias doomed "*) ;; *" --alias flaky "*) [ -e "$0.flaky" ] && exec '${engineBinPath()}' "$@"; : > "$0.flaky" ;; *) exec '${engineBinPath()}' "$@" ;; esac`,
              `echo "E ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 1073741824" >&2`,
              `echo "E llama_model_load: error loading model: unable to allocate CPU buffer" >&2`,
              `echo "E llama_model_load_from_file_impl: failed to load model" >&2`,
              "exit 1",
            ].join("\n"),
          );
          const preset = await writePreset(files.dir, {
            other: { model: files.small },
            flaky: { model: files.small },
            doomed: { model: files.small },
          });
          const gw = await startGateway({
            args: ["--models-preset", preset, "--server-bin", fake.bin, ...FLAGS],
            env: await isolatedEnv(),
          });
          const feed = new SseFeed(gw);
          try {
            assertEquals(gw.logs.filter((l) => /no llama-fit-params next to the engine/.test(l)).length, 1);
            await chatOk(gw, "other");
            // only the GGUF estimate: the load's own figures, logged at -lv 4, replace it
            const estimated = await entry(gw, "other");
            assertEquals(estimated.status.memory?.source, "observed");
            assertMatch(estimated.status.args.join(" "), / --log-verbosity 4 /);
            const mark = feed.events.length;
            await chatOk(gw, "flaky");
            await gw.waitForLog(
              /flaky ran out of memory while loading \(.*allocate.*\); unloading other and trying once more/,
            );
            await feed.waitFor((e) => e.model === "other" && unloaded(e), HANG_MS, mark);
            assertEquals(unloadsSince(feed, mark).filter((u) => u.startsWith("other")), ["other:memory"]);
            assertEquals((await entry(gw, "flaky")).status.value, "loaded");

            const doomed = await chat(gw, "doomed");
            assertEquals(doomed.status, 500);
            const reason =
              /model doomed ran out of memory while loading, again after every idle unpinned model was unloaded/;
            assertMatch((await doomed.json()).error.message, reason);
            const failed = await entry(gw, "doomed");
            assertEquals([failed.status.value, failed.status.failed], ["unloaded", true]);
            assertMatch(failed.status.error ?? "", reason);
            assertEquals(
              gw.logs.filter((l) => /doomed ran out of memory while loading \(/.test(l)).length,
              1,
              "one retry",
            );
          } finally {
            await feed.close();
            await stopAndCheck(gw);
            await Deno.remove(fake.dir, { recursive: true });
          }
        },
      );

      await t.step("pinned models that cannot all be held stop the gateway at start-up, named", async () => {
        const preset = await writePreset(files.dir, {
          keep: { model: files.small, pin: "true" },
          large: { model: files.large, pin: "true" },
        });
        const env = await isolatedEnv();
        const { code, out } = await runMain(
          ["--models-preset", preset, "--models-memory", `host=${s + l - MiB}`, "--port", "0", ...FLAGS],
          env,
        );
        await Deno.remove(env.LLAMA_CACHE, { recursive: true });
        assertEquals(code, 1, out);
        assertMatch(
          out,
          /error: the pinned models need more than the memory budgets: on Host keep \(.+\), large \(.+\) claim/,
        );
      });
    } finally {
      await Deno.remove(files.dir, { recursive: true });
    }
  },
});
