/**
 * Security, end to end, where only real processes can show it: API keys never reach a real engine
 * (its command line, its environment), the env forms of the key flags work through `main.ts` to the
 * engine, and the gateway binds to 127.0.0.1 by default. Who is refused, admin keys, per-key model
 * lists, CORS, the body and queue limits and --timeout are tested in process, on every machine, in
 * tests/unit/http_auth_test.ts and tests/unit/http_limits_test.ts.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { withGateway } from "../helpers/gateway.ts";
import { engineAvailable, getJson } from "../helpers/http.ts";
import { cmdlineOf, gatewayEngineOf, readProc } from "../helpers/processes.ts";
import { chatAs, expectRefused, keyed, listedIds, overHttp } from "../helpers/requests.ts";

const skip = await engineAvailable();
const base = { ignore: !!skip, sanitizeResources: false, sanitizeOps: false };

/** Writes `<dir>/keys.txt` (an `--api-key-file`) and returns its path. */
async function writeKeyFile(dir: string, text: string): Promise<string> {
  const keyFile = join(dir, "keys.txt");
  await Deno.writeTextFile(keyFile, text);
  return keyFile;
}

const KEY1 = "sk-sy-test-key-one-7f3a";
const KEY2 = "sk-sy-test-key-two-9b2c";
const ENV_KEY = "sk-sy-test-env-key-3d4e";
const FILE_KEY = "sk-sy-test-file-key-5a6b";

Deno.test({
  ...base,
  name:
    "--api-key k1,k2: the real engine serves either key, and no key is in its command line or environment",
  fn: () =>
    withGateway(
      ["alpha"],
      { args: ["--api-key", `${KEY1},${KEY2}`, "-c", "256", "-np", "1"] },
      async (gw, dir) => {
        const send = overHttp(gw);
        // the engine demands no key of its own: a key in either header is the gateway's business alone
        for (const [key, header] of [[KEY1, "bearer"], [KEY2, "x-api-key"]] as const) {
          const res = await chatAs(send, key, "alpha", header);
          assertEquals(res.status, 200, `chat with ${key} as ${header}`);
          await res.body?.cancel();
        }

        const entry = (await getJson(gw, "/models", { Authorization: `Bearer ${KEY1}` })).data[0];
        assertEquals(entry.status.value, "loaded");
        const args = entry.status.args.join(" ");
        assert(!args.includes(KEY1) && !args.includes(KEY2), `status.args holds a key: ${args}`);
        assert(!args.includes("--api-key"), `status.args: ${args}`);
        const pid = gatewayEngineOf(gw.pid, join(dir, "alpha.gguf"));
        const cmdline = cmdlineOf(pid);
        assert(cmdline.includes("--alias alpha"), cmdline);
        assert(
          !cmdline.includes(KEY1) && !cmdline.includes(KEY2),
          `engine command line holds a key: ${cmdline}`,
        );
        const environ = readProc(pid, "environ");
        assert(environ.length > 0, "the engine's environment is readable");
        assert(!environ.includes(KEY1) && !environ.includes(KEY2), "engine environment holds a key");
      },
    ),
});

Deno.test({
  ...base,
  name: "LLAMA_API_KEY given to the gateway is enforced there and does not reach the engine's environment",
  fn: () =>
    withGateway(["alpha"], async (dir) => {
      const keyFile = await writeKeyFile(dir, `${FILE_KEY}\n`);
      return { args: ["--api-key-file", keyFile, "-c", "256", "-np", "1"], env: { LLAMA_API_KEY: ENV_KEY } };
    }, async (gw, dir) => {
      await expectRefused(overHttp(gw), 401, "no key", "/v1/models", {});
      const res = await chatAs(overHttp(gw), ENV_KEY, "alpha");
      assertEquals(res.status, 200, "the env key works");
      await res.body?.cancel();
      const pid = gatewayEngineOf(gw.pid, join(dir, "alpha.gguf"));
      const leaked = readProc(pid, "environ").split("\0").filter((v) =>
        v.startsWith("LLAMA_API_KEY=") || v.includes(ENV_KEY)
      );
      // The visible consequence of a leak: a key the gateway accepts from another source (the key
      // file) is forwarded to an engine that only knows LLAMA_API_KEY, and the engine refuses it.
      const viaFile = await chatAs(overHttp(gw), FILE_KEY, "alpha");
      const viaFileText = await viaFile.text();
      // Regression test: before 0f8b85f runners and engines inherited the gateway's whole environment,
      // so llama-server read LLAMA_API_KEY itself and enforced it, contrary to auth.ts ("keys ... never
      // reach an engine"): it answered 401 "Invalid API Key" to a --api-key-file key the gateway accepted.
      assertEquals(
        { leaked, fileKeyStatus: viaFile.status },
        { leaked: [], fileKeyStatus: 200 },
        `LLAMA_API_KEY in the engine's environment; file key answer: ${viaFileText}`,
      );
    }),
});

Deno.test({
  ...base,
  name: "LLAMA_ARG_API_KEY_FILE (the env form of --api-key-file) works end to end",
  fn: () =>
    withGateway(["alpha"], async (dir) => {
      const keyFile = await writeKeyFile(dir, "userA models=alpha\n");
      return { args: ["-c", "256", "-np", "1"], env: { LLAMA_ARG_API_KEY_FILE: keyFile } };
    }, async (gw) => {
      await expectRefused(overHttp(gw), 401, "no key", "/v1/models", {});
      const list = await listedIds(await fetch(gw.url + "/v1/models", keyed({ key: "userA" })));
      assertEquals(list, ["alpha"], "the gateway read the file");
      const res = await chatAs(overHttp(gw), "userA", "alpha");
      const text = await res.text();
      // Regression test: before 0f8b85f the engine inherited LLAMA_ARG_API_KEY_FILE, read the same
      // file as llama-server key lines (so its only key was "userA models=alpha") and answered 401
      // "Invalid API Key" to every request the gateway let through.
      assertEquals(res.status, 200, `chat with userA: ${text}`);
    }),
});

Deno.test({
  ...base,
  name: "the real gateway binds to 127.0.0.1 by default",
  fn: () =>
    withGateway(["alpha"], {}, async (gw) => {
      assertMatch(await gw.waitForLog(/listening on/), /listening on http:\/\/127\.0\.0\.1:\d+$/);
      assertMatch(gw.url, /^http:\/\/127\.0\.0\.1:/);
    }),
});
