/**
 * One llama-server process as the runner drives it: spawned as a router child on a given port, its
 * output turned into protocol messages, stopped the way llama-server can hear it.
 */
import {
  BIND_FAILURE_TEXT,
  type EngineLineMessage,
  parseEngineLine,
  ROUTER_EXIT_LINE,
  ROUTER_PORT_ENV,
} from "./child_protocol.ts";
import { forEachLine } from "./lines.ts";
import { ServingTraceFilter } from "./serving_trace.ts";
import { tiedToParent } from "./lifeline.ts";
import type { EngineLaunch } from "./protocol.ts";

/** How an engine ended. */
export interface EngineExit {
  code: number;
  signal: string | null;
}

/**
 * llama-server can lose an exit line that arrives just after `ready`: its stdin monitor starts before
 * its task loop, and the loop's start re-sets the `running` flag the exit line cleared. A SIGTERM some
 * time later takes the same graceful path once the loop runs, and is harmless if the exit is under way.
 */
const EXIT_LINE_NUDGE_MS = 1_000;

/** Output still in the pipes after the engine exits is forwarded, but a grandchild holding them open must not stall the exit report. */
// Normally the pipes end with the process; on a starved machine (a browser test beside engines on 2 cores)
// reading the last lines can take longer than a moment, and they are the ones that say why it failed.
const DRAIN_AFTER_EXIT_MS = 3_000;

export class EngineProcess {
  readonly pid: number;
  readonly port: number;
  /** Resolves once the process has exited and its output has been forwarded. Never rejects. */
  readonly exited: Promise<EngineExit>;
  #child: Deno.ChildProcess;
  #readsStdin = false;
  #bound = false;
  #bindFailed = false;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #exited = false;
  #nudge: ReturnType<typeof setTimeout> | undefined;

  private constructor(launch: EngineLaunch, port: number, onMessage: (m: EngineLineMessage) => void) {
    this.port = port;
    const args = [...launch.args, "--host", "127.0.0.1", "--port", String(port)];
    const { cmd, args: argv } = tiedToParent(launch.bin, args);
    this.#child = new Deno.Command(cmd, {
      args: argv,
      env: { ...launch.env, [ROUTER_PORT_ENV]: "switchyard" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#child.pid;
    this.#stdin = this.#child.stdin.getWriter();
    // Writes after the engine exited fail; that failure carries no news.
    this.#stdin.closed.catch(() => {});

    let ready = false;
    const onLineOf = (trace: ServingTraceFilter | undefined) => (line: string) => {
      const message = parseEngineLine(line);
      if (message.type === "log") {
        if (!this.#bound && line.includes(BIND_FAILURE_TEXT)) this.#bindFailed = true;
        if (ready && trace && !trace.keep(line)) return;
      } else {
        // llama-server binds its port before it loads, so any state line proves the port is ours.
        this.#bound = true;
        if (message.type === "ready") ready = true;
        // Its stdin monitor starts with the first `ready` (or at once in download mode) and then stays.
        if (message.type === "ready" || (message.type === "progress" && "url" in message.progress)) {
          this.#readsStdin = true;
        }
      }
      onMessage(message);
    };
    const traceFilter = () => launch.dropServingTrace ? new ServingTraceFilter() : undefined;
    const drained = Promise.all([
      forEachLine(this.#child.stdout, onLineOf(traceFilter())),
      forEachLine(this.#child.stderr, onLineOf(traceFilter())),
    ]);
    this.exited = this.#child.status.then(async (status) => {
      this.#exited = true;
      clearTimeout(this.#nudge);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([drained, new Promise((r) => timer = setTimeout(r, DRAIN_AFTER_EXIT_MS))]);
      clearTimeout(timer);
      return { code: status.code, signal: status.signal };
    });
  }

  /**
   * Starts `launch.bin` with `--host 127.0.0.1 --port <port>` appended. Throws `Deno.errors.NotFound`
   * (or `PermissionDenied`) when the binary cannot be executed, before anything is spawned: behind
   * setpriv that failure would otherwise only show as an exit code.
   */
  static spawn(
    launch: EngineLaunch,
    port: number,
    onMessage: (m: EngineLineMessage) => void,
  ): EngineProcess {
    const info = Deno.statSync(launch.bin);
    if (!info.isFile || (info.mode !== null && (info.mode & 0o111) === 0)) {
      throw new Deno.errors.PermissionDenied(`not an executable file: ${launch.bin}`);
    }
    return new EngineProcess(launch, port, onMessage);
  }

  /** The engine failed to bind its port before reporting any state: another process took it. */
  get bindFailed(): boolean {
    return this.#bindFailed && !this.#bound;
  }

  /**
   * Asks for a graceful exit: the exit line once llama-server reads stdin (after its first `ready`),
   * SIGTERM before that, which during a load ends it at once (its signal handlers come after the load).
   */
  requestStop(): void {
    if (this.#exited) return;
    if (this.#readsStdin) {
      this.#stdin.write(new TextEncoder().encode(ROUTER_EXIT_LINE)).catch(() => {});
      this.#nudge ??= setTimeout(() => this.signal("SIGTERM"), EXIT_LINE_NUDGE_MS);
    } else {
      this.signal("SIGTERM");
    }
  }

  kill(): void {
    this.signal("SIGKILL");
  }

  signal(signal: Deno.Signal): void {
    if (this.#exited) return;
    try {
      this.#child.kill(signal);
    } catch {
      // Already exited: the exit report is on its way.
    }
  }
}
