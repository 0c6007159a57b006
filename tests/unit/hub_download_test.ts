import assert from "node:assert/strict";
import { join } from "node:path";
import { DownloadManager, downloadModel, type DownloadProgress } from "../../router/hub/download.ts";
import {
  ChecksumMismatchError,
  DiskFullError,
  DownloadCancelledError,
  HubAuthError,
  HubUnavailableError,
} from "../../router/hub/errors.ts";
import { resolveHubFiles } from "../../router/hub/resolve.ts";
import { FAKE_HUB_TOKEN } from "../fixtures/fake_hub.ts";
import { bytes, fileGets, hubEnv, listCache, rejectsWith } from "./hub_test_util.ts";

const REPO = "me/m-GGUF";
const Q4 = bytes(256 * 1024, 1);
const FILES = {
  "m-Q4_K_M.gguf": Q4,
  "m-Q8_0.gguf": bytes(1000, 2),
  "README.md": new TextEncoder().encode("# m\n"),
};
/** fast retries: the backoff itself is not under test */
const FAST = { retryDelayMs: 5 };

Deno.test("download writes blobs/<sha256>, a relative snapshot link and refs/main", async () => {
  await using env = await hubEnv({ [REPO]: { files: FILES } });
  const plan = await resolveHubFiles({ repo: REPO }, env.opts);
  const result = await downloadModel(plan, env.opts);
  const { commit, files } = env.hub.repo(REPO);
  const sha = files["m-Q4_K_M.gguf"].sha256;
  assert.deepEqual(await listCache(env.cacheDir), [
    `models--me--m-GGUF/blobs/${sha}`,
    "models--me--m-GGUF/refs/main",
    `models--me--m-GGUF/snapshots/${commit}/m-Q4_K_M.gguf -> ../../blobs/${sha}`,
  ]);
  assert.equal(await Deno.readTextFile(join(env.cacheDir, "models--me--m-GGUF/refs/main")), commit);
  assert.deepEqual(await Deno.readFile(result.modelPath), Q4);
  assert.equal(result.id, "me/m-GGUF:Q4_K_M");
  assert.equal(result.modelPath, join(env.cacheDir, `models--me--m-GGUF/snapshots/${commit}/m-Q4_K_M.gguf`));
  assert.deepEqual(result.files.map((f) => f.fetched), [true]);
});

Deno.test("download resumes with Range after a dropped connection and still verifies", async () => {
  await using env = await hubEnv({ [REPO]: { files: FILES } });
  env.hub.faults.dropConnection("m-Q4_K_M.gguf", { afterBytes: 100_000, times: 2 });
  const plan = await resolveHubFiles({ repo: REPO }, env.opts);
  const reports: DownloadProgress[] = [];
  const result = await downloadModel(plan, { ...env.opts, ...FAST, onProgress: (p) => reports.push(p) });
  const ranges = env.hub.requests.filter((r) => r.path.includes("/resolve/")).map((r) => r.range);
  assert.deepEqual(ranges, [undefined, "bytes=100000-", "bytes=200000-"]);
  assert.deepEqual(await Deno.readFile(result.modelPath), Q4);
  assert.deepEqual(reports.at(-1), { files: { [plan.primary.url]: { done: Q4.length, total: Q4.length } } });
});

Deno.test("download gives up after its retries and leaves nothing behind", async () => {
  await using env = await hubEnv({ [REPO]: { files: FILES } });
  env.hub.faults.dropConnection("m-Q4_K_M.gguf", { afterBytes: 1000, times: 10 });
  const plan = await resolveHubFiles({ repo: REPO }, env.opts);
  await rejectsWith(
    downloadModel(plan, { ...env.opts, ...FAST, retries: 2 }),
    HubUnavailableError,
    /3 attempts/,
  );
  assert.equal(fileGets(env.hub).length, 3);
  assert.deepEqual(await listCache(env.cacheDir), []);
});

Deno.test("download retries a 5xx", async () => {
  await using env = await hubEnv({ [REPO]: { files: FILES } });
  env.hub.faults.failWith("m-Q4_K_M.gguf", 503);
  const plan = await resolveHubFiles({ repo: REPO }, env.opts);
  const result = await downloadModel(plan, { ...env.opts, ...FAST });
  assert.deepEqual(await Deno.readFile(result.modelPath), Q4);
});

Deno.test("a checksum mismatch fails the download and leaves nothing", async () => {
  await using env = await hubEnv({ [REPO]: { files: FILES } });
  env.hub.faults.corrupt("m-Q4_K_M.gguf");
  const plan = await resolveHubFiles({ repo: REPO }, env.opts);
  await rejectsWith(downloadModel(plan, env.opts), ChecksumMismatchError, /m-Q4_K_M\.gguf/);
  assert.deepEqual(await listCache(env.cacheDir), []);
});

