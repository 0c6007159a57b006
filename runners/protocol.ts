/**
 * The line protocol between the gateway and a runner (one Deno subprocess per model). Each message is
 * one JSON object on one line: gateway → runner on the runner's stdin, runner → gateway on its stdout.
 * The runner's stderr is free text (its own diagnostics). When the runner's stdin closes, the runner
 * takes its engine down and exits: a dead gateway leaves nothing behind.
 */

/** How to start one llama-server. */
export interface EngineLaunch {
  /** absolute path of llama-server */
  bin: string;
  /** argv after the binary, without --host/--port (the runner adds them) */
  args: string[];
  /** extra environment on top of the runner's own */
  env: Record<string, string>;
  /**
   * the gateway raised the engine's verbosity for its own reading of the load (`-lv 4`): once the
   * engine is ready, its per-request trace lines are dropped (serving_trace.ts)
   */
  dropServingTrace?: boolean;
}

/** gateway → runner */
export type RunnerCommand =
  /** start the engine (a runner may be spawned ahead of need and wait for this) */
  | { type: "start"; launch: EngineLaunch }
  /** graceful stop; the runner kills the engine if it is still alive after `timeoutMs` */
  | { type: "stop"; timeoutMs: number }
  /** immediate SIGKILL of the engine */
  | { type: "kill" };

/** runner → gateway */
export type RunnerMessage =
  /** the runner is up and waiting for `start` */
  | { type: "hello"; pid: number }
  /** the engine process exists and will listen on `port` */
  | { type: "spawned"; enginePid: number; port: number }
  /** loading progress as llama-server reports it: `{stages, current, value}` or `{stage}` */
  | { type: "progress"; progress: Record<string, unknown> }
  /** the engine answers requests; `info` is its /v1/models entry on first load, `{}` after a wake-up */
  | { type: "ready"; info: Record<string, unknown> }
  | { type: "sleeping" }
  /** one line of engine output (stdout or stderr) */
  | { type: "log"; line: string }
  /** several lines of engine output at once: a busy engine logs per request, and one message per line costs */
  | { type: "logs"; lines: string[] }
  /** the engine is gone; the runner exits right after sending this */
  | { type: "exit"; code: number; signal: string | null };
