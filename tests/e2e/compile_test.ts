/**
 * `deno task compile` makes a single binary that serves like `deno task serve`. `deno compile` needs
 * the `denort` runtime, which it downloads unless DENORT_BIN points at one; where neither works (as
 * on machines without access to Deno's download host), this test is skipped and says why.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../helpers/assert.ts";
import { makeModelsDir } from "../helpers/models.ts";
import { engineAvailable, getJson, postJson } from "../helpers/http.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function compile(out: string): Promise<string | undefined> {
  const result = await new Deno.Command(Deno.execPath(), {
    env: { NO_COLOR: "1" },
    args: [
      "compile",
      "--allow-all",
      "--include",
      "runners/runner.ts",
      "--include",
      "ui",
      "--output",
      out,
      "main.ts",
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(180_000),
  }).output().catch((err) => ({ success: false, stderr: new TextEncoder().encode(String(err)) }));
  if (result.success) return undefined;
  const stderr = new TextDecoder().decode(result.stderr);
  const reason = Deno.env.get("DENORT_BIN")
    ? `deno compile failed even with DENORT_BIN set:\n${stderr}`
    : `deno compile could not get the denort runtime (it downloads it; set DENORT_BIN to a local denort to run this test): ${
      stderr.split("\n").find((l) => /error sending request|denort/i.test(l))?.trim() ?? stderr.slice(0, 300)
    }`;
  return reason;
}

const dir = await Deno.makeTempDir({ prefix: "switchyard-compile-" });
const binary = join(dir, "switchyard");
const noEngine = await engineAvailable();
const skip = noEngine ?? await compile(binary);
if (skip) console.error(`skipping the compiled-binary test: ${skip}`);

Deno.test({
  name: "the compiled single binary serves models with runners spawned from itself",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const models = await makeModelsDir(["solo"]);
    const child = new Deno.Command(binary, {
      args: ["--models-dir", models, "--port", "0", "-c", "256"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines: string[] = [];
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let url = "";
    try {
      while (!url) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`binary exited early:\n${lines.join("")}`);
        lines.push(value);
        url = lines.join("").match(/listening on (http:\/\/\S+)/)?.[1] ?? "";
      }
      const gw = { url };
      assertEquals((await getJson(gw, "/props")).role, "router");
      const res = await postJson(gw, "/tokenize", { model: "solo", content: "hello" });
      assertEquals(res.status, 200);
      assert((await res.json()).tokens.length > 0);
      const page = await fetch(url + "/");
      assertEquals(page.status, 200);
      await page.body?.cancel();
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await reader.cancel().catch(() => {});
      await child.stdout.cancel().catch(() => {});
      await Deno.remove(models, { recursive: true });
    }
  },
});

addEventListener("unload", () => {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch { /* already gone */ }
});
