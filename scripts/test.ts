/**
 * `deno task test`: the whole suite. Makes sure llama-server exists first (building the pinned
 * release once, into a cache outside the repo, if nothing else provides it), then runs the unit
 * tests, the end-to-end tests on the real engine, and llama.cpp's own router conformance tests.
 * llama.cpp's web UI is built up front too (npm, once, cached beside the engine), so its browser
 * test does not spend its time building; without npm that test is skipped and says why.
 * Ends with one line `N passed, N failed` over everything.
 */
import { resolveEngine } from "../router/engine/binary.ts";
import { ensureWebui, WebuiUnavailableError } from "../router/engine/webui.ts";

const log = (line: string) => console.error(`[test] ${line}`);

const bin = await resolveEngine({ env: Deno.env.toObject(), log });
log(`engine: ${bin}`);
try {
  log(`llama.cpp web UI: ${await ensureWebui({ env: Deno.env.toObject(), log })}`);
} catch (error) {
  // the browser test skips (no npm) or fails (a broken build) on its own: the rest of the suite runs
  const kind = error instanceof WebuiUnavailableError ? "not built" : "build failed";
  log(`llama.cpp web UI: ${kind}: ${(error as Error).message}`);
}
const env = { LLAMA_SERVER_BIN: bin };

const suites: { name: string; args: string[] }[] = [
  { name: "unit", args: ["test", "--allow-all", "--parallel", "tests/unit/"] },
  { name: "e2e", args: ["test", "--allow-all", "tests/e2e/"] },
];
let passed = 0, failed = 0, broken = false;
for (const suite of suites) {
  log(`running ${suite.name} tests`);
  const child = new Deno.Command(Deno.execPath(), {
    args: suite.args,
    env,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const decoder = new TextDecoder();
  let tail = "";
  for await (const chunk of child.stdout) {
    const text = decoder.decode(chunk, { stream: true });
    await Deno.stdout.write(chunk);
    tail = (tail + text).slice(-4000);
  }
  const status = await child.status;
  const summary = tail.match(/(\d+) passed[^|]*\|\s*(\d+) failed/);
  if (summary) {
    passed += Number(summary[1]);
    failed += Number(summary[2]);
  }
  if (!status.success && (!summary || Number(summary[2]) === 0)) broken = true;
}
console.log(`\nswitchyard: ${passed} passed, ${failed} failed`);
Deno.exit(failed > 0 || broken ? 1 : 0);
