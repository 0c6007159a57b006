/**
 * The runner: one Deno process per model, between the gateway and one llama-server. It speaks
 * `protocol.ts` on its stdin/stdout, and never outlives the gateway nor lets its engine outlive it.
 *
 * Started ahead of need, it says `hello` and waits for `start`, so a cold start pays for llama-server
 * only, not for Deno's start-up too.
 */
import { type EngineExit, EngineProcess } from "./engine_process.ts";
import { tiedToParent } from "./lifeline.ts";
import { forEachLine, writeJsonLine } from "./lines.ts";
import type { EngineLaunch, RunnerCommand, RunnerMessage } from "./protocol.ts";

/** The argument that makes a compiled gateway binary act as a runner (see `runnerCommand`). */
export const RUNNER_FLAG = "--switchyard-runner";

/** llama.cpp picks ports the same racy way (bind 0, close, let the child bind); retry when it loses. */
const PORT_RETRIES = 3;
/** After the gateway is gone, how long to wait for the SIGKILLed engine to be reaped. */
const REAP_WAIT_MS = 2_000;
/** A SIGTERM to the runner itself gets the engine this long to stop gracefully. */
const SIGTERM_STOP_MS = 5_000;
/** Engine log lines are sent in batches at most this often; any other message flushes them first. */
const LOG_BATCH_MS = 25;

/** Binds port 0 on loopback, reads the port the kernel chose, and lets it go for the engine to take. */
export function pickLoopbackPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

class Runner {
  #engine: EngineProcess | null = null;
  #started = false;
  #stopping = false;
  #killTimer: ReturnType<typeof setTimeout> | undefined;
  #killAt = Infinity;
  #gatewayGone = false;

  #pendingLogs: string[] = [];
  #logTimer: ReturnType<typeof setTimeout> | undefined;

  send(message: RunnerMessage): void {
    if (this.#gatewayGone) return;
    if (message.type === "log") {
      this.#pendingLogs.push(message.line);
      this.#logTimer ??= setTimeout(() => this.#flushLogs(), LOG_BATCH_MS);
      return;
    }
    this.#flushLogs();
    this.#write(message);
  }

  #flushLogs(): void {
    clearTimeout(this.#logTimer);
    this.#logTimer = undefined;
    if (this.#pendingLogs.length === 0) return;
    const lines = this.#pendingLogs;
    this.#pendingLogs = [];
    this.#write(lines.length === 1 ? { type: "log", line: lines[0] } : { type: "logs", lines });
  }

  #write(message: RunnerMessage): void {
    if (this.#gatewayGone) return;
    try {
      writeJsonLine(Deno.stdout, message);
    } catch {
      // Broken pipe: nobody reads us any more, which is the same news as stdin EOF.
      this.#gatewayGone = true;
      queueMicrotask(() => this.onGatewayGone());
    }
  }

  handle(line: string): void {
    if (line.trim() === "") return;
    let command: RunnerCommand;
    try {
      command = JSON.parse(line);
    } catch {
      console.error(`runner: ignoring a line that is not JSON: ${line.slice(0, 200)}`);
      return;
    }
    switch (command.type) {
      case "start":
        if (this.#started) {
          console.error("runner: ignoring a second start");
          return;
        }
        this.#started = true;
        this.#run(command.launch);
        return;
      case "stop":
        this.stop(command.timeoutMs);
        return;
      case "kill":
        this.stop(0);
        return;
      default:
        console.error(`runner: ignoring unknown command ${JSON.stringify(command)}`);
    }
  }

  /** Graceful stop, SIGKILL after `timeoutMs` (0: at once). A later, shorter deadline wins. */
  stop(timeoutMs: number): void {
    if (!this.#started) return this.#finish({ code: 0, signal: null });
    const killAt = performance.now() + Math.max(0, timeoutMs);
    if (killAt >= this.#killAt) return;
    this.#killAt = killAt;
    clearTimeout(this.#killTimer);
    const asked = this.#stopping;
    this.#stopping = true;
    if (timeoutMs <= 0) return this.#engine?.kill();
    if (!asked) this.#engine?.requestStop();
    this.#killTimer = setTimeout(() => this.#engine?.kill(), timeoutMs);
  }

  async onGatewayGone(): Promise<void> {
    this.#gatewayGone = true;
    const engine = this.#engine;
    if (!engine) Deno.exit(0);
    this.#stopping = true;
    engine.kill();
    await Promise.race([engine.exited, new Promise((r) => setTimeout(r, REAP_WAIT_MS))]);
    Deno.exit(0);
  }

  async #run(launch: EngineLaunch): Promise<void> {
    for (let attempt = 0;; attempt++) {
      let engine: EngineProcess;
      try {
        engine = EngineProcess.spawn(launch, pickLoopbackPort(), (m) => this.send(m));
      } catch (error) {
        this.send({ type: "log", line: `switchyard: cannot start ${launch.bin}: ${String(error)}` });
        return this.#finish({ code: 127, signal: null });
      }
      this.#engine = engine;
      this.send({ type: "spawned", enginePid: engine.pid, port: engine.port });
      // A stop or kill that arrived between two attempts applies to the new engine at once.
      if (this.#killAt <= performance.now()) engine.kill();
      else if (this.#stopping) engine.requestStop();
      const exit = await engine.exited;
      if (engine.bindFailed && attempt < PORT_RETRIES && !this.#stopping) {
        this.send({ type: "log", line: `switchyard: port ${engine.port} was taken, retrying on another` });
        continue;
      }
      return this.#finish(exit);
    }
  }

  #finish(exit: EngineExit): never {
    clearTimeout(this.#killTimer);
    this.send({ type: "exit", code: exit.code, signal: exit.signal });
    Deno.exit(0);
  }
}

/**
 * Runs this process as a runner until its engine exits or the gateway goes away; never returns.
 * `main.ts` calls it when started with `RUNNER_FLAG` (a compiled gateway spawns itself as runner).
 */
export async function runRunner(): Promise<never> {
  const runner = new Runner();
  // Ctrl-C reaches the whole process group; the gateway, not the runner, decides how engines stop.
  Deno.addSignalListener("SIGINT", () => {});
  Deno.addSignalListener("SIGTERM", () => runner.stop(SIGTERM_STOP_MS));
  runner.send({ type: "hello", pid: Deno.pid });
  // Deno's first spawn in a process is slow (its subprocess code, the setpriv path, pipe readers): pay
  // that once while idle, with a spawn like the engine's, not on the cold start.
  setTimeout(() => warmUpSpawn(), 0);
  await forEachLine(Deno.stdin.readable, (line) => runner.handle(line));
  await runner.onGatewayGone();
  return Deno.exit(0);
}

async function warmUpSpawn(): Promise<void> {
  try {
    const { cmd, args } = tiedToParent("true", []);
    const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
    await Promise.all([
      forEachLine(child.stdout, () => {}),
      forEachLine(child.stderr, () => {}),
      child.status,
    ]);
  } catch {
    // only a warm-up: the real spawn reports its own errors
  }
}

if (import.meta.main) await runRunner();
