/**
 * Model sources and the Hugging Face Hub, end to end: a real gateway process, real llama-server engines,
 * real tiny models, and the fake hub on 127.0.0.1 (HF_ENDPOINT). Covers pulls on a first request and by
 * `POST /models` (with their SSE events), cancelling, hub errors (missing repo or quant, gated repos,
 * dropped connections, corrupt bytes, --offline), `DELETE /models`, interop with `llama-server -hf` in
 * both directions, and `--models-preset` (aliases, load-on-startup, reload, SIGHUP, bad presets).
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { runMain, startGateway, type TestGateway } from "../helpers/gateway.ts";
import { engineAvailable, getJson, type HasUrl, postJson, waitForStatus } from "../helpers/http.ts";
import { hubRepoDir, sha256Hex } from "../helpers/hf_cache.ts";
import { engineBinPath, startEngine } from "../helpers/llama_server.ts";
import { addToHfCache, liveEngines } from "../helpers/models.ts";
import { chatBody } from "../helpers/openai.ts";
import { FAKE_HUB_TOKEN, type FakeHub, type FakeRepo, startFakeHub } from "../fixtures/fake_hub.ts";
import { tinyLlamaGguf } from "../fixtures/gguf.ts";
import { type SseEvent, SseFeed } from "../helpers/sse_feed.ts";
import { HANG_MS, waitFor } from "../helpers/wait.ts";

const skip = await engineAvailable();

/** Every repo of these tests lives under this owner, so leftover engines are easy to find. */
const OWNER = "e2ehub";
const repo = (name: string) => `${OWNER}/${name}-GGUF`;
const TINY = repo("tiny"); // Q4_K_M and Q8_0
const OTHER = repo("other"); // pulled by POST /models
const CANCEL = repo("cancel"); // cancelled mid-download
const CONC = repo("conc"); // two first requests at once
const GATED = repo("gated");
const FLAKY = repo("flaky"); // the connection drops half-way
const BAD = repo("bad"); // corrupt bytes
const PRELAID = repo("prelaid"); // laid out by "llama-server -hf", never on the hub

/** One test process makes each model once; seeds differ so that every file is its own blob. */
const bytesOf = (seed: number) => tinyLlamaGguf({ seed });
const MODEL_BYTES = bytesOf(1).length;

/** Every temp dir of this file is under ROOT, so a leftover engine names it on its command line. */
const ROOT = await Deno.makeTempDir({ prefix: "switchyard-srchub-" });

function hubRepos(): Record<string, FakeRepo> {
  return {
    [TINY]: {
      files: {
        "tiny-Q4_K_M.gguf": bytesOf(1),
        "tiny-Q8_0.gguf": bytesOf(2),
        "README.md": new TextEncoder().encode("# tiny\n"),
      },
    },
    [OTHER]: { files: { "other-Q4_K_M.gguf": bytesOf(3) } },
    [CANCEL]: { files: { "cancel-Q4_K_M.gguf": bytesOf(4) } },
    [CONC]: { files: { "conc-Q4_K_M.gguf": bytesOf(5) } },
    [GATED]: { files: { "gated-Q4_K_M.gguf": bytesOf(6) }, gated: true },
    [FLAKY]: { files: { "flaky-Q4_K_M.gguf": bytesOf(8) } },
    [BAD]: { files: { "bad-Q4_K_M.gguf": bytesOf(9) } },
  };
}

function startHub(): Promise<FakeHub> {
  return startFakeHub({ repos: hubRepos() });
}

// ---- helpers -----------------------------------------------------------------------------------------

async function subdir(name: string): Promise<string> {
  const dir = join(ROOT, name);
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

function hubEnv(hub: FakeHub, cache: string, token?: string): Record<string, string> {
  return { LLAMA_CACHE: cache, HF_ENDPOINT: hub.url, MODEL_ENDPOINT: hub.url, HF_TOKEN: token ?? "" };
}

function chat(gw: HasUrl, model: string): Promise<Response> {
  return postJson(gw, "/v1/chat/completions", chatBody(model));
}

/** A chat request that must succeed; returns its body. */
async function chatOk(gw: HasUrl, model: string) {
  const res = await chat(gw, model);
  const body = await res.json();
  assertEquals(res.status, 200, `chat with ${model}: ${JSON.stringify(body)}`);
  assertEquals(typeof body.choices[0].message.content, "string");
  return body;
}

/** A request that must fail; returns the status and the error message. */
async function errorOf(res: Response): Promise<{ status: number; type: string; message: string }> {
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`error response is not JSON (${res.status}): ${text}`);
  }
  assert(body.error && typeof body.error.message === "string", `error shape: ${text}`);
  assertEquals(body.error.code, res.status);
  return { status: res.status, type: body.error.type, message: body.error.message };
}