Deno.test("cancelling through the AbortSignal stops the transfer and leaves nothing", async () => {
  await using env = await hubEnv({ [REPO]: { files: FILES } });
  // half the file comes, then the hub holds the rest: the abort always lands mid-transfer
  env.hub.faults.stall("m-Q4_K_M.gguf");
  const plan = await resolveHubFiles({ repo: REPO }, env.opts);
  const abort = new AbortController();
  const reports: DownloadProgress[] = [];
  const download = downloadModel(plan, {
    ...env.opts,
    signal: abort.signal,
    onProgress: (p) => {
      reports.push(p);
      if (p.files[plan.primary.url].done > 0) abort.abort();
    },
  });
  await assert.rejects(download, (e: Error) => e.name === "AbortError");
  assert.ok(reports.length > 0);
  assert.deepEqual(await listCache(env.cacheDir), []);
});

Deno.test("progress is cumulative per file URL and reported at most every 100 ms", async () => {
  await using env = await hubEnv({ [REPO]: { files: FILES } });
  env.hub.faults.throttle(512 * 1024);
  const plan = await resolveHubFiles({ repo: REPO }, env.opts);
  const at: number[] = [];
  const done: number[] = [];
  await downloadModel(plan, {
    ...env.opts,
    onProgress: (p) => {
      at.push(Date.now());
      done.push(p.files[plan.primary.url].done);
    },
  });
  assert.ok(at.length >= 3, `only ${at.length} reports`);
  // every gap but the closing flush's respects the 100 ms window (timers may fire a hair early)
  for (let i = 1; i < at.length - 1; i++) assert.ok(at[i] - at[i - 1] >= 95, `gap ${at[i] - at[i - 1]} ms`);
  assert.deepEqual(done, [...done].sort((a, b) => a - b));
  assert.equal(done.at(-1), Q4.length);
});

Deno.test("files already in the cache are not fetched again", async () => {
  await using env = await hubEnv({ [REPO]: { files: FILES } });
  const plan = await resolveHubFiles({ repo: REPO }, env.opts);
  await downloadModel(plan, env.opts);
  const gets = fileGets(env.hub).length;
  const again = await downloadModel(plan, env.opts);
  assert.equal(fileGets(env.hub).length, gets);
  assert.deepEqual(again.files.map((f) => f.fetched), [false]);
});

Deno.test("a temp file left by a crashed run is resumed, not restarted", async () => {
  await using env = await hubEnv({ [REPO]: { files: FILES } });
  const plan = await resolveHubFiles({ repo: REPO }, env.opts);
  const blobs = join(env.cacheDir, "models--me--m-GGUF/blobs");
  await Deno.mkdir(blobs, { recursive: true });
  await Deno.writeFile(join(blobs, `${plan.primary.oid}.incomplete`), Q4.subarray(0, 5000));
  const result = await downloadModel(plan, env.opts);
  assert.deepEqual(env.hub.requests.filter((r) => r.path.includes("/resolve/")).map((r) => r.range), [
    "bytes=5000-",
  ]);
  assert.deepEqual(await Deno.readFile(result.modelPath), Q4);
});

Deno.test("a full disk is a DiskFullError and leaves no temp file", {
  ignore: Deno.build.os !== "linux",
}, async () => {
  await using env = await hubEnv({ [REPO]: { files: FILES } });
  const plan = await resolveHubFiles({ repo: REPO }, env.opts);
  const blobs = join(env.cacheDir, "models--me--m-GGUF/blobs");
  await Deno.mkdir(blobs, { recursive: true });
  // writes through this link fail with ENOSPC, as on a full disk
  await Deno.symlink("/dev/full", join(blobs, `${plan.primary.oid}.incomplete`));
  await rejectsWith(downloadModel(plan, env.opts), DiskFullError, /no space left/);
  assert.deepEqual(await listCache(env.cacheDir), []);
});

Deno.test("a gated file sends the token as Bearer, and without one fails with HubAuthError", async () => {
  await using env = await hubEnv({ [REPO]: { files: FILES, gated: true } });
  const authed = { ...env.opts, token: FAKE_HUB_TOKEN };
  const plan = await resolveHubFiles({ repo: REPO }, authed);
  await rejectsWith(downloadModel(plan, env.opts), HubAuthError, /set HF_TOKEN/);
  assert.deepEqual(await listCache(env.cacheDir), []);
  await downloadModel(plan, authed);
  const gets = env.hub.requests.filter((r) => r.method === "GET" && r.path.includes("/resolve/"));
  assert.equal(gets.at(-1)?.authorization, `Bearer ${FAKE_HUB_TOKEN}`);
});

