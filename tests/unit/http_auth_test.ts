/**
 * API keys against the real app in process: who is refused (401, 403) and who gets through, admin
 * keys for model management, per-key model lists, and that no key or cookie ever reaches an engine.
 * What only real processes can show (a key in an engine's /proc environment, the env forms end to
 * end) stays in tests/e2e/security_test.ts.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../helpers/assert.ts";
import { type InProcessGateway, withInProcess } from "../helpers/in_process.ts";
import { assertErrorBody, chatBody } from "../helpers/openai.ts";
import { chatAs, expectRefused, keyed, listedIds } from "../helpers/requests.ts";
import { engineEnvironment } from "../../router/gateway.ts";

const KEY1 = "sk-sy-test-key-one-7f3a";
const KEY2 = "sk-sy-test-key-two-9b2c";

/** Writes `<dir>/keys.txt` (an `--api-key-file`) and returns its path. */
async function writeKeyFile(dir: string, text: string): Promise<string> {
  const keyFile = join(dir, "keys.txt");
  await Deno.writeTextFile(keyFile, text);
  return keyFile;
}

/** Sends a request that must get through, and drops its answer. */
async function expectStatus(gw: InProcessGateway, status: number, context: string, path: string, init = {}) {
  const res = await gw.send(path, keyed(init));
  const text = await res.text();
  assertEquals(res.status, status, `${context}: ${text}`);
}

Deno.test("--api-key k1,k2: 401 without a key or with a wrong one; /health is public; each key works in either header", async () => {
  await withInProcess(["alpha"], { args: ["--api-key", `${KEY1},${KEY2}`] }, async (gw) => {
    const unauthorized = [
      ["no key", "/v1/models", {}],
      ["no key on /models", "/models", {}],
      ["no key on /props", "/props", {}],
      ["no key on /models/sse", "/models/sse", {}],
      ["wrong key", "/v1/models", { key: "sk-wrong" }],
      ["wrong X-Api-Key", "/v1/models", { key: "sk-wrong", header: "x-api-key" }],
      ["empty Bearer", "/v1/models", { key: "" }],
      ["a key with a byte more", "/v1/models", { key: `${KEY1}x` }],
      ["a key with a byte less", "/v1/models", { key: KEY1.slice(0, -1) }],
      ["the whole list is not a key", "/v1/models", { key: `${KEY1},${KEY2}` }],
      ["chat without a key", "/v1/chat/completions", { method: "POST", json: chatBody("alpha") }],
      ["tokenize with a wrong key", "/tokenize", { method: "POST", key: "no", json: { model: "alpha" } }],
      ["load without a key", "/models/load", { method: "POST", json: { model: "alpha" } }],
    ] as const;
    for (const [context, path, init] of unauthorized) await expectRefused(gw.send, 401, context, path, init);
    assertEquals(gw.starter.starts, [], "no refused request loaded a model");
    assertEquals(await (await gw.send("/health")).json(), { status: "ok" }, "/health is public");
    assertEquals((await gw.send("/v1/health")).status, 200, "/v1/health is public");

    const accepted = [[KEY1, "bearer"], [KEY2, "bearer"], [KEY1, "x-api-key"], [KEY2, "x-api-key"]] as const;
    for (const [key, header] of accepted) {
      await expectStatus(gw, 200, `/v1/models with ${key} as ${header}`, "/v1/models", { key, header });
      const res = await chatAs(gw.send, key, "alpha", header);
      assertEquals(res.status, 200, `chat with ${key} as ${header}`);
      assertEquals((await res.json()).object, "chat.completion");
    }
    await expectStatus(gw, 200, "a lower-case bearer", "/v1/models", {
      headers: { Authorization: `bearer ${KEY1}` },
    });
  });
});

