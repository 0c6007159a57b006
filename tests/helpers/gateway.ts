/**
 * Starts a real Switchyard gateway (`main.ts` in its own Deno process) for end-to-end tests, and
 * stops it without leaving a process behind.
 */
import { join } from "node:path";
import { forEachLine } from "../../runners/lines.ts";
import { assertEquals } from "./assert.ts";
import { makeModelsDir } from "./models.ts";
import { enginesOf, processesWith } from "./processes.ts";
import { HANG_MS, waitFor } from "./wait.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

export interface TestGateway {
  url: string;
  /** the gateway's process id */
  pid: number;
  /** everything the gateway logged so far */
  logs: string[];
  /** waits until a log line matches */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL after `HANG_MS`; resolves with the exit code */
  stop(): Promise<number>;
  /** resolves with the exit status when the process ends by itself */
  status: Promise<Deno.CommandStatus>;
}

export interface StartOptions {
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** print the gateway's log as it comes (for debugging a test) */
  echo?: boolean;
}

/**
 * The V8 flags `deno task serve` runs the gateway with (see deno.json): tests and the bench run the
 * gateway as users do.
 */
export const GATEWAY_V8_FLAGS = "--v8-flags=--max-semi-space-size=4";

/** `main.ts` with these arguments, in its own Deno process, its output piped. */
function mainCommand(args: string[], env: Record<string, string> = {}, extra: Deno.CommandOptions = {}) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", GATEWAY_V8_FLAGS, MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...extra,
  });
}

/** Runs `main.ts` to completion (`HANG_MS` at most) and returns its exit code and its whole output. */
export async function runMain(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string }> {
  const out = await mainCommand(args, env, { signal: AbortSignal.timeout(HANG_MS) }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, out: text };
}

export async function startGateway(opts: StartOptions): Promise<TestGateway> {
  const args = opts.args.includes("--port") ? opts.args : [...opts.args, "--port", "0"];
  const child = mainCommand(args, opts.env, { cwd: opts.cwd }).spawn();
  const logs: string[] = [];
  const watchers = new Set<(line: string) => void>();
  const onLine = (line: string) => {
    logs.push(line);
    if (opts.echo || Deno.env.get("SWITCHYARD_TEST_ECHO")) console.error(`  gw| ${line}`);
    for (const w of watchers) w(line);
  };
  const drained = Promise.all([forEachLine(child.stdout, onLine), forEachLine(child.stderr, onLine)]);
  const status = child.status.then(async (s) => {
    await drained.catch(() => {});
    return s;
  });

  const waitForLog = (pattern: RegExp, timeoutMs = HANG_MS): Promise<string> => {
    const seen = logs.find((l) => pattern.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        watchers.delete(watch);
        reject(
          new Error(`no log line matched ${pattern} in ${timeoutMs} ms; log:\n${logs.slice(-30).join("\n")}`),
        );
      }, timeoutMs);
      const watch = (line: string) => {
        if (!pattern.test(line)) return;
        clearTimeout(timer);
        watchers.delete(watch);
        resolve(line);
      };
      watchers.add(watch);
      status.then((s) => {
        if (!watchers.has(watch)) return;
        clearTimeout(timer);
        watchers.delete(watch);
        reject(
          new Error(`gateway exited (code ${s.code}) before ${pattern}; log:\n${logs.slice(-30).join("\n")}`),
        );
      });
    });
  };

  let listening: string;
  try {
    listening = await waitForLog(/listening on http:\/\/\S+/, 120_000);
  } catch (err) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await status;
    throw err;
  }
  const url = listening.match(/listening on (http:\/\/\S+)/)![1];
  let stopping: Promise<number> | undefined;
  return {
    url,
    pid: child.pid,
    logs,
    waitForLog,
    status,
    stop: () =>
      stopping ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        // a graceful stop waits for the engines' own stop-timeout (10 s by default) and more on a slow
        // machine; a SIGKILL before that would fail a test that expects exit code 0
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* already gone */ }
        }, HANG_MS);
        const s = await status;
        clearTimeout(timer);
        return s.code;
      })(),
  };
}

/**
 * Stops the gateway (exit 0 expected) and checks that it left no engine behind, nor any process whose
 * command line contains `marker`, if given.
 */
export async function stopAndCheck(gw: TestGateway, marker?: string): Promise<void> {
  const code = await gw.stop();
  assertEquals(code, 0, `gateway exit code; log tail:\n${gw.logs.slice(-20).join("\n")}`);
  // an engine that outlived its gateway stays: a bound that is generous for a slow machine still catches it
  await waitFor(() => enginesOf(gw.pid).length === 0, HANG_MS, "no engine left");
  if (marker) await waitFor(() => processesWith(marker).length === 0, HANG_MS, `no process with ${marker}`);
}

/** How `withGateway` starts a gateway on its models dir. */
export interface GatewaySetup {
  /** the arguments after `--models-dir <dir>` */
  args?: string[];
  /** on top of `isolatedEnv()` */
  env?: Record<string, string>;
  /** passed to `stopAndCheck`: no process with this in its command line may be left */
  marker?: string;
}

/**
 * Runs `fn` against a gateway started on a fresh `--models-dir` of tiny models named `models`, in an
 * isolated environment; then stops it with `stopAndCheck` and removes the dir and the cache. `setup`
 * may be a function of the dir (to write a preset or a key file into it first).
 */
export async function withGateway(
  models: string[],
  setup: GatewaySetup | ((dir: string) => GatewaySetup | Promise<GatewaySetup>),
  fn: (gw: TestGateway, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await makeModelsDir(models);
  const env = await isolatedEnv();
  try {
    const { args = [], env: extra, marker } = typeof setup === "function" ? await setup(dir) : setup;
    const gw = await startGateway({ args: ["--models-dir", dir, ...args], env: { ...env, ...extra } });
    try {
      await fn(gw, dir);
    } finally {
      await stopAndCheck(gw, marker);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(env.LLAMA_CACHE, { recursive: true });
  }
}

/**
 * The environment of a test's gateway: a fresh empty HF cache, no hub but a closed local port, and
 * `extra`.
 */
export async function isolatedEnv(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  return {
    LLAMA_CACHE: await Deno.makeTempDir({ prefix: "switchyard-e2e-cache-" }),
    HF_ENDPOINT: "http://127.0.0.1:9",
    ...extra,
  };
}

/**
 * A fake `--server-bin` named `llama-server` in `dir` (a new temp dir when not given): it answers
 * `--version` and `--list-devices` (the gateway asks both at start-up) as a CPU-only llama-server
 * does, and runs the shell `body` otherwise.
 */
export async function fakeServerBin(body: string, dir?: string): Promise<{ dir: string; bin: string }> {
  dir ??= await Deno.makeTempDir({ prefix: "switchyard-fake-bin-" });
  const bin = join(dir, "llama-server");
  // The gateway parses "(build N, commit H)"; "version: 1 (abc1234)" is refused.
  await Deno.writeTextFile(
    bin,
    `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "version: 0.0.1 (build 1, commit abc1234)"; exit 0; fi\n` +
      `if [ "$1" = "--list-devices" ]; then printf 'Available devices:\\n  (none)\\n'; exit 0; fi\n${body}\n`,
  );
  await Deno.chmod(bin, 0o755);
  return { dir, bin };
}
