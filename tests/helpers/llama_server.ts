/** llama-server on its own (no gateway in front) for end-to-end tests: where it is, and a started one. */
import { join } from "node:path";
import { engineCacheDir } from "../../router/engine/binary.ts";
import { delay, HANG_MS } from "./wait.ts";
import { pickLoopbackPort } from "../../runners/runner.ts";

/** The llama-server the tests use: `LLAMA_SERVER_BIN` (as `deno task test` sets it), else the cached build. */
export function engineBinPath(): string {
  const env = Deno.env.toObject();
  return env.LLAMA_SERVER_BIN ?? join(engineCacheDir(env), "build", "bin", "llama-server");
}

/**
 * A generation that never ends by itself, for tests that act on one mid-stream (abort it, kill its engine):
 * however fast the machine, it is still running when the test acts. It has no token limit, never samples
 * end-of-generation, and on an engine started with `ENDLESS_ENGINE_ARGS` a full context is shifted instead
 * of ending it. Spread it into a chat request's body.
 */
export const ENDLESS_GENERATION = { max_tokens: -1, ignore_eos: true } as const;

/** llama-server arguments under which `ENDLESS_GENERATION` never ends (context shift is off by default). */
export const ENDLESS_ENGINE_ARGS: readonly string[] = ["--context-shift"];

/** A port on 127.0.0.1 that was free a moment ago (the runners' own way of picking one). */
export const freePort: () => number = pickLoopbackPort;

export interface RunningEngine {
  url: string;
  /** from the spawn to the first healthy answer */
  healthyMs: number;
  /** the last lines of its output */
  log(): string;
  /** SIGTERM, then SIGKILL after 5 s */
  stop(): Promise<void>;
}

/** Drains a child pipe into a bounded tail, so the server never blocks on a full pipe and failures show its log. */
async function drain(stream: ReadableStream<Uint8Array>, sink: string[]): Promise<void> {
  const dec = new TextDecoder();
  for await (const chunk of stream) {
    sink.push(dec.decode(chunk, { stream: true }));
    if (sink.length > 400) sink.splice(0, sink.length - 400);
  }
}

/**
 * Starts llama-server (`bin`) with `args` on 127.0.0.1 and a free port, and waits until its `/health`
 * answers 200. If it exits first, or is not healthy within `timeoutMs`, it is stopped and the error
 * shows its log.
 */
export async function startEngine(
  bin: string,
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunningEngine> {
  const timeoutMs = opts.timeoutMs ?? HANG_MS;
  const port = freePort();
  const t0 = performance.now();
  const child = new Deno.Command(bin, {
    args: [...args, "--host", "127.0.0.1", "--port", String(port)],
    env: opts.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out: string[] = [];
  const drained = Promise.all([drain(child.stdout, out), drain(child.stderr, out)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const log = (): string => out.join("").split("\n").slice(-60).join("\n");
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => {
        if (!exited) child.kill("SIGKILL");
      }, 5000);
      await status;
      clearTimeout(timer);
    }
    await drained;
  };
  const url = `http://127.0.0.1:${port}`;
  try {
    const deadline = t0 + timeoutMs;
    while (true) {
      if (exited) throw new Error(`llama-server exited early (${(await status).code}):\n${log()}`);
      if (performance.now() > deadline) {
        throw new Error(`llama-server not healthy after ${timeoutMs / 1000} s:\n${log()}`);
      }
      try {
        const res = await fetch(`${url}/health`);
        await res.body?.cancel();
        if (res.status === 200) break;
      } catch {
        // Not listening yet.
      }
      await delay(50);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, healthyMs: performance.now() - t0, log, stop };
}