Deno.test("keys and cookies never reach an engine: not in its argv, its environment or a proxied request's headers", async () => {
  await withInProcess(["alpha"], { args: ["--api-key", KEY1] }, async (gw) => {
    const headers = { Cookie: `session=${KEY2}`, "X-Trace": "kept" };
    for (const header of ["bearer", "x-api-key"] as const) {
      const chat = await gw.send(
        "/v1/chat/completions",
        keyed({ method: "POST", key: KEY1, header, headers, json: chatBody("alpha") }),
      );
      assertEquals(chat.status, 200, `chat with the key as ${header}`);
      await chat.body?.cancel();
    }
    const tokenize = await gw.send(
      "/tokenize",
      keyed({ method: "POST", key: KEY1, headers, json: { model: "alpha", content: "x" } }),
    );
    assertEquals(tokenize.status, 200);
    await tokenize.body?.cancel();

    const seen = gw.engine("alpha").requests;
    assertEquals(seen.length, 3);
    for (const req of seen) {
      const names = [...req.headers.keys()];
      for (const name of ["authorization", "x-api-key", "cookie"]) {
        assert(!names.includes(name), `${req.path} reached the engine with ${name}: ${names.join(", ")}`);
      }
      assertEquals(req.headers.get("x-trace"), "kept", "other headers are forwarded");
      const all = [...req.headers.values()].join("\n") + req.body;
      assert(!all.includes(KEY1) && !all.includes(KEY2), `${req.path}: a key reached the engine`);
    }

    assertEquals(gw.starter.launches.length, 1);
    const launch = gw.starter.launches[0];
    const launched = JSON.stringify(launch);
    assert(!launched.includes(KEY1) && !launch.args.includes("--api-key"), `engine launch: ${launched}`);
    const entry = (await (await gw.send("/models", keyed({ key: KEY1 }))).json()).data[0];
    const args = entry.status.args.join(" ");
    assert(!args.includes(KEY1) && !args.includes("--api-key"), `status.args: ${args}`);
  });
});

Deno.test("runners and engines get the gateway's environment without its keys, TLS files or router settings", () => {
  const env = engineEnvironment({
    PATH: "/usr/bin",
    HOME: "/home/u",
    LLAMA_API_KEY: KEY1,
    LLAMA_ARG_API_KEY_FILE: "/etc/keys.txt",
    SWITCHYARD_ADMIN_API_KEY: KEY2,
    HF_TOKEN: "hf_secret",
    LLAMA_ARG_SSL_KEY_FILE: "/etc/tls.key",
    LLAMA_ARG_SSL_CERT_FILE: "/etc/tls.crt",
    LLAMA_ARG_HOST: "0.0.0.0",
    LLAMA_ARG_PORT: "8080",
    LLAMA_ARG_MODELS_DIR: "/models",
    LLAMA_ARG_MODELS_MAX: "2",
    LLAMA_ARG_CTX_SIZE: "512",
    UNSET: undefined,
  });
  assertEquals(env, { PATH: "/usr/bin", HOME: "/home/u", LLAMA_ARG_CTX_SIZE: "512" });
});

Deno.test("admin keys: a user key infers but gets 403 on model management; the admin key may do it all", async () => {
  const args = ["--api-key", "user1", "--admin-api-key", "adm"];
  await withInProcess(["alpha", "beta"], { args }, async (gw) => {
    const management = [
      ["POST", "/models/load", { model: "beta" }],
      ["POST", "/models/unload", { model: "alpha" }],
      ["POST", "/models", { model: "ggml-org/some-model-GGUF" }],
      ["DELETE", "/models?model=alpha", undefined],
      ["GET", "/models?reload=1", undefined],
    ] as const;
    const res = await chatAs(gw.send, "user1", "alpha");
    assertEquals(res.status, 200, "user1 can chat (and autoload)");
    await res.body?.cancel();
    await expectStatus(gw, 200, "user1 can list", "/models", { key: "user1" });
    // a hub model a request names is a download: management too
    await expectRefused(gw.send, 403, "user1 pulls by chat", "/v1/chat/completions", {
      method: "POST",
      key: "user1",
      json: chatBody("ggml-org/other-model-GGUF"),
    });

    for (const [method, path, body] of management) {
      await expectRefused(gw.send, 403, `user1 ${method} ${path}`, path, {
        method,
        key: "user1",
        json: body,
      });
    }
    assertEquals(
      gw.logs.filter((l) => /downloading|loading beta|models reloaded/.test(l)),
      [],
      "nothing ran",
    );
    assertEquals(gw.scheduler.find("alpha")!.state, "loaded", "alpha was not unloaded");

    const expected: Record<string, number> = {
      "/models/load": 200,
      "/models/unload": 200,
      // a download starts (and fails at once: the hub is a closed port on 127.0.0.1)
      "/models": 200,
      // alpha is not a cache model: not removable, but the request got past the permission check
      "/models?model=alpha": 400,
      "/models?reload=1": 200,
    };
    const downloadFailed = gw.nextEvent((e) => e.event === "download_failed");
    for (const [method, path, body] of management) {
      const r = await gw.send(path, keyed({ method, key: "adm", json: body }));
      const text = await r.text();
      assertEquals(r.status, expected[path], `adm ${method} ${path}: ${text}`);
      if (r.status !== 200) assertErrorBody(JSON.parse(text), r.status, `adm ${method} ${path}`);
    }
    assertEquals((await downloadFailed).model, "ggml-org/some-model-GGUF");
    assert(gw.logs.some((l) => l.startsWith("models reloaded")), "the admin's reload ran");
    const chatAdm = await chatAs(gw.send, "adm", "beta");
    assertEquals(chatAdm.status, 200, "the admin key also infers");
    await chatAdm.body?.cancel();
  });
});

