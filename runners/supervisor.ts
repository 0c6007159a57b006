/**
 * The gateway's side of the runners: spawns them (a few spares ahead of need), sends them commands,
 * turns their stdout back into messages, and makes sure nothing outlives a stop, a crash or the
 * gateway itself.
 */
import { type CommandLine, isAlive, tiedToParent } from "./lifeline.ts";
import { forEachLine } from "./lines.ts";
import type { EngineLaunch, RunnerCommand, RunnerMessage } from "./protocol.ts";
import { RUNNER_FLAG } from "./runner.ts";

export type { CommandLine } from "./lifeline.ts";

/** How a runner's engine ended (or the runner itself, when it died without saying). */
export interface RunnerExit {
  code: number;
  signal: string | null;
}

/** One model's runner, as the gateway holds it. */
export interface RunnerHandle {
  /** the runner process */
  readonly pid: number;
  /** the current engine process, once `spawned` was received; null before and after */
  readonly enginePid: number | null;
  /**
   * The engine's port, once the engine has bound it (its first state line: llama-server binds before
   * it loads). Rejects if the engine exits first. A port lost to a race is retried by the runner, so
   * `spawned` may come more than once; this resolves to the port that held.
   */
  readonly port: Promise<number>;
  /** Graceful stop; the engine is SIGKILLed after `timeoutMs`. Resolves when everything has exited. */
  stop(timeoutMs: number): Promise<void>;
  /** SIGKILL the engine now. */
  kill(): void;
  /** Resolves when the runner and its engine are gone; `onMessage` has had `exit` by then. Never rejects. */
  readonly exited: Promise<RunnerExit>;
}

export interface RunnerPoolOptions {
  /** runners kept started and waiting for `start` (default 1) */
  spares?: number;
  /** how to start a runner (default `runnerCommand()`) */
  command?: CommandLine;
  /**
   * The whole environment of runners (and so of engines); default: the gateway's own. The gateway
   * passes its environment without its secrets (API keys), which engines must never see.
   */
  env?: Record<string, string>;
  /**
   * Where runners' own diagnostics (their stderr, not engine output) and the pool's warnings go, one
   * line at a time. Default: runners write straight to the gateway's stderr.
   */
  log?: (line: string) => void;
}

/** Pids of everything the pool has started that is still running. */
export interface LiveProcesses {
  runners: number[];
  engines: number[];
}

/** After a stop's own timeout, or after `kill`, how long a runner gets before it is SIGKILLed itself. */
const RUNNER_GRACE_MS = 3_000;
/** A runner's last lines may trail its exit; a grandchild holding the pipe must not stall `exited`. */
// Normally the pipes end with the process; on a starved machine (a browser test beside engines on 2 cores)
// reading the last lines can take longer than a moment, and they are the ones that say why it failed.
const DRAIN_AFTER_EXIT_MS = 3_000;

/** A spare used for a load is replaced when that engine is ready, or after this long at the latest. */
const REFILL_FALLBACK_MS = 5_000;

/**
 * A runner only relays lines: its live heap is a few MiB, but V8 grows its generations lazily (measured:
 * 158 MiB RSS after 3,000 streamed requests with V8's defaults, 69 MiB with these and the reused read buffer of
 * runners/lines.ts). 32 MiB of old space still holds an engine's largest message (a ready payload) many times.
 */
const RUNNER_V8_FLAGS = "--v8-flags=--max-semi-space-size=1,--max-old-space-size=32";

/**
 * How to start a runner: this Deno running `runner.ts`, or, inside a `deno compile` binary (which
 * cannot run another script), the binary itself with `--switchyard-runner` (see `runRunner`).
 */
export function runnerCommand(): CommandLine {
  if (Deno.build.standalone) return { cmd: Deno.execPath(), args: [RUNNER_FLAG] };
  const script = new URL("./runner.ts", import.meta.url);
  const target = script.protocol === "file:" ? decodeURIComponent(script.pathname) : script.href;
  // --no-config: runner.ts needs no import map, and skipping the config and node_modules lookup
  // saves a few ms of every cold start.
  return { cmd: Deno.execPath(), args: ["run", "--allow-all", "--no-config", RUNNER_V8_FLAGS, target] };
}

const encoder = new TextEncoder();

/** The gateway's side of one runner subprocess (runners/runner.ts is the other side). */
class SupervisedRunner implements RunnerHandle {
  readonly pid: number;
  readonly port: Promise<number>;
  readonly exited: Promise<RunnerExit>;
  greeted = false;
  #enginePid: number | null = null;
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #onMessage: ((m: RunnerMessage) => void) | null = null;
  #unboundPort: number | null = null;
  #portSettled = false;
  #resolvePort!: (port: number) => void;
  #rejectPort!: (error: Error) => void;
  #exit: RunnerExit | null = null;
  #gone = false;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #watchdogAt = Infinity;

