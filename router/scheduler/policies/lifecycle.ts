/**
 * A model's lifecycle as named transitions. The scheduler moves a record only through `transition`,
 * so a message that arrives out of turn (a `ready` after the exit, a second stop) is caught where it
 * happens instead of leaving a row that is half one state and half another.
 */

/** The states `/models` shows (llama.cpp's, plus the gateway's `downloaded`). */
export type ModelState = "unloaded" | "loading" | "loaded" | "sleeping" | "downloading" | "downloaded";

/**
 * Where a record stands. `stopping` is orthogonal to `state`: a process being stopped keeps the
 * state it had (and its claim, and its place under `--models-max`) until its exit is observed.
 */
export interface Phase {
  readonly state: ModelState;
  readonly stopping: boolean;
}

export type Transition =
  /** the scheduler admitted the model and spawns (or, within a backoff, is about to spawn) it */
  | "startLoad"
  /** the engine reported ready */
  | "ready"
  /** the engine unloaded its weights after `--sleep-idle-seconds`; the process stays */
  | "sleep"
  /** a sleeping engine reloads its weights (its progress shows again) */
  | "wake"
  /** a stop was asked for (with an `UnloadReason`): no new requests; the process still lives */
  | "beginStop"
  /** the process's exit was observed, and it was asked for or clean */
  | "exited"
  /** the process's exit was observed, unasked and not clean */
  | "crashed"
  /** a download entry appears (`POST /models`, or a first request for an uncached repo) */
  | "downloadBegin"
  /** the download finished or failed; the entry stays until the next reload */
  | "downloadEnd"
  /** a reload found the downloaded model in the catalog: it becomes an ordinary model */
  | "adopt";

export class IllegalTransition extends Error {
  constructor(readonly from: Phase, readonly transition: Transition) {
    super(`illegal transition ${transition} from ${from.state}${from.stopping ? " (stopping)" : ""}`);
    this.name = "IllegalTransition";
  }
}

/** A process exists (or is about to): it holds a claim and a place under `--models-max`. */
export function isAlive(p: Phase): boolean {
  return p.state === "loading" || p.state === "loaded" || p.state === "sleeping" || p.stopping;
}

const RUNNING: readonly ModelState[] = ["loading", "loaded", "sleeping"];

/** The phase after `t`, or `IllegalTransition` when `t` cannot happen from `from`. */
export function transition(from: Phase, t: Transition): Phase {
  const to = next(from, t);
  if (!to) throw new IllegalTransition(from, t);
  return to;
}

function next(from: Phase, t: Transition): Phase | undefined {
  const { state, stopping } = from;
  switch (t) {
    case "startLoad":
      return state === "unloaded" && !stopping ? { state: "loading", stopping: false } : undefined;
    case "ready":
      // a loading engine killed by a stop may still report ready before its exit arrives
      return RUNNING.includes(state) ? { state: "loaded", stopping } : undefined;
    case "sleep":
      return state === "loaded" ? { state: "sleeping", stopping } : undefined;
    case "wake":
      return state === "sleeping" ? { state: "loading", stopping } : undefined;
    case "beginStop":
      return RUNNING.includes(state) && !stopping ? { state, stopping: true } : undefined;
    case "exited":
    case "crashed":
      return isAlive(from) ? { state: "unloaded", stopping: false } : undefined;
    case "downloadBegin":
      return (state === "unloaded" || state === "downloaded") && !stopping
        ? { state: "downloading", stopping: false }
        : undefined;
    case "downloadEnd":
      return state === "downloading" ? { state: "downloaded", stopping: false } : undefined;
    case "adopt":
      return state === "downloaded" ? { state: "unloaded", stopping: false } : undefined;
  }
}

export type ExitKind =
  /** asked for (unload, eviction, TTL, reload, shutdown) */
  | "stopped"
  /** not asked for, but clean: exit code 0, no signal */
  | "exited"
  /** not asked for and not clean */
  | "crashed";

/**
 * How an exit counts. A signal with code 0 is reported as code 1, as the scheduler always has:
 * a killed engine did not succeed.
 */
export function classifyExit(
  stopRequested: boolean,
  code: number,
  signal: string | null,
): { kind: ExitKind; exitCode: number } {
  const exitCode = signal && code === 0 ? 1 : code;
  if (stopRequested) return { kind: "stopped", exitCode };
  return { kind: exitCode !== 0 || signal !== null ? "crashed" : "exited", exitCode };
}

/** The transition an observed exit makes. */
export function exitTransition(kind: ExitKind): Transition {
  return kind === "crashed" ? "crashed" : "exited";
}