interface Entry {
  id: string;
  aliases: string[];
  source: string;
  can_remove: boolean;
  status: { value: string; args: string[]; failed?: boolean; error?: string };
}

async function listModels(gw: HasUrl, reload = false): Promise<Entry[]> {
  return (await getJson(gw, reload ? "/models?reload=1" : "/models")).data;
}

async function entry(gw: HasUrl, id: string): Promise<Entry | undefined> {
  return (await listModels(gw)).find((m) => m.id === id);
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = HANG_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Files (not folders) under `dir`, relative, sorted; [] when `dir` is missing. */
async function filesUnder(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      const rel = prefix ? `${prefix}/${e.name}` : e.name;
      if (e.isDirectory) out.push(...await filesUnder(join(dir, e.name), rel));
      else out.push(rel);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

/** A `download_progress` event that shows bytes of a file arrived. */
function bytesArrived(e: SseEvent): boolean {
  return e.event === "download_progress" &&
    Object.values(e.data!.progress as Record<string, { done: number }>).some((p) => p.done > 0);
}

/** GETs of one file's bytes: the LFS CDN path (resolve only redirects there). */
function fileGets(hub: FakeHub, file: string): number {
  return hub.requests.filter((r) =>
    r.method === "GET" && r.path.startsWith("/__cdn/") && r.path.endsWith(`/${file}`)
  )
    .length;
}

/** No engine of ours outlives its gateway (another engineer's llama-server may run on this machine). */
async function assertNoEngines(): Promise<void> {
  const pattern = `llama-server.*(${OWNER}/|${ROOT})`;
  try {
    // an engine left behind stays: a bound generous for a slow machine still catches it
    await waitFor(async () => (await liveEngines(pattern)).length === 0, HANG_MS, "no engine left", 100);
  } catch {
    const out = await new Deno.Command("pgrep", { args: ["-af", pattern], stdout: "piped" }).output();
    throw new Error(`llama-server processes left behind:\n${new TextDecoder().decode(out.stdout)}`);
  }
}

async function stopAll(gws: (TestGateway | undefined)[], hubs: (FakeHub | undefined)[]): Promise<void> {
  await Promise.all(gws.map((g) => g?.stop()));
  await Promise.all(hubs.map((h) => h?.close()));
}

// ---- tests ---------------------------------------------------------------------------------------------

Deno.test({
  name: "hub pulls: first request, POST /models with SSE, cancel, errors, DELETE, llama-server -hf interop",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const hub = await startHub();
    const cache = await subdir("cache-a");
    const local = await subdir("models-a");
    await Deno.writeFile(join(local, "local.gguf"), bytesOf(11));
    await addToHfCache(cache, PRELAID, "prelaid-Q4_K_M.gguf", bytesOf(10));
    let gw: TestGateway | undefined;
    let feed: SseFeed | undefined;
    try {
      gw = await startGateway({
        args: ["--models-dir", local, "--models-max", "3", "-c", "512", "-np", "1"],
        env: hubEnv(hub, cache, FAKE_HUB_TOKEN),
      });
      feed = new SseFeed(gw);
      const g = gw;
      const sse = feed;

      await t.step("SSE: the first event is a snapshot of every model", async () => {
        const first = await sse.waitFor(() => true);
        assertEquals(first.event, "snapshot");
        assertEquals(sse.events[0], first);
        const ids = (first.data!.models as Entry[]).map((m) => m.id);
        assert(ids.includes("local") && ids.includes(`${PRELAID}:Q4_K_M`), JSON.stringify(ids));
      });

      await t.step("a model laid out by `llama-server -hf` is listed and served", async () => {
        const prelaid = await entry(g, `${PRELAID}:Q4_K_M`);
        assert(prelaid, "listed");
        assertEquals(prelaid.source, "cache");
        assertEquals(prelaid.can_remove, true);
        assertEquals(prelaid.status.value, "unloaded");
        await chatOk(g, `${PRELAID}:Q4_K_M`);
        assertEquals((await entry(g, `${PRELAID}:Q4_K_M`))?.status.value, "loaded");
      });

      await t.step("a first request for an uncached owner/repo:Q8_0 pulls it, then answers", async () => {
        const body = await chatOk(g, `${TINY}:Q8_0`);
        assertEquals(body.model, `${TINY}:Q8_0`);
        const dir = hubRepoDir(cache, TINY);
        const commit = hub.repo(TINY).commit;
        assertEquals((await Deno.readTextFile(join(dir, "refs", "main"))).trim(), commit);
        const snap = join(dir, "snapshots", commit, "tiny-Q8_0.gguf");
        assert((await Deno.lstat(snap)).isSymlink, "the snapshot file is a link into blobs/");
        const blob = hub.repo(TINY).files["tiny-Q8_0.gguf"].sha256;
        assertEquals(sha256Hex(await Deno.readFile(join(dir, "blobs", blob))), blob);
        assertEquals(await filesUnder(dir), [
          "blobs/" + blob,
          "refs/main",
          `snapshots/${commit}/tiny-Q8_0.gguf`,
        ]);
        const listed = await entry(g, `${TINY}:Q8_0`);
        assert(listed, "listed under its cache id");
        assertEquals(listed.status.value, "loaded");
        assertEquals(listed.source, "cache");
        assertEquals(listed.can_remove, true);
        assertEquals(fileGets(hub, "tiny-Q4_K_M.gguf"), 0, "only the asked-for quant is fetched");
      });

      await t.step("a request for owner/repo without a tag pulls Q4_K_M", async () => {
        await chatOk(g, TINY);
        const commit = hub.repo(TINY).commit;
        await Deno.lstat(join(hubRepoDir(cache, TINY), "snapshots", commit, "tiny-Q4_K_M.gguf"));
        assertEquals(fileGets(hub, "tiny-Q4_K_M.gguf"), 1);
        const ids = (await listModels(g)).map((m) => m.id);
        assert(ids.includes(`${TINY}:Q4_K_M`) && ids.includes(`${TINY}:Q8_0`), JSON.stringify(ids));
      });

      await t.step("two concurrent first requests share one download", async () => {
        const [a, b] = await Promise.all([chat(g, `${CONC}:Q4_K_M`), chat(g, `${CONC}:Q4_K_M`)]);
        const bodies = [await a.text(), await b.text()];
        assertEquals(fileGets(hub, "conc-Q4_K_M.gguf"), 1, "the hub saw one GET of the file");
        assertEquals([a.status, b.status], [200, 200], bodies.join("\n"));
      });

      await t.step(
        "POST /models downloads with model_status, download_progress, download_finished",
        async () => {
          const from = sse.events.length;
          // the hub holds the second half of the file until the progress of the first half has been seen
          const release = hub.faults.stall("other-Q4_K_M.gguf");
          try {
            const res = await postJson(g, "/models", { model: `${OTHER}:Q4_K_M` });
            assertEquals(await res.json(), { success: true });
            await sse.waitFor((e) => e.model === `${OTHER}:Q4_K_M` && bytesArrived(e), HANG_MS, from);
          } finally {
            release();
          }
          const finished = await sse.waitFor(
            (e) => e.event === "download_finished" || e.event === "download_failed",
            HANG_MS,
            from,
          );
          assertEquals(finished.event, "download_finished", JSON.stringify(finished));
          const mine = sse.events.slice(from).filter((e) => e.model === `${OTHER}:Q4_K_M`);
          const kinds = mine.map((e) => e.event);
          assertEquals(mine[0].event, "model_status");
          assertEquals(mine[0].data, { status: "downloading" });
          const progress = mine.filter((e) => e.event === "download_progress");
          assert(progress.length >= 1, kinds.join(","));
          const files = progress.at(-1)!.data!.progress as Record<string, { done: number; total: number }>;
          const [url, p] = Object.entries(files)[0];
          assertMatch(url, /other-Q4_K_M\.gguf$/);
          assertEquals(p.total, MODEL_BYTES);
          assert(kinds.indexOf("download_progress") < kinds.indexOf("download_finished"), kinds.join(","));
          await until("the downloaded model in /models", async () => {
            const e = await entry(g, `${OTHER}:Q4_K_M`);
            return e?.status.value === "unloaded" && e.source === "cache" ? e : undefined;
          });
          await sse.waitFor((e) => e.event === "models_reload", HANG_MS, from);
        },
      );

      await t.step("POST /models for a name already listed is a 400", async () => {
        const err = await errorOf(await postJson(g, "/models", { model: `${OTHER}:Q4_K_M` }));
        assertEquals(err.status, 400);
        assertMatch(err.message, /already exists/);
      });

      await t.step(
        "unloading a download in progress cancels it and leaves nothing in the cache",
        async () => {
          const name = `${CANCEL}:Q4_K_M`;
          const from = sse.events.length;
          // the hub holds the second half of the file: the download is still under way when it is unloaded
          const release = hub.faults.stall("cancel-Q4_K_M.gguf");
          try {
            assertEquals(await (await postJson(g, "/models", { model: name })).json(), { success: true });
            await sse.waitFor((e) => e.model === name && bytesArrived(e), HANG_MS, from);
            assertEquals((await entry(g, name))?.status.value, "downloading");
            const partial = await filesUnder(hubRepoDir(cache, CANCEL));
            assert(partial.some((f) => f.endsWith(".incomplete")), `mid-download: ${partial}`);
            const res = await postJson(g, "/models/unload", { model: name });
            assertEquals(res.status, 200, await res.text());
          } finally {
            release();
          }
          const failed = await sse.waitFor(
            (e) => e.model === name && e.event === "download_failed",
            HANG_MS,
            from,
          );
          assert(failed);
          assert(!sse.events.slice(from).some((e) => e.model === name && e.event === "download_finished"));
          const after = await entry(g, name);
          assert(
            after === undefined || (after.status.value === "downloaded" && after.status.failed === true),
            JSON.stringify(after),
          );
          assertEquals(
            await filesUnder(hubRepoDir(cache, CANCEL)),
            [],
            "no blob, link, ref or .incomplete left",
          );
        },
      );

      await t.step("an unknown repo is a 404 that names it", async () => {
        const err = await errorOf(await chat(g, `${OWNER}/nothing-here-GGUF:Q4_K_M`));
        assertEquals(err.status, 404, err.message);
        assertMatch(err.message, /nothing-here-GGUF/);
        assertMatch(err.message, /not found/);
        assertEquals(await filesUnder(hubRepoDir(cache, `${OWNER}/nothing-here-GGUF`)), []);
      });

      await t.step("an unknown quant is a 404 that lists the quants there are", async () => {
        const err = await errorOf(await chat(g, `${TINY}:Q2_K`));
        assertEquals(err.status, 404, err.message);
        assertMatch(err.message, /Q2_K/);
        assertMatch(err.message, /Q4_K_M/);
        assertMatch(err.message, /Q8_0/);
      });

      await t.step("a gated repo works with HF_TOKEN", async () => {
        await chatOk(g, `${GATED}:Q4_K_M`);
        const gets = hub.requests.filter((r) => r.path.includes("gated-Q4_K_M.gguf") && r.method === "GET");
        assert(gets.length >= 1 && gets.every((r) => r.authorization === `Bearer ${FAKE_HUB_TOKEN}`));
      });

      await t.step("a connection dropped half-way is resumed and the model verifies", async () => {
        hub.faults.dropConnection("flaky-Q4_K_M.gguf");
        await chatOk(g, `${FLAKY}:Q4_K_M`);
        const gets = hub.requests.filter((r) => r.method === "GET" && r.path.endsWith("/flaky-Q4_K_M.gguf"));
        assert(
          gets.some((r) => r.range?.startsWith("bytes=") && r.range !== "bytes=0-"),
          JSON.stringify(gets),
        );
        const sha = hub.repo(FLAKY).files["flaky-Q4_K_M.gguf"].sha256;
        assertEquals(sha256Hex(await Deno.readFile(join(hubRepoDir(cache, FLAKY), "blobs", sha))), sha);
      });

      await t.step("corrupt bytes are an error and leave nothing in the cache", async () => {
        hub.faults.corrupt("bad-Q4_K_M.gguf");
        const err = await errorOf(await chat(g, `${BAD}:Q4_K_M`));
        assert(err.status >= 500, `${err.status} ${err.message}`);
        assertMatch(err.message, /verif|checksum|sha/i);
        assertEquals(await filesUnder(hubRepoDir(cache, BAD)), []);
        assert(!(await listModels(g)).some((m) => m.id.startsWith(BAD) && m.status.value !== "downloaded"));
        hub.faults.reset();
      });

      await t.step("after a failed pull, the same request pulls again once the hub is fixed", async () => {
        await chatOk(g, `${BAD}:Q4_K_M`);
        assertEquals((await entry(g, `${BAD}:Q4_K_M`))?.status.value, "loaded");
      });

      await t.step(
        "the real `llama-server -hf ... --offline` serves what Switchyard downloaded",
        async () => {
          const before = hub.requests.length;
          const engine = await startEngine(
            engineBinPath(),
            ["-hf", `${TINY}:Q8_0`, "--offline", "-c", "512"],
            {
              env: { LLAMA_CACHE: cache, HF_ENDPOINT: hub.url, MODEL_ENDPOINT: hub.url },
            },
          );
          try {
            assertEquals(hub.requests.length, before, "--offline: llama-server did not contact the hub");
          } finally {
            await engine.stop();
          }
        },
      );

      await t.step("DELETE /models removes one cache model's files and nothing else", async () => {
        const from = sse.events.length;
        const tinyDir = hubRepoDir(cache, TINY);
        const commit = hub.repo(TINY).commit;
        const others = [OTHER, CONC, FLAKY, PRELAID].map((r) => hubRepoDir(cache, r));
        const othersBefore = await Promise.all(others.map((d) => filesUnder(d)));
        const res = await fetch(`${g.url}/models?model=${encodeURIComponent(`${TINY}:Q8_0`)}`, {
          method: "DELETE",
        });
        assertEquals(res.status, 200, await res.clone().text());
        assertEquals(await res.json(), { success: true });
        const q8 = hub.repo(TINY).files["tiny-Q8_0.gguf"].sha256;
        const q4 = hub.repo(TINY).files["tiny-Q4_K_M.gguf"].sha256;
        assertEquals(await filesUnder(tinyDir), [
          `blobs/${q4}`,
          "refs/main",
          `snapshots/${commit}/tiny-Q4_K_M.gguf`,
        ]);
        assert(!(await filesUnder(tinyDir)).includes(`blobs/${q8}`));
        assertEquals(
          await Promise.all(others.map((d) => filesUnder(d))),
          othersBefore,
          "other repos untouched",
        );
        const ids = (await listModels(g)).map((m) => m.id);
        assert(!ids.includes(`${TINY}:Q8_0`) && ids.includes(`${TINY}:Q4_K_M`), JSON.stringify(ids));
        await sse.waitFor((e) => e.event === "model_remove" && e.model === `${TINY}:Q8_0`, HANG_MS, from);
      });

      await t.step("DELETE of a --models-dir model is a 400, of an unknown one a 404", async () => {
        const del = (m: string) =>
          fetch(`${g.url}/models?model=${encodeURIComponent(m)}`, { method: "DELETE" });
        const local = await errorOf(await del("local"));
        assertEquals(local.status, 400);
        assertMatch(local.message, /not removable/);
        const unknown = await errorOf(await del(`${OWNER}/never-GGUF:Q4_K_M`));
        assertEquals(unknown.status, 404);
        assertMatch(unknown.message, /not found/);
        assert((await entry(g, "local")) !== undefined, "the models-dir model is still listed");
      });
    } finally {
      await feed?.close();
      await stopAll([gw], [hub]);
    }
    await assertNoEngines();
  },
});

Deno.test({
  name: "hub without a token, and --offline",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const hub = await startHub();
    const offlineHub = await startHub();
    const cache = await subdir("cache-anon");
    const offlineCache = await subdir("cache-offline");
    await addToHfCache(offlineCache, PRELAID, "prelaid-Q4_K_M.gguf", bytesOf(10));
    let anon: TestGateway | undefined;
    let offline: TestGateway | undefined;
    try {
      [anon, offline] = await Promise.all([
        startGateway({ args: ["-c", "512", "-np", "1"], env: hubEnv(hub, cache) }),
        startGateway({ args: ["--offline", "-c", "512", "-np", "1"], env: hubEnv(offlineHub, offlineCache) }),
      ]);
      const a = anon;
      const o = offline;

      await t.step("a gated repo without HF_TOKEN is a 403 that says to set HF_TOKEN", async () => {
        const err = await errorOf(await chat(a, `${GATED}:Q4_K_M`));
        assertEquals(err.status, 403, err.message);
        assertEquals(err.type, "permission_error");
        assertMatch(err.message, /HF_TOKEN/);
        assertEquals(await filesUnder(hubRepoDir(cache, GATED)), []);
      });

      await t.step(
        "an unknown repo without a token (the hub answers 401) says what may be wrong",
        async () => {
          const err = await errorOf(await chat(a, `${OWNER}/nothing-here-GGUF`));
          // the hub answers an anonymous request for a missing repo as for a private one (401), so the
          // gateway cannot say 404; it says both, and what to do
          assertEquals(err.status, 403, err.message);
          assertMatch(err.message, /nothing-here-GGUF/);
          assertMatch(err.message, /does not exist/);
          assertMatch(err.message, /HF_TOKEN/);
        },
      );

      await t.step("--offline: a model laid out by `llama-server -hf` is served", async () => {
        await chatOk(o, `${PRELAID}:Q4_K_M`);
      });

      await t.step("--offline: an uncached model is an error and the hub is never contacted", async () => {
        const err = await errorOf(await chat(o, `${TINY}:Q8_0`));
        assert(err.status >= 400 && err.status < 500, `${err.status} ${err.message}`);
        const post = await errorOf(await postJson(o, "/models", { model: `${TINY}:Q8_0` }));
        assert(post.status >= 400, `${post.status} ${post.message}`);
        assertMatch(post.message, /offline/);
        assertEquals(await filesUnder(hubRepoDir(offlineCache, TINY)), []);
        assertEquals(offlineHub.requests, []);
      });
    } finally {
      await stopAll([anon, offline], [hub, offlineHub]);
    }
    assertEquals(offlineHub.requests, [], "not even the engines of the offline gateway contacted the hub");
    await assertNoEngines();
  },
});

