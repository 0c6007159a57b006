/**
 * One row of the model table. Only the Scheduler writes to it, and it moves `state` and `stopping`
 * only through the named transitions of policies/lifecycle.ts (`ModelRecord.move`).
 */
import type { ModelSpec } from "../sources/types.ts";
import type { EngineLaunch } from "../../runners/protocol.ts";
import type { ProjectionView } from "./memory_port.ts";
import type { TimerHandle } from "./policies/clock.ts";
import type { DeviceBytes } from "./policies/device_bytes.ts";
import {
  type ExitKind,
  exitTransition,
  type ModelState,
  type Transition,
  transition,
} from "./policies/lifecycle.ts";
import type { UnloadReason } from "./policies/unload_reason.ts";

export type { ModelState };

/** The scheduler's view of the runners module: start an engine, stop or kill it. */
export interface RunningEngine {
  stop(timeoutMs: number): Promise<void>;
  kill(): void;
}

/** How a process ended, as the scheduler judged it. */
export interface ExitFacts {
  exitCode: number;
  signal: string | null;
  /** an exit nobody asked for, and not clean */
  failed: boolean;
  reason: UnloadReason;
  /** a policy's word on the failure (out of memory) */
  verdict?: string;
}

const LOG_LINES_KEPT = 200;
const PROGRESS_EVENT_INTERVAL_MS = 200;

export class ModelRecord {
  state: ModelState = "unloaded";
  /** set while a stop is under way: the process still holds its place but takes no new requests */
  stopping = false;
  /** the stop was asked for (unload, eviction, reload, TTL), so an exit is not a failure */
  stopRequested = false;
  /** why the stop under way was asked for; `unloadReason` keeps the last one after the exit */
  stopReason?: UnloadReason;
  unloadReason?: UnloadReason;
  engine?: RunningEngine;
  port?: number;
  /** counts spawns; runner messages from an earlier spawn are ignored */
  generation = 0;
  inflight = 0;
  /** requests waiting for this model to become ready: they protect it from eviction and expiry */
  waiting = 0;
  lastUsed = 0;
  /** clock time the last request ended, for the idle TTL */
  lastRequestEndedAt?: number;
  idleTimer?: TimerHandle;
  failed = false;
  /** unexpected exits in a row; drives restart backoff and the crash-loop cap */
  crashes = 0;
  /** a load that ran out of memory is retried once after evicting every idle unpinned model */
  oomRetried = false;
  /** that retry is queued: waiters keep waiting instead of taking the failure */
  retryPending = false;
  /** the gateway killed this spawn (a hung load, a stop while loading): its signal says nothing of memory */
  killedByGateway = false;
  readyAt?: number;
  /** last sign of life while loading (a log line or progress) */
  lastActivity = 0;
  exitCode?: number;
  exitSignal: string | null = null;
  error?: string;
  /** a policy's word on the last failure (out of memory), kept in `error` as late log lines arrive */
  failureVerdict?: string;
  progress?: Record<string, unknown>;
  info?: Record<string, unknown>;
  args: string[] = [];
  /** the model's effective preset as INI text (`status.preset`) */
  presetText = "";
  /** what this launch needs per device, and what the engine was seen to use once loaded */
  projection?: ProjectionView;
  /** the launch `projection` was made for; a different one (after a reload) needs a new projection */
  projectionKey?: string;
  actual?: ProjectionView;
  /** what admission booked for the live process, held until its exit has been observed */
  claim: DeviceBytes = {};
  /** the launch of the current spawn */
  launch?: EngineLaunch;
  readonly logs: string[] = [];
  /** lines logged in all; `logMark` is where the current spawn's lines begin */
  logCount = 0;
  logMark = 0;
  /** who follows this model's log line by line (`GET /models/logs?follow=1`): they read, never write */
  readonly logFollowers = new Set<(line: string) => void>();
  #lastProgressEvent = -Infinity;

  constructor(public spec: ModelSpec) {}

  get id(): string {
    return this.spec.id;
  }
  /** every name a client may use for this model: its id and aliases */
  get names(): string[] {
    return [this.spec.id, ...this.spec.aliases];
  }
  /** the process exists (or is about to): it holds a place against --models-max and its claim */
  get alive(): boolean {
    return this.state === "loading" || this.state === "loaded" || this.state === "sleeping" || this.stopping;
  }
  get ready(): boolean {
    return (this.state === "loaded" || this.state === "sleeping") && !this.stopping &&
      this.port !== undefined;
  }
  /** Applies a named transition; false (nothing changed) when it cannot happen now. */
  move(t: Transition): boolean {
    try {
      const next = transition({ state: this.state, stopping: this.stopping }, t);
      this.state = next.state;
      this.stopping = next.stopping;
      return true;
    } catch {
      return false;
    }
  }
  /**
   * `startLoad`: admitted, about to spawn. Books the claim (what the engine was seen to use before,
   * else the projection) and returns the new spawn's generation; undefined when it cannot start now.
   */
  startLoad(now: number): number | undefined {
    if (!this.move("startLoad")) return undefined;
    this.stopRequested = false;
    this.stopReason = undefined;
    this.retryPending = false;
    this.killedByGateway = false;
    this.failed = false;
    this.exitCode = undefined;
    this.error = undefined;
    this.progress = undefined;
    this.port = undefined;
    this.lastUsed = now;
    this.claim = this.actual?.bytes ?? this.projection?.bytes ?? {};
    this.logMark = this.logCount;
    return ++this.generation;
  }

  /** `beginStop`: takes no new requests from now; false when a stop is under way already. */
  beginStop(reason: UnloadReason): boolean {
    if (!this.move("beginStop")) return false;
    this.stopRequested = true;
    this.stopReason = reason;
    this.retryPending = false;
    return true;
  }

  /** `exited` or `crashed`: the process is gone, and with it its port, its claim and its timers. */
  exited(kind: ExitKind, how: ExitFacts): void {
    this.move(exitTransition(kind));
    this.idleTimer = undefined;
    this.readyAt = undefined;
    this.engine = undefined;
    this.port = undefined;
    this.progress = undefined;
    this.info = undefined;
    this.claim = {};
    this.exitCode = how.exitCode;
    this.exitSignal = how.signal;
    this.failed = how.failed;
    this.unloadReason = how.reason;
    this.stopReason = undefined;
    this.failureVerdict = how.verdict;
  }

  pushLog(line: string): void {
    this.logs.push(line);
    this.logCount++;
    if (this.logs.length > LOG_LINES_KEPT) this.logs.splice(0, this.logs.length - LOG_LINES_KEPT);
    for (const follow of this.logFollowers) follow(line);
  }
  /** The lines the current spawn logged (as many as are kept). */
  spawnLogs(): string[] {
    const since = this.logCount - this.logMark;
    return since <= 0 ? [] : this.logs.slice(-Math.min(since, this.logs.length));
  }
  progressDue(now: number): boolean {
    if (now - this.#lastProgressEvent < PROGRESS_EVENT_INTERVAL_MS) return false;
    this.#lastProgressEvent = now;
    return true;
  }
}
