/**
 * Shared pieces of the runner tests: a launch of the stub engine, a runner driven over its raw
 * protocol, and checks that processes are really gone.
 */
import { isAlive } from "../../runners/lifeline.ts";
import { forEachLine } from "../../runners/lines.ts";
import type { EngineLaunch, RunnerCommand, RunnerMessage } from "../../runners/protocol.ts";
import { runnerCommand } from "../../runners/supervisor.ts";
import { processesWith, statusKiB } from "../helpers/processes.ts";
import { HANG_MS, waitFor } from "../helpers/wait.ts";

export { delay, HANG_MS, waitFor } from "../helpers/wait.ts";

export const STUB_ENGINE: string = new URL("../fixtures/stub_engine.ts", import.meta.url).pathname;

/** Marks this test run's stub engines so that a leak check can find exactly them. */
export const TAG: string = `switchyard-test-${crypto.randomUUID()}`;

/** Stub engine options that keep it loading for the whole test, however slow or fast the machine is. */
export const LOADS_FOREVER: string[] = ["--load-ms", String(3_600_000)];

/** Launches the stub engine (see its header for `options`). */
export function stubLaunch(options: string[] = []): EngineLaunch {
  return {
    bin: Deno.execPath(),
    args: ["run", "--allow-all", "--no-config", STUB_ENGINE, ...options, "--tag", TAG],
    env: {},
  };
}

/** Waits until none of `pids` runs; returns how long that took. `timeoutMs` only bounds a hang by default. */
export function waitGone(pids: number[], timeoutMs = HANG_MS): Promise<number> {
  return waitFor(() => pids.every((pid) => !isAlive(pid)), timeoutMs, `processes ${pids} still alive`);
}

/** Pids of this run's stub engines still running (zombies excluded). */
export function liveStubEngines(): number[] {
  return processesWith(TAG);
}

/** Resident memory of `pid` in KiB, from /proc/<pid>/status. */
export function rssKiB(pid: number): number {
  return statusKiB(pid, "VmRSS");
}

/** A runner process driven over its raw stdin/stdout protocol, recording every message with its time. */
export class RawRunner {
  readonly pid: number;
  readonly messages: { at: number; message: RunnerMessage }[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  readonly drained: Promise<void>;
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;

  constructor() {
    const { cmd, args } = runnerCommand();
    this.#child = new Deno.Command(cmd, { args, stdin: "piped", stdout: "piped", stderr: "inherit" }).spawn();
    this.pid = this.#child.pid;
    this.#stdin = this.#child.stdin.getWriter();
    this.#stdin.closed.catch(() => {});
    this.drained = forEachLine(this.#child.stdout, (line) => {
      const message: RunnerMessage = JSON.parse(line);
      const at = performance.now();
      // a batch of log lines is recorded line by line, so tests can look for one line
      if (message.type === "logs") {
        for (const l of message.lines) this.messages.push({ at, message: { type: "log", line: l } });
      } else this.messages.push({ at, message });
    });
    this.status = this.#child.status;
  }

  async send(command: RunnerCommand): Promise<number> {
    const at = performance.now();
    await this.#stdin.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));
    return at;
  }

  async closeStdin(): Promise<void> {
    await this.#stdin.close();
  }

  /** The first message of `type` (waiting up to `timeoutMs` for it). */
  async next<T extends RunnerMessage["type"]>(
    type: T,
    timeoutMs = HANG_MS,
  ): Promise<{ at: number; message: Extract<RunnerMessage, { type: T }> }> {
    await waitFor(
      () => this.messages.some((m) => m.message.type === type),
      timeoutMs,
      `runner message ${type}`,
    );
    return this.messages.find((m) => m.message.type === type) as {
      at: number;
      message: Extract<RunnerMessage, { type: T }>;
    };
  }

  /** Waits for an engine log line that contains `text`. */
  async log(text: string): Promise<void> {
    await waitFor(
      () => this.messages.some((m) => m.message.type === "log" && m.message.line.includes(text)),
      HANG_MS,
      `engine log line with ${JSON.stringify(text)}`,
    );
  }

  types(): string[] {
    return this.messages.map((m) => m.message.type);
  }

  /** Waits for the runner to exit and its output to end. */
  async done(): Promise<Deno.CommandStatus> {
    const status = await this.status;
    await this.drained;
    return status;
  }

  kill(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // already gone
    }
  }
}