  #log: (line: string) => void;

  constructor(
    command: CommandLine,
    log: ((line: string) => void) | undefined,
    env: Record<string, string> | undefined,
  ) {
    const { cmd, args } = tiedToParent(command.cmd, command.args);
    const stderr = log ? "piped" : "inherit";
    this.#child = new Deno.Command(cmd, {
      args,
      env,
      clearEnv: env !== undefined,
      stdin: "piped",
      stdout: "piped",
      stderr,
    })
      .spawn();
    this.pid = this.#child.pid;
    this.#log = log ?? ((line) => console.error(line));
    if (log) forEachLine(this.#child.stderr, (line) => log(`runner ${this.pid}: ${line}`));
    this.#stdin = this.#child.stdin.getWriter();
    this.#stdin.closed.catch(() => {});
    this.port = new Promise((resolve, reject) => {
      this.#resolvePort = resolve;
      this.#rejectPort = reject;
    });
    // Nobody may be waiting on the port of a model that failed; that is not an unhandled error.
    this.port.catch(() => {});
    const drained = forEachLine(this.#child.stdout, (line) => this.#receive(line));
    this.exited = this.#child.status.then(async (status) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([drained, new Promise((r) => timer = setTimeout(r, DRAIN_AFTER_EXIT_MS))]);
      clearTimeout(timer);
      return this.#ended(status);
    });
  }

  get enginePid(): number | null {
    return this.#enginePid;
  }

  get gone(): boolean {
    return this.#gone;
  }

  assign(launch: EngineLaunch, onMessage: (m: RunnerMessage) => void): void {
    this.#onMessage = onMessage;
    this.#send({ type: "start", launch });
  }

  stop(timeoutMs: number): Promise<void> {
    this.#send({ type: "stop", timeoutMs });
    this.#armWatchdog(Math.max(0, timeoutMs) + RUNNER_GRACE_MS);
    return this.exited.then(() => {});
  }

  kill(): void {
    this.#send({ type: "kill" });
    this.#armWatchdog(RUNNER_GRACE_MS);
  }

  /** Closes the runner's stdin: an idle runner exits, a busy one SIGKILLs its engine and exits. */
  release(): Promise<void> {
    this.#stdin.close().catch(() => {});
    this.#armWatchdog(RUNNER_GRACE_MS);
    return this.exited.then(() => {});
  }

  #send(command: RunnerCommand): void {
    if (this.#gone) return;
    this.#stdin.write(encoder.encode(JSON.stringify(command) + "\n")).catch(() => {});
  }

  #armWatchdog(ms: number): void {
    if (this.#gone || performance.now() + ms >= this.#watchdogAt) return;
    clearTimeout(this.#watchdog);
    this.#watchdogAt = performance.now() + ms;
    this.#watchdog = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
    }, ms);
  }

  #receive(line: string): void {
    if (line === "") return;
    let message: RunnerMessage;
    try {
      message = JSON.parse(line);
    } catch {
      this.#log(`runner ${this.pid} wrote a line that is not JSON: ${line.slice(0, 200)}`);
      return;
    }
    switch (message.type) {
      case "hello":
        this.greeted = true;
        return;
      case "spawned":
        this.#enginePid = message.enginePid;
        this.#unboundPort = message.port;
        break;
      case "progress":
      case "ready":
      case "sleeping":
        // A download child (`{url, ...}` / `{result}` progress) never opens its port.
        if (message.type === "progress" && ("url" in message.progress || "result" in message.progress)) break;
        if (!this.#portSettled && this.#unboundPort !== null) {
          this.#portSettled = true;
          this.#resolvePort(this.#unboundPort);
        }
        break;
      case "exit":
        this.#exit = { code: message.code, signal: message.signal };
        this.#enginePid = null;
        break;
    }
    this.#deliver(message);
  }

  #deliver(message: RunnerMessage): void {
    if (!this.#onMessage) return;
    try {
      this.#onMessage(message);
    } catch (error) {
      this.#log(`runner ${this.pid}: message handler threw: ${error instanceof Error ? error.stack : error}`);
    }
  }

  #ended(status: Deno.CommandStatus): RunnerExit {
    this.#gone = true;
    clearTimeout(this.#watchdog);
    const enginePid = this.#enginePid;
    // The runner died without reporting: its engine should have died with it (pdeathsig), but make sure.
    if (enginePid !== null && isAlive(enginePid)) {
      try {
        Deno.kill(enginePid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    this.#enginePid = null;
    let exit = this.#exit;
    if (!exit) {
      exit = { code: status.code, signal: status.signal };
      this.#deliver({ type: "exit", code: exit.code, signal: exit.signal });
    }
    if (!this.#portSettled) {
      this.#portSettled = true;
      this.#rejectPort(new Error(`engine exited before binding its port (code ${exit.code})`));
    }
    return exit;
  }
}

/**
 * Starts and tracks runners. Keeps `spares` runners waiting so that a model's cold start does not
 * pay for Deno's start-up.
 *
 * @example
 * ```ts
 * const pool = new RunnerPool();
 * const runner = pool.start({ bin, args: ["-m", "model.gguf"], env: {} }, (m) => console.log(m));
 * const port = await runner.port;
 * await runner.stop(10_000);
 * await pool.shutdown();
 * ```
 */
export class RunnerPool {
  #spares: SupervisedRunner[] = [];
  #active = new Set<SupervisedRunner>();
  #wanted: number;
  #command: CommandLine;
  #log: ((line: string) => void) | undefined;
  #env: Record<string, string> | undefined;
  #refill: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(options: RunnerPoolOptions = {}) {
    this.#wanted = Math.max(0, options.spares ?? 1);
    this.#command = options.command ?? runnerCommand();
    this.#log = options.log;
    this.#env = options.env;
    this.#topUp();
  }

  /** Hands `launch` to a spare runner (or a new one) and returns at once; progress comes to `onMessage`. */
  start(launch: EngineLaunch, onMessage: (m: RunnerMessage) => void): RunnerHandle {
    if (this.#closed) throw new Error("runner pool is shut down");
    const runner = this.#takeSpare() ?? this.#spawn();
    // Starting a runner costs 20-40 ms of CPU: on a small machine that would slow the very load it is
    // replacing a spare for. The spare is replaced once the engine is ready (or gone), or after a while.
    let refilled = false;
    const refill = () => {
      if (refilled) return;
      refilled = true;
      clearTimeout(fallback);
      this.#scheduleRefill();
    };
    const fallback = setTimeout(refill, REFILL_FALLBACK_MS);
    runner.assign(launch, (message) => {
      if (message.type === "ready" || message.type === "exit") refill();
      onMessage(message);
    });
    this.#active.add(runner);
    runner.exited.then(() => {
      this.#active.delete(runner);
      refill();
    });
    return runner;
  }

  /** Pids of the runners (spares included) and engines still running. */
  live(): LiveProcesses {
    const runners: number[] = [];
    const engines: number[] = [];
    for (const runner of [...this.#spares, ...this.#active]) {
      if (runner.gone) continue;
      runners.push(runner.pid);
      if (runner.enginePid !== null) engines.push(runner.enginePid);
    }
    return { runners, engines };
  }

  /** Stops every engine gracefully (SIGKILL after `timeoutMs`), lets spares go, and waits for all. */
  async shutdown(timeoutMs = 10_000): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#refill);
    const spares = this.#spares.splice(0);
    await Promise.all([
      ...spares.map((runner) => runner.release()),
      ...[...this.#active].map((runner) => runner.stop(timeoutMs)),
    ]);
  }

  #scheduleRefill(): void {
    if (this.#refill !== undefined || this.#closed) return;
    // after the caller's turn: a spawn costs the event loop a few ms
    this.#refill = setTimeout(() => {
      this.#refill = undefined;
      this.#topUp();
    }, 0);
  }

  #takeSpare(): SupervisedRunner | undefined {
    this.#spares = this.#spares.filter((runner) => !runner.gone);
    const index = this.#spares.findIndex((runner) => runner.greeted);
    return this.#spares.splice(index >= 0 ? index : 0, 1)[0];
  }

  #spawn(): SupervisedRunner {
    return new SupervisedRunner(this.#command, this.#log, this.#env);
  }

  #topUp(): void {
    if (this.#closed) return;
    this.#spares = this.#spares.filter((runner) => !runner.gone);
    while (this.#spares.length < this.#wanted) {
      const runner = this.#spawn();
      this.#spares.push(runner);
      // A spare that dies idle is dropped, not replaced: a runner that cannot start must not respawn in a loop.
      runner.exited.then(() => {
        const index = this.#spares.indexOf(runner);
        if (index >= 0) this.#spares.splice(index, 1);
      });
    }
  }
}