Deno.test("a multi-shard model and its mmproj are downloaded together", async () => {
  const shards = [bytes(3000, 11), bytes(3000, 12), bytes(1000, 13)];
  await using env = await hubEnv({
    "me/big": {
      files: {
        "Q4_K_M/m-Q4_K_M-00001-of-00003.gguf": shards[0],
        "Q4_K_M/m-Q4_K_M-00002-of-00003.gguf": shards[1],
        "Q4_K_M/m-Q4_K_M-00003-of-00003.gguf": shards[2],
        "Q8_0/m-Q8_0.gguf": bytes(100, 14),
        "mmproj-m-F16.gguf": bytes(700, 15),
      },
    },
  });
  const plan = await resolveHubFiles({ repo: "me/big" }, env.opts);
  const result = await downloadModel(plan, env.opts);
  const { commit } = env.hub.repo("me/big");
  const snap = join(env.cacheDir, "models--me--big/snapshots", commit);
  assert.equal(result.modelPath, join(snap, "Q4_K_M/m-Q4_K_M-00001-of-00003.gguf"));
  assert.equal(result.mmprojPath, join(snap, "mmproj-m-F16.gguf"));
  for (const [i, shard] of shards.entries()) {
    const path = join(snap, `Q4_K_M/m-Q4_K_M-0000${i + 1}-of-00003.gguf`);
    assert.deepEqual(await Deno.readFile(path), shard);
    assert.match(await Deno.readLink(path), /^\.\.\/\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/);
  }
  assert.equal(fileGets(env.hub).length, 4);
  assert.equal(
    (await listCache(env.cacheDir)).filter((p) => p.startsWith("models--me--big/blobs/")).length,
    4,
  );
});

Deno.test("DownloadManager: concurrent starts share one download; the hub sees one GET per file", async () => {
  await using env = await hubEnv({
    [REPO]: { files: { ...FILES, "mmproj-F16.gguf": bytes(500, 7) } },
  });
  env.hub.faults.throttle(1024 * 1024);
  const seen: string[] = [];
  const downloads = new DownloadManager({ ...env.opts, onProgress: (key) => seen.push(key) });
  const a = downloads.start(REPO);
  const b = downloads.start(REPO);
  assert.equal(a, b);
  // another tag needing the same mmproj waits for the first writer instead of fetching it again
  const c = downloads.start(REPO, "Q8_0");
  assert.deepEqual(downloads.active().map((d) => d.key).sort(), [REPO, `${REPO}:Q8_0`]);
  const [ra, rc] = await Promise.all([a, c]);
  assert.equal(ra.id, `${REPO}:Q4_K_M`);
  assert.equal(rc.id, `${REPO}:Q8_0`);
  assert.equal(ra.mmprojPath, rc.mmprojPath);
  assert.equal(fileGets(env.hub, "m-Q4_K_M.gguf").length, 1);
  assert.equal(fileGets(env.hub, "m-Q8_0.gguf").length, 1);
  assert.equal(fileGets(env.hub, "mmproj-F16.gguf").length, 1);
  assert.ok(seen.includes(REPO) && seen.includes(`${REPO}:Q8_0`));
  assert.deepEqual(downloads.active(), []);
});

Deno.test("DownloadManager: cancel(key) rejects every waiter and leaves nothing", async () => {
  await using env = await hubEnv({ [REPO]: { files: FILES } });
  // the hub holds the second half of the file, so the cancel always finds the download under way
  env.hub.faults.stall("m-Q4_K_M.gguf");
  const downloads = new DownloadManager({ ...env.opts });
  const key = DownloadManager.key(REPO, "Q4_K_M");
  const started = new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      const d = downloads.active().find((d) => d.key === key);
      if (d && Object.values(d.progress.files).some((f) => f.done > 0)) {
        clearInterval(poll);
        resolve();
      }
    }, 10);
  });
  const first = downloads.start(REPO, "Q4_K_M");
  const second = downloads.start(REPO, "Q4_K_M");
  await started;
  assert.ok(downloads.cancel(key));
  await rejectsWith(first, DownloadCancelledError, /cancelled/);
  await rejectsWith(second, DownloadCancelledError);
  assert.equal(downloads.cancel(key), false);
  assert.deepEqual(downloads.active(), []);
  assert.deepEqual(await listCache(env.cacheDir), []);
});