Deno.test({
  name: "presets: alias, load-on-startup, reload, SIGHUP, bad presets",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const dir = await subdir("preset-models");
    for (const [i, name] of ["a", "b", "c", "d"].entries()) {
      await Deno.writeFile(join(dir, `${name}.gguf`), bytesOf(20 + i));
    }
    const cache = await subdir("cache-preset");
    const presetFile = join(dir, "models.ini");
    const write = (sections: Record<string, string[]>, global = ["c = 512"]) =>
      Deno.writeTextFile(
        presetFile,
        ["[*]", ...global, ""].join("\n") + "\n" +
          Object.entries(sections).map(([name, lines]) => [`[${name}]`, ...lines, ""].join("\n")).join("\n"),
      );
    const alias = ["model = " + join(dir, "a.gguf"), "alias = short", "load-on-startup = true"];
    const keep = ["model = " + join(dir, "b.gguf")];
    const drop = ["model = " + join(dir, "c.gguf")];
    await write({ "my-alias-model": alias, "keep": keep, "drop": drop });
    let gw: TestGateway | undefined;
    try {
      gw = await startGateway({
        args: ["--models-preset", presetFile, "-np", "1"],
        env: { LLAMA_CACHE: cache },
      });
      const g = gw;
      const argsOf = async (id: string) => (await entry(g, id))!.status.args;

      await t.step(
        "load-on-startup model is loaded shortly after start and answers under its alias",
        async () => {
          await waitForStatus(g, "my-alias-model", "loaded");
          const e = (await entry(g, "my-alias-model"))!;
          assertEquals(e.source, "preset");
          assertEquals(e.aliases, ["short"]);
          const args = e.status.args;
          assertEquals(args[args.indexOf("--ctx-size") + 1], "512", "[*] c = 512 applies");
          assertEquals((await entry(g, "keep"))?.status.value, "unloaded");
          const body = await chatOk(g, "short");
          assertEquals(body.model, "my-alias-model");
        },
      );

      await t.step(
        "reload: a removed section goes, a changed running one restarts, the rest is untouched",
        async () => {
          const load = await postJson(g, "/models/load", { model: "keep" });
          assertEquals(load.status, 200, await load.text());
          await waitForStatus(g, "keep", "loaded");
          const keepArgs = await argsOf("keep");
          await write({ "my-alias-model": [...alias, "c = 256"], "keep": keep });
          const list = await listModels(g, true);
          const ids = list.map((m) => m.id);
          assert(!ids.includes("drop"), JSON.stringify(ids));
          const changed = list.find((m) => m.id === "my-alias-model")!;
          assertEquals(changed.status.value, "unloaded", "a changed running model is stopped");
          const kept = list.find((m) => m.id === "keep")!;
          assertEquals(kept.status.value, "loaded", "an unchanged running model keeps running");
          assertEquals(kept.status.args, keepArgs, "on the same port");
          // the listing shows the new options at once, not only after the next spawn
          const stale = changed.status.args[changed.status.args.indexOf("--ctx-size") + 1];
          // the changed one comes back with its new options on the next request
          await chatOk(g, "short");
          const args = await argsOf("my-alias-model");
          assertEquals(args[args.indexOf("--ctx-size") + 1], "256");
          assertEquals(stale, "256", "after the reload, /models shows the changed model's new args");
        },
      );

      await t.step("a bad preset on reload is a 500 naming file, line and key; nothing changes", async () => {
        const before = (await listModels(g)).map((m) => [m.id, m.status.value]);
        await write({ "my-alias-model": [...alias, "c = 256"], "keep": [...keep, "bogus-key = 1"] });
        const res = await fetch(`${g.url}/models?reload=1`);
        const err = await errorOf(res);
        assertEquals(err.status, 500);
        assert(err.message.includes(presetFile), err.message);
        // [*] (2 lines + blank), [my-alias-model] (5 lines + blank), [keep] header at 10, bogus-key at 12
        assertMatch(err.message, /:12\b/);
        assertMatch(err.message, /bogus-key/);
        assertEquals((await listModels(g)).map((m) => [m.id, m.status.value]), before);
        assertEquals((await entry(g, "keep"))?.status.value, "loaded");
        await chatOk(g, "keep");
      });

      await t.step("SIGHUP re-reads the preset", async () => {
        await write({
          "my-alias-model": [...alias, "c = 256"],
          "keep": keep,
          "newcomer": ["model = " + join(dir, "d.gguf")],
        });
        Deno.kill(g.pid, "SIGHUP");
        const added = await until("newcomer after SIGHUP", () => entry(g, "newcomer"));
        assertEquals(added.source, "preset");
        assertEquals(added.status.value, "unloaded");
        assertEquals((await entry(g, "keep"))?.status.value, "loaded");
      });
    } finally {
      await stopAll([gw], []);
    }
    await assertNoEngines();

    await t.step("a bad preset at start-up: exit non-zero, the log names file, line and key", async () => {
      await Deno.writeTextFile(
        presetFile,
        `[*]\nc = 512\n\n[broken]\nmodel = ${join(dir, "a.gguf")}\nnot-an-option = 3\n`,
      );
      const { code, out: log } = await runMain(["--models-preset", presetFile, "--port", "0"], {
        LLAMA_CACHE: cache,
      });
      assert(code !== 0, `exit code ${code}; log:\n${log}`);
      assert(log.includes(`${presetFile}:6`), log);
      assertMatch(log, /not-an-option/);
      assert(!/listening on/.test(log), log);
    });
  },
});

// the temp root goes once every test above has stopped its gateways
addEventListener("unload", () => {
  try {
    Deno.removeSync(ROOT, { recursive: true });
  } catch { /* best effort */ }
});
