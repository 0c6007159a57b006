import assert from "node:assert/strict";
import {
  HubAuthError,
  HubUnavailableError,
  InvalidRepoError,
  QuantNotFoundError,
  RepoNotFoundError,
} from "../../router/hub/errors.ts";
import { DEFAULT_HUB_ENDPOINT, hubOptionsFromEnv } from "../../router/hub/options.ts";
import { resolveHubFiles } from "../../router/hub/resolve.ts";
import { FAKE_HUB_TOKEN, startFakeHub } from "../fixtures/fake_hub.ts";
import { freePort } from "../helpers/llama_server.ts";
import { bytes, hubEnv, rejectsWith } from "./hub_test_util.ts";

const QUANTS = {
  "README.md": new TextEncoder().encode("# m\n"),
  "m-F16.gguf": bytes(300, 1),
  "m-Q8_0.gguf": bytes(200, 2),
  "m-Q4_K_M.gguf": bytes(100, 3),
};

Deno.test("resolve: a named tag pins the file, its size and LFS sha256 to the main commit", async () => {
  await using env = await hubEnv({ "me/m-GGUF": { files: QUANTS } });
  const plan = await resolveHubFiles({ repo: "me/m-GGUF", tag: "q8_0" }, env.opts);
  const { commit, files } = env.hub.repo("me/m-GGUF");
  assert.equal(plan.commit, commit);
  assert.equal(plan.revision, "main");
  assert.equal(plan.tag, "Q8_0");
  assert.deepEqual(plan.files, [{
    path: "m-Q8_0.gguf",
    size: 200,
    oid: files["m-Q8_0.gguf"].sha256,
    url: `${env.hub.url}/me/m-GGUF/resolve/${commit}/m-Q8_0.gguf`,
    role: "model",
  }]);
  assert.equal(plan.primary, plan.files[0]);
  assert.equal(plan.mmproj, undefined);
});

Deno.test("resolve without a tag: Q4_K_M, else Q8_0, else the first GGUF", async () => {
  await using env = await hubEnv({
    "me/all": { files: QUANTS },
    "me/no-q4": { files: { "m-F16.gguf": bytes(30, 1), "m-Q8_0.gguf": bytes(20, 2) } },
    "me/odd": {
      files: { "README.md": bytes(3, 9), "m-BF16.gguf": bytes(30, 1), "m-IQ2_XS.gguf": bytes(20, 2) },
    },
  });
  const primary = async (repo: string) => (await resolveHubFiles({ repo }, env.opts)).primary.path;
  assert.equal(await primary("me/all"), "m-Q4_K_M.gguf");
  assert.equal(await primary("me/no-q4"), "m-Q8_0.gguf");
  assert.equal(await primary("me/odd"), "m-BF16.gguf");
});

Deno.test("resolve: an unknown quant names the quants that exist", async () => {
  await using env = await hubEnv({
    "me/m-GGUF": { files: QUANTS },
    "me/empty": { files: { "README.md": bytes(1, 1) } },
  });
  const err = await rejectsWith(
    resolveHubFiles({ repo: "me/m-GGUF", tag: "Q5_K_S" }, env.opts),
    QuantNotFoundError,
    /quant 'Q5_K_S' not found in 'me\/m-GGUF'; available: F16, Q4_K_M, Q8_0/,
  );
  assert.deepEqual(err.available, ["F16", "Q4_K_M", "Q8_0"]);
  await rejectsWith(
    resolveHubFiles({ repo: "me/empty" }, env.opts),
    QuantNotFoundError,
    /no GGUF model files/,
  );
});

Deno.test("resolve: a missing repo is 404 with a token, and the hub's ambiguous 401 without", async () => {
  await using env = await hubEnv({ "me/m-GGUF": { files: QUANTS } });
  await assert.rejects(
    resolveHubFiles({ repo: "me/nope" }, { ...env.opts, token: FAKE_HUB_TOKEN }),
    RepoNotFoundError,
  );
  const err = await rejectsWith(resolveHubFiles({ repo: "me/nope" }, env.opts), HubAuthError, /set HF_TOKEN/);
  assert.equal(err.status, 401);
  env.hub.faults.hideRepo("me/m-GGUF");
  await assert.rejects(
    resolveHubFiles({ repo: "me/m-GGUF" }, { ...env.opts, token: "hf_other" }),
    RepoNotFoundError,
  );
  await assert.rejects(resolveHubFiles({ repo: "me/a/b" }, env.opts), InvalidRepoError);
});