Deno.test("--api-key-file 'userA models=alpha': userA uses and sees only alpha, gets 403 for beta", async () => {
  const setup = async (dir: string) => {
    const keyFile = await writeKeyFile(dir, "# team keys\nuserA models=alpha\nuserB   # every model\n");
    return { args: ["--api-key-file", keyFile] };
  };
  await withInProcess(["alpha", "beta"], setup, async (gw) => {
    const ok = await chatAs(gw.send, "userA", "alpha");
    assertEquals(ok.status, 200);
    await ok.body?.cancel();
    for (const path of ["/v1/models", "/models"]) {
      assertEquals(
        await listedIds(await gw.send(path, keyed({ key: "userA" }))),
        ["alpha"],
        `${path} for userA`,
      );
    }
    const all = await listedIds(await gw.send("/v1/models", keyed({ key: "userB" })));
    assertEquals(all, ["alpha", "beta"], "userB sees every model");

    const forbidden = [
      ["userA chat beta", "/v1/chat/completions", { method: "POST", json: chatBody("beta") }],
      ["userA tokenize beta", "/tokenize", { method: "POST", json: { model: "beta", content: "x" } }],
      ["userA GET /props?model=beta", "/props?model=beta", {}],
      ["userA GET /slots?model=beta", "/slots?model=beta", {}],
      ["userA load beta", "/models/load", { method: "POST", json: { model: "beta" } }],
      ["userA logs of beta", "/models/logs?model=beta", {}],
    ] as const;
    for (const [context, path, init] of forbidden) {
      await expectRefused(gw.send, 403, context, path, { ...init, key: "userA" });
    }
    assertEquals(gw.scheduler.find("beta")!.state, "unloaded", "beta was never loaded for userA");
    assertEquals(gw.starter.starts, ["alpha"]);
  });
});

Deno.test("/models/sse: a key limited to some models hears of those only, in the snapshot and after", async () => {
  const setup = async (dir: string) => ({
    args: ["--api-key-file", await writeKeyFile(dir, "userA models=alpha\n")],
  });
  await withInProcess(["alpha", "beta"], setup, async (gw) => {
    const controller = new AbortController();
    const res = await gw.send("/models/sse", keyed({ key: "userA", signal: controller.signal }));
    assertEquals(res.status, 200);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    const events: { model: string; event: string; data?: { models?: { id: string }[] } }[] = [];
    let buffer = "";
    const next = async () => {
      while (!buffer.includes("\n\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error("the feed ended");
        buffer += value;
      }
      const [chunk] = buffer.split("\n\n", 1);
      buffer = buffer.slice(chunk.length + 2);
      const data = chunk.split("\n").find((l) => l.startsWith("data:"));
      if (data) events.push(JSON.parse(data.slice(5)));
      else await next();
    };
    await next();
    assertEquals(events[0].data?.models?.map((m) => m.id), ["alpha"], "the snapshot lists alpha only");
    // beta loads first, then alpha: the first event userA hears must be alpha's
    const betaLoaded = gw.nextEvent((e) => e.model === "beta" && e.data?.status === "loaded");
    await gw.scheduler.load("beta");
    await betaLoaded;
    await gw.scheduler.load("alpha");
    await next();
    assertEquals(events[1].model, "alpha", JSON.stringify(events[1]));
    controller.abort();
    await reader.cancel().catch(() => {});
  });
});

Deno.test("--api-prefix: /health stays public under the prefix", async () => {
  await withInProcess(["alpha"], { args: ["--api-key", KEY1, "--api-prefix", "/api"] }, async (gw) => {
    await expectStatus(gw, 200, "health under the prefix", "/api/health");
    await expectRefused(gw.send, 401, "models under the prefix", "/api/v1/models", {});
  });
});