Deno.test("resolve: a private repo answers 401 without a token and works with it, sent as Bearer", async () => {
  await using env = await hubEnv({ "me/secret": { files: QUANTS, private: true } });
  const err = await rejectsWith(
    resolveHubFiles({ repo: "me/secret" }, env.opts),
    HubAuthError,
    /set HF_TOKEN/,
  );
  assert.equal(err.status, 401);
  assert.equal(err.hadToken, false);
  const plan = await resolveHubFiles({ repo: "me/secret" }, { ...env.opts, token: FAKE_HUB_TOKEN });
  assert.equal(plan.primary.path, "m-Q4_K_M.gguf");
  const authed = env.hub.requests.filter((r) => r.authorization !== undefined);
  assert.ok(authed.length >= 2);
  assert.ok(authed.every((r) => r.authorization === `Bearer ${FAKE_HUB_TOKEN}`));
});

Deno.test("resolve: a gated repo is refused up front without access, not half-way through a download", async () => {
  await using env = await hubEnv({ "me/gated": { files: QUANTS, gated: true } });
  const anon = await rejectsWith(
    resolveHubFiles({ repo: "me/gated" }, env.opts),
    HubAuthError,
    /set HF_TOKEN/,
  );
  assert.equal(anon.status, 401);
  const wrong = await rejectsWith(
    resolveHubFiles({ repo: "me/gated" }, { ...env.opts, token: "hf_notallowed" }),
    HubAuthError,
    /no access/,
  );
  assert.equal(wrong.status, 403);
  const plan = await resolveHubFiles({ repo: "me/gated" }, { ...env.opts, token: FAKE_HUB_TOKEN });
  assert.equal(plan.tag, "Q4_K_M");
});

Deno.test("resolve: tokens without the hf_ prefix are sent too (mirrors behind HF_ENDPOINT)", async () => {
  const hub = await startFakeHub({
    repos: { "me/secret": { files: QUANTS, private: true } },
    token: "mirror-token",
  });
  try {
    const plan = await resolveHubFiles({ repo: "me/secret" }, {
      endpoint: hub.url,
      cacheDir: "/nonexistent",
      token: "mirror-token",
    });
    assert.equal(plan.primary.path, "m-Q4_K_M.gguf");
  } finally {
    await hub.close();
  }
});

Deno.test("resolve: all shards of a split model, in order, then the mmproj next to it", async () => {
  await using env = await hubEnv({
    "me/big": {
      files: {
        "Q4_K_M/m-Q4_K_M-00002-of-00003.gguf": bytes(50, 2),
        "Q4_K_M/m-Q4_K_M-00001-of-00003.gguf": bytes(50, 1),
        "Q4_K_M/m-Q4_K_M-00003-of-00003.gguf": bytes(20, 3),
        "Q8_0/m-Q8_0.gguf": bytes(90, 4),
        "mmproj-F16.gguf": bytes(30, 5),
        "mmproj-Q8_0.gguf": bytes(20, 6),
      },
    },
  }, 2);
  const plan = await resolveHubFiles({ repo: "me/big" }, env.opts);
  assert.deepEqual(plan.files.map((f) => [f.path, f.role]), [
    ["Q4_K_M/m-Q4_K_M-00001-of-00003.gguf", "model"],
    ["Q4_K_M/m-Q4_K_M-00002-of-00003.gguf", "model"],
    ["Q4_K_M/m-Q4_K_M-00003-of-00003.gguf", "model"],
    ["mmproj-Q8_0.gguf", "mmproj"],
  ]);
  assert.equal(plan.primary.path, "Q4_K_M/m-Q4_K_M-00001-of-00003.gguf");
  assert.equal(plan.mmproj?.path, "mmproj-Q8_0.gguf");
  // the listing came in pages of 2, followed through the Link header
  assert.ok(env.hub.requests.filter((r) => r.path.includes("/tree/")).length > 2);
});

Deno.test("resolve: an unreachable hub is HubUnavailableError", async () => {
  // a loopback port nothing listens on
  const port = freePort();
  await assert.rejects(
    resolveHubFiles({ repo: "me/m" }, { endpoint: `http://127.0.0.1:${port}`, cacheDir: "/nonexistent" }),
    HubUnavailableError,
  );
});

Deno.test("hubOptionsFromEnv: MODEL_ENDPOINT, then HF_ENDPOINT, then huggingface.co; HF_TOKEN", () => {
  assert.deepEqual(hubOptionsFromEnv({}, "/c"), {
    endpoint: DEFAULT_HUB_ENDPOINT,
    token: undefined,
    cacheDir: "/c",
  });
  assert.deepEqual(hubOptionsFromEnv({ HF_ENDPOINT: "http://mirror:8080/", HF_TOKEN: "hf_x" }, "/c"), {
    endpoint: "http://mirror:8080",
    token: "hf_x",
    cacheDir: "/c",
  });
  assert.equal(
    hubOptionsFromEnv({ HF_ENDPOINT: "http://a", MODEL_ENDPOINT: "http://b/" }, "/c").endpoint,
    "http://b",
  );
});
