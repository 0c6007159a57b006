/**
 * The model table and its single owner. Every decision to load, evict, queue, expire or stop a model
 * is made here, synchronously, on the table as it is now: callers never act on a copy of a model's
 * state, and no timer acts on what it saw when it was armed (it asks again). The rules themselves are
 * pure policies (policies/: admission by memory and count, eviction order, idle TTL, restart backoff,
 * out-of-memory retries, queue order); DESIGN.md has the invariants and the message flow. Slow work
 * (projecting memory, starting and stopping engines) runs detached and reports back.
 *
 * Semantics follow llama.cpp's router (`server_models`) where it has them: `--models-max` counts
 * loading, loaded and sleeping models; requests for one model share one load; a model serving or
 * awaited by a request is never evicted; requests that find no room wait in a queue, and a client
 * that leaves frees its place.
 */
import { abortable } from "../abort.ts";
import { ApiError, badRequest, notFound, serverError, unavailable } from "../errors.ts";
import { type OptionMap, renderArgs } from "../flags/flags.ts";
import { renderPresetText } from "../sources/preset.ts";
import type { ModelSpec } from "../sources/types.ts";
import type { EngineLaunch, RunnerMessage } from "../../runners/protocol.ts";
import type { EventBus } from "./events.ts";
import type { MemoryPort, ProjectionView } from "./memory_port.ts";
import { raisedVerbosity } from "../memory/launch_options.ts";
import { type AdmissionRequest, admit } from "./policies/admission.ts";
import { autoRestartAllowed, crashesAfterExit, restartDelayMs } from "./policies/backoff.ts";
import { type Clock, delay, realClock, type TimerHandle } from "./policies/clock.ts";
import { type DeviceBytes, sumBytes } from "./policies/device_bytes.ts";
import { chooseVictims, evictionCandidates, type ModelFacts } from "./policies/eviction.ts";
import { engineLoggedAnError } from "./policies/engine_error.ts";
import { classifyExit } from "./policies/lifecycle.ts";
import { onLoadFailure } from "./policies/oom.ts";
import { enqueue } from "./policies/queue_order.ts";
import { expiresAt, type IdleFacts, idleVerdict, resolveTtlS } from "./policies/ttl.ts";
import { exitReason, type UnloadReason } from "./policies/unload_reason.ts";
import type { KvCachePort, KvCacheSummary, KvCacheTarget } from "../kvcache/port.ts";
import { savesOnStop } from "../kvcache/policy.ts";
import { ModelRecord, type ModelState, type RunningEngine } from "./record.ts";
import { admissionRequest, evictionFacts, idleFacts } from "./views.ts";

export { ModelRecord, type ModelState, type RunningEngine };

/** The scheduler's view of the runners module: start an engine, stop or kill it. */
export interface EngineStarter {
  start(launch: EngineLaunch, onMessage: (message: RunnerMessage) => void): RunningEngine;
}

export interface SchedulerOptions {
  engineBin: string;
  starter: EngineStarter;
  /** `--models-max`: live processes at most; 0 means no cap */
  modelsMax: number;
  /** budgets and projections per device; without it, only `modelsMax` counts */
  memory?: MemoryPort;
  /** `--models-ttl`: seconds idle before a model is unloaded, unless its preset says otherwise; 0 = never */
  ttlS?: number;
  events: EventBus;
  /** llama-server options given on the gateway's command line; they win over the model's own */
  passthrough: OptionMap;
  /** extra environment for engines */
  engineEnv?: Record<string, string>;
  /** LLAMA_SERVER_DEBUG_FAKE_TIMING: wait this long before each load (llama.cpp: 2 s) */
  loadDelayMs?: number;
  /** requests that may wait for one model; more are refused with 503 */
  queueMax?: number;
  /** a loading engine that says nothing for this long is hung: it is killed */
  loadSilenceTimeoutMs?: number;
  /** consecutive crashes after which only an explicit load restarts the model */
  maxCrashes?: number;
  /** time and timers; tests pass a manual clock */
  clock?: Clock;
  /**
   * Closes the gateway's kept-alive sockets to an engine's port: called right before the engine is
   * asked to stop, because llama-server polls each open keep-alive socket before it exits (about
   * 100 ms with one idle socket, 5 ms with none), and when it has exited, as its port may be reused.
   */
  closeConnections?: (port: number) => void;
  /**
   * What is wrong with a model's file, if anything can be told without an engine; asked when a load
   * failed and the engine's log names no error (policies/engine_error.ts)
   */
  modelFileProblem?: (spec: ModelSpec) => string | undefined;
  /** engines serve their own `/metrics`, for the gateway's page (off with `--no-metrics`) */
  engineMetrics?: boolean;
  /**
   * `--swap-kv-cache`: a model stopped on purpose has its engine's slots saved (after its requests,
   * before its sockets are closed and it is asked to stop); loaded again, they are restored before it
   * counts as ready. Each step is bounded by the port's `timeoutMs`.
   */
  kvCache?: KvCachePort;
  log?: (line: string) => void;
}

/** A request's hold on a running model: the model is not evicted until it is released. */
export interface Lease {
  readonly modelId: string;
  readonly port: number;
  release(): void;
}

export interface AcquireOptions {
  autoload: boolean;
  signal?: AbortSignal;
  /** refresh the LRU clock (llama.cpp: POST requests do, GET requests don't) */
  touch: boolean;
}

/** A model's memory as `/models` shows it (`status.memory`). */
export interface MemoryView {
  projected: DeviceBytes;
  actual: DeviceBytes | null;
  source: ProjectionView["source"];
}

const ERROR_LOG_LINES = 12;
/**
 * After a model on a serialised device (a GPU) exits, live free memory is checked this long, every
 * `SETTLE_POLL_MS`, before the next load there: the driver gives memory back late (Ollama's bounds).
 * After that, claims alone decide.
 */
const SETTLE_MS = 5000;
const SETTLE_POLL_MS = 250;
/** A model that can never fit: a 503 without Retry-After, since trying again does not help. */
const NEVER_FITS_STATUS = 503;
/** `keepAlive(name, 0)`: the TTL of a model to unload once idle (1 ms) */
const KEEP_ALIVE_ONCE_IDLE_S = 0.001;

/** What it takes to start a model now (`Scheduler.#placement`). */
type Placement =
  | { kind: "admit" }
  | { kind: "wait" }
  | { kind: "evict"; victims: readonly string[] }
  | { kind: "never"; message: string }
  | { kind: "blocked"; message: string };

/** A model that can never fit: a 503 without Retry-After, since trying again does not help. */
function neverFits(message: string): ApiError {
  return new ApiError("unavailable_error", message, NEVER_FITS_STATUS);
}

interface QueueEntry {
  record: ModelRecord;
  waiters: number;
  /** left the queue: its model was started, or it was dropped */
  done: boolean;
  /** why its waiters cannot be served (the model can never fit) */
  error?: ApiError;
}

export class Scheduler {
  readonly #records = new Map<string, ModelRecord>();
  readonly #aliases = new Map<string, string>();
  /** TTLs requests set for a model's current load (`keepAlive`), with that load's generation */
  readonly #keepAlive = new Map<string, { ttlS: number; generation: number }>();
  #queue: QueueEntry[] = [];
  #changed = Promise.withResolvers<void>();
  #closing = false;
  /** the bounded wait for live free memory after a GPU model's exit; `free` once polled */
  #settling?: { until: number; polled: boolean; free?: DeviceBytes; timer?: TimerHandle };
  readonly #opts: SchedulerOptions;
  readonly #clock: Clock;

  constructor(opts: SchedulerOptions, specs: ModelSpec[]) {
    this.#opts = opts;
    this.#clock = opts.clock ?? realClock;
    this.replaceSpecs(specs);
  }

  // ---- lookups -------------------------------------------------------------------------------------

  /** Resolves an id or alias; undefined when unknown. */
  find(name: string): ModelRecord | undefined {
    return this.#records.get(name) ?? this.#records.get(this.#aliases.get(name) ?? "");
  }

  records(): ModelRecord[] {
    return [...this.#records.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Models whose process is alive, for /props-style reporting and tests. */
  aliveCount(): number {
    return this.records().filter((r) => r.alive).length;
  }

  queueLength(): number {
    return this.#queue.length;
  }

  /** What live processes have claimed, per device. */
  claimed(): DeviceBytes {
    return sumBytes([...this.#records.values()].filter((r) => r.alive).map((r) => r.claim));
  }

  /** When the model will be unloaded for being idle (clock ms), or null. */
  expiresAt(record: ModelRecord): number | null {
    return expiresAt(this.#idleFacts(record));
  }

  /** The idle TTL in seconds that applies to the model (0 = never). */
  ttlOf(record: ModelRecord): number {
    const kept = this.#keepAlive.get(record.id);
    if (kept?.generation === record.generation) return kept.ttlS;
    return resolveTtlS(record.spec.ttlS, this.#opts.ttlS ?? 0);
  }

  /**
   * A request's own idle TTL for the model's current load (Ollama's `keep_alive`), counted as any
   * TTL is: seconds; 0 unloads it once idle; Infinity never; undefined goes back to the preset's
   * `ttl` or `--models-ttl`. It wins over those until the next call or the model's next load.
   */
  keepAlive(name: string, seconds: number | undefined): void {
    const record = this.find(name);
    if (!record) return;
    if (seconds === undefined) this.#keepAlive.delete(record.id);
    else {
      // to the TTL policy 0 means never: "once idle" is its shortest TTL, and a request within it still wins
      const ttlS = seconds === Infinity ? 0 : Math.max(seconds, KEEP_ALIVE_ONCE_IDLE_S);
      this.#keepAlive.set(record.id, { ttlS, generation: record.generation });
    }
    this.#armIdle(record);
  }

  /** The model's saved KV cache (`status.kv_cache`), if any. */
  kvCacheOf(record: ModelRecord): KvCacheSummary | undefined {
    return this.#opts.kvCache?.summary(record.id);
  }

  memoryOf(record: ModelRecord): MemoryView | undefined {
    if (!record.projection) return undefined;
    return {
      projected: record.projection.bytes,
      actual: record.actual?.bytes ?? null,
      source: record.actual ? "observed" : record.projection.source,
    };
  }

  // ---- requests ------------------------------------------------------------------------------------

  /**
   * Waits until the model can serve a request and holds it until the lease is released. Loads the
   * model (queueing for room) when `autoload` allows it.
   */
  async acquire(name: string, opts: AcquireOptions): Promise<Lease> {
    const record = this.find(name);
    if (!record) throw badRequest(`model '${name}' not found`);
    let entry: QueueEntry | undefined;
    /** the spawn this request waits for; when it has come and gone, the load failed */
    let awaitedGeneration = -1;
    try {
      for (;;) {
        opts.signal?.throwIfAborted();
        if (this.#closing) throw serverError("server is shutting down");
        if (entry?.error) throw entry.error;
        if (record.ready) return this.#lease(record, opts.touch);
        if (record.state === "unloaded" && !record.stopping && !record.retryPending) {
          if (awaitedGeneration >= 0 && record.generation >= awaitedGeneration) {
            throw record.failed
              ? serverError(
                `model name=${record.id} failed to load${record.error ? `: ${record.error}` : ""}`,
              )
              : badRequest(`model name=${record.id} is not running`);
          }
          if (!opts.autoload) throw badRequest("model is not loaded");
          if (!autoRestartAllowed(record.crashes, this.#opts.maxCrashes)) {
            throw unavailable(
              `model ${record.id} crashed ${record.crashes} times in a row; it is not restarted until ` +
                `an explicit POST /models/load. Last error: ${record.error ?? "unknown"}`,
            );
          }
          if (!entry || entry.done) {
            const projecting = this.#projecting(record, opts.signal);
            if (projecting) {
              await projecting;
              continue;
            }
            this.#refuseIfNeverFits(record);
            entry = this.#enqueue(record);
            awaitedGeneration = record.generation + 1;
            this.#pump();
            continue;
          }
        } else if (record.state === "loading" && awaitedGeneration < 0) {
          awaitedGeneration = record.generation;
        } else if (record.state === "downloading" || record.state === "downloaded") {
          throw badRequest(`model name=${record.id} is not running`);
        }
        if (record.waiting >= (this.#opts.queueMax ?? Infinity)) {
          throw unavailable(`too many requests waiting for model ${record.id}; try again shortly`, 1);
        }
        this.#setWaiting(record, +1);
        try {
          await this.#nextChange(opts.signal);
        } finally {
          this.#setWaiting(record, -1);
        }
      }
    } finally {
      if (entry && !entry.done && --entry.waiters === 0) {
        entry.done = true;
        this.#queue = this.#queue.filter((e) => e !== entry);
        this.#pump();
      }
    }
  }

  #setWaiting(record: ModelRecord, delta: number): void {
    record.waiting += delta;
    this.#armIdle(record);
  }

  #lease(record: ModelRecord, touch: boolean): Lease {
    record.inflight++;
    if (touch) record.lastUsed = this.#clock.now();
    this.#armIdle(record);
    let released = false;
    return {
      modelId: record.id,
      port: record.port!,
      release: () => {
        if (released) return;
        released = true;
        record.inflight--;
        if (record.inflight === 0) record.lastRequestEndedAt = this.#clock.now();
        this.#armIdle(record);
        this.#notify();
        if (record.inflight === 0) this.#pump();
      },
    };
  }

  #enqueue(record: ModelRecord): QueueEntry {
    let entry = this.#queue.find((e) => e.record === record && !e.done);
    if (entry) entry.waiters++;
    else {
      entry = { record, waiters: 1, done: false };
      this.#queue = enqueue(this.#queue, entry, (e) => e.record.spec.priority);
    }
    return entry;
  }

  /**
   * Starts queued models in order while admission allows, and evicts idle models for the one at the
   * head when it needs room. The head waits for what it needs; those behind it wait their turn.
   */
  #pump(): void {
    // the common case, on every request's end: nobody waits, nothing to decide
    if (this.#closing || this.#queue.length === 0) return;
    this.#queue = this.#queue.filter((e) => {
      if (e.record.alive || e.record.state !== "unloaded") e.done = true;
      return !e.done;
    });
    while (this.#queue.length) {
      const entry = this.#queue[0];
      if (this.#awaitingLiveFree(entry.record)) return;
      const placement = this.#placement(entry.record);
      if (placement.kind === "admit") {
        this.#dequeue(entry);
        this.#spawn(entry.record);
        continue;
      }
      if (placement.kind === "never") {
        this.#fail(entry, placement.message);
        continue;
      }
      if (placement.kind === "evict") {
        void this.#evict(placement.victims, `to make room for ${entry.record.id}`);
        // a victim gives up its place when its stop begins (its memory only at its exit): where places
        // were what was short, the head starts while the victims finish stopping
        if (this.#placement(entry.record).kind === "admit") continue;
      }
      // wait: for stops to finish, a load to end, or busy models to become idle
      return;
    }
  }

  #dequeue(entry: QueueEntry): void {
    entry.done = true;
    this.#queue = this.#queue.filter((e) => e !== entry);
  }

  #fail(entry: QueueEntry, message: string): void {
    this.#dequeue(entry);
    entry.error = neverFits(message);
    if (entry.record.retryPending) {
      // an out-of-memory retry that cannot fit: the model failed, and its waiters hear why
      entry.record.failed = true;
      entry.record.error = message;
      entry.record.retryPending = false;
    }
    this.#log(`${entry.record.id} cannot be loaded: ${message}`);
    this.#notify();
  }

  /** Why this victim went first, for the log: its priority when that ranks it, else its age. */
  #evictionWhy(victim: ModelRecord): string {
    const priorities = new Set(
      [...this.#records.values()].filter((r) => r.ready).map((r) => r.spec.priority),
    );
    return priorities.size > 1
      ? `priority ${victim.spec.priority}, then least recently used`
      : "least recently used";
  }

  /**
   * What it takes to start `record` now: admission by claims, then, when it needs room, the victims
   * that would free it. `never`: no waiting or eviction helps (too big, or what is missing is pinned);
   * `blocked`: only busy models could make room, once idle.
   */
  #placement(record: ModelRecord): Placement {
    const decision = admit(this.#admissionRequest(record));
    if (decision.kind === "admit") return { kind: "admit" };
    if (decision.kind === "wait") return { kind: "wait" };
    if (decision.kind === "never-fits") return { kind: "never", message: decision.message };
    const plan = chooseVictims(this.#facts(), { shortBy: decision.shortBy, slots: decision.slots });
    if (plan.kind === "evict") return { kind: "evict", victims: plan.victims };
    return plan.outcome === "never"
      ? { kind: "never", message: plan.message }
      : { kind: "blocked", message: plan.message };
  }

  /** Stops `victims` to make room, logging why each was chosen (`purpose` says for what). */
  #evict(victims: readonly string[], purpose: string): Promise<void[]> {
    return Promise.all(victims.map((id) => {
      const victim = this.#records.get(id)!;
      this.#log(`evicting ${id} (${this.#evictionWhy(victim)}) ${purpose}`);
      return this.#stop(victim, "evicted");
    }));
  }

  /** A model that cannot fit whatever is evicted is answered at once, never queued. */
  #refuseIfNeverFits(record: ModelRecord): void {
    const placement = this.#placement(record);
    if (placement.kind === "never") throw neverFits(placement.message);
  }

  #admissionRequest(record: ModelRecord): AdmissionRequest {
    const memory = this.#opts.memory;
    return admissionRequest(record, this.#records.values(), {
      budgets: memory?.budgets() ?? {},
      modelsMax: this.#opts.modelsMax,
      serialisedDevices: memory?.serialisedDevices() ?? [],
      liveFree: this.#settling?.free,
    });
  }

  /** Does the model need a serialised device on which a model just exited? */
  #onSettlingDevice(bytes: DeviceBytes): boolean {
    const devices = this.#opts.memory?.serialisedDevices() ?? [];
    return devices.some((d) => (bytes[d] ?? 0) > 0);
  }

  /** The head waits for the first look at live free memory after an exit on a device it needs. */
  #awaitingLiveFree(record: ModelRecord): boolean {
    return !!this.#settling && !this.#settling.polled &&
      this.#onSettlingDevice(record.projection?.bytes ?? {});
  }

  /** Starts (or restarts) the bounded look at live free memory after a model left a serialised device. */
  #settle(): void {
    if (!this.#opts.memory?.liveFree) return;
    this.#clock.clearTimer(this.#settling?.timer);
    this.#settling = { until: this.#clock.now() + SETTLE_MS, polled: false };
    this.#pollLiveFree();
  }

  #pollLiveFree(): void {
    const settling = this.#settling;
    if (!settling) return;
    if (this.#closing || this.#queue.length === 0 || this.#clock.now() >= settling.until) {
      this.#settling = undefined;
      this.#pump();
      return;
    }
    const apply = (free: DeviceBytes | undefined) => {
      if (this.#settling !== settling) return;
      settling.polled = true;
      settling.free = free;
      this.#pump();
      if (this.#settling === settling) {
        settling.timer = this.#clock.setTimer(SETTLE_POLL_MS, () => this.#pollLiveFree());
      }
    };
    this.#opts.memory!.liveFree!().then(apply, () => apply(undefined));
  }

  #facts(): ModelFacts[] {
    return evictionFacts(this.#records.values(), new Set(this.#queue.map((e) => e.record)));
  }

  /**
   * Works out what the model's next launch needs, once per launch; undefined when that is known
   * already (so deciding stays synchronous). After awaiting it the caller looks at the table again.
   */
  #projecting(record: ModelRecord, signal?: AbortSignal): Promise<void> | undefined {
    const memory = this.#opts.memory;
    if (!memory) return undefined;
    const launch = this.#launchFor(record);
    const key = JSON.stringify(launch.args);
    if (record.projectionKey === key) return undefined;
    return abortable(memory.project(record.spec, launch), signal).then(
      (projection) => {
        record.projection = projection;
        record.projectionKey = key;
        record.actual = undefined;
      },
      (err) => {
        if (signal?.aborted) throw err;
        throw serverError(`cannot work out the memory model ${record.id} needs: ${(err as Error).message}`);
      },
    );
  }

  #nextChange(signal?: AbortSignal): Promise<void> {
    return abortable(this.#changed.promise, signal);
  }

  #notify(): void {
    const previous = this.#changed;
    this.#changed = Promise.withResolvers<void>();
    previous.resolve();
  }

  // ---- idle TTL ------------------------------------------------------------------------------------

  #idleFacts(record: ModelRecord): IdleFacts {
    return idleFacts(record, this.ttlOf(record), this.#queue.some((e) => e.record === record));
  }

  /**
   * Re-times the model's idle expiry after anything that may move it. The timer only asks again: the
   * decision to stop is taken on the table as it is when the timer fires, so a request that arrived
   * in the meantime always wins.
   */
  #armIdle(record: ModelRecord): void {
    this.#clock.clearTimer(record.idleTimer);
    record.idleTimer = undefined;
    // on every request's start and end: without a TTL (the default) there is nothing to time
    if (this.#closing || this.ttlOf(record) === 0) return;
    const now = this.#clock.now();
    const verdict = idleVerdict(this.#idleFacts(record), now);
    if (verdict.kind === "stop") {
      this.#log(`${record.id} idle for ${this.ttlOf(record)} s: unloading it`);
      void this.#stop(record, "idle");
    } else if (verdict.kind === "rearm") {
      const generation = record.generation;
      record.idleTimer = this.#clock.setTimer(Math.max(0, verdict.at - now), () => {
        record.idleTimer = undefined;
        if (record.generation === generation) this.#armIdle(record);
      });
    }
  }

  // ---- explicit load and unload --------------------------------------------------------------------

  /** `POST /models/load`: starts the model now, evicting idle ones if needed; does not wait for ready. */
  async load(name: string): Promise<void> {
    const record = this.find(name);
    if (!record) throw notFound("model is not found");
    record.crashes = 0;
    record.oomRetried = false;
    for (let evicted = false;;) {
      if (record.alive) throw badRequest("model is already running");
      if (record.state === "downloading" || record.state === "downloaded") return;
      const projecting = this.#projecting(record);
      if (projecting) {
        await projecting;
        continue;
      }
      const placement = this.#placement(record);
      if (placement.kind === "admit") break;
      if (placement.kind === "never") throw neverFits(placement.message);
      if (placement.kind === "wait") {
        await this.#nextChange();
        continue;
      }
      if (placement.kind === "blocked") {
        throw serverError(`model limit reached, try again later: ${placement.message}`);
      }
      if (evicted) throw serverError("model limit reached, try again later");
      evicted = true;
      // decided again at once: a victim's place is free when its stop begins, its memory at its exit
      void this.#evict(placement.victims, `to load ${record.id}`);
    }
    this.#spawn(record);
  }

  /** `POST /models/unload`: stops the model once its requests in flight have finished. */
  unload(name: string): void {
    const record = this.find(name);
    if (!record) throw badRequest("model is not found");
    if (!record.alive || record.stopping) throw badRequest("model is not running");
    void this.#stop(record, "requested");
  }

  /**
   * After a request found the engine at `port` unreachable: resolves true once that engine is known
   * to be gone (so a retry gets a fresh one), false if it still looks alive after `timeoutMs`.
   */
  async engineGone(modelId: string, port: number, timeoutMs: number): Promise<boolean> {
    const record = this.find(modelId);
    if (!record) return false;
    const deadline = AbortSignal.timeout(timeoutMs);
    try {
      while (record.port === port) await this.#nextChange(deadline);
      return true;
    } catch {
      return false;
    }
  }

  /** Resolves when the model's process is gone. */
  async waitUnloaded(record: ModelRecord, signal?: AbortSignal): Promise<void> {
    while (record.alive) await this.#nextChange(signal);
  }

  // ---- engines -------------------------------------------------------------------------------------

  #launchFor(record: ModelRecord): EngineLaunch {
    return this.launchOf(record.spec);
  }

  /** How the model's engine is launched (without the socket the runner adds): what memory is projected for. */
  launchOf(spec: ModelSpec): EngineLaunch {
    const options: OptionMap = new Map(spec.options);
    for (const [flag, value] of this.#opts.passthrough) options.set(flag, value);
    options.set("--alias", spec.id);
    if (this.#opts.engineMetrics) options.set("--metrics", true);
    if (this.#opts.kvCache?.enabledFor(spec)) {
      for (const [flag, value] of this.#opts.kvCache.engineOptions(spec)) options.set(flag, value);
    }
    // the gateway owns downloads: an engine only ever reads the cache
    if (options.has("--hf-repo")) options.set("--offline", true);
    // what the memory knowledge needs of the engine (its buffer sizes logged, a context its --fit keeps)
    const launched = this.#opts.memory?.launchOptions?.(options) ?? options;
    return {
      bin: this.#opts.engineBin,
      args: renderArgs(launched),
      env: this.#opts.engineEnv ?? {},
      dropServingTrace: raisedVerbosity(options, launched),
    };
  }

  /**
   * The argv shown in `status.args`, as llama.cpp shows its child's: a running engine's own, else what
   * the next launch would be (the memory port may launch a model again with other options).
   */
  argsOf(record: ModelRecord): string[] {
    const launch = record.alive && record.launch ? record.launch : this.#launchFor(record);
    return [launch.bin, ...launch.args, "--host", "127.0.0.1", "--port", String(record.port ?? 0)];
  }

  /** `startLoad`: the model was admitted; its claim is booked until its exit has been observed. */
  #spawn(record: ModelRecord): void {
    const generation = record.startLoad(this.#clock.now());
    if (generation === undefined) return;
    record.launch = undefined;
    this.#log(`loading ${record.id}`);
    this.#opts.events.publish({ model: record.id, event: "model_status", data: { status: "loading" } });
    this.#notify();
    const start = () => {
      if (record.generation !== generation || record.stopRequested) return;
      const launch = this.#launchFor(record);
      record.launch = launch;
      try {
        record.engine = this.#opts.starter.start(launch, (m) => this.#onRunnerMessage(record, generation, m));
      } catch (err) {
        record.pushLog(`failed to start the runner: ${(err as Error).message}`);
        this.#onExit(record, 1, null);
      }
    };
    const backoff = restartDelayMs(record.crashes);
    if (backoff) {
      this.#log(`${record.id} crashed ${record.crashes} times in a row: restarting in ${backoff} ms`);
    }
    // llama-server refuses a --slot-save-path that does not exist: the model's folder is made first
    const kv = this.#opts.kvCache;
    const begin = kv?.enabledFor(record.spec) ? () => void kv.prepare(record.spec).then(start) : start;
    const wait = (this.#opts.loadDelayMs ?? 0) + backoff;
    if (wait > 0) this.#clock.setTimer(wait, begin);
    else begin();
    this.#watchLoad(record, generation);
  }

  /** Judges a load by its progress, not a fixed timer: only an engine that goes silent is killed. */
  #watchLoad(record: ModelRecord, generation: number): void {
    const limit = this.#opts.loadSilenceTimeoutMs;
    if (!limit) return;
    record.lastActivity = this.#clock.now();
    const check = () => {
      if (record.generation !== generation || record.state !== "loading" || record.stopping) return;
      if (!record.engine || this.#clock.now() - record.lastActivity < limit) {
        this.#clock.setTimer(Math.min(1000, limit), check);
        return;
      }
      const line = `no output for ${
        Math.round(limit / 1000)
      } s while loading: the engine looks hung, killing it`;
      this.#log(`${record.id}: ${line}`);
      record.pushLog(line);
      record.killedByGateway = true;
      record.engine.kill();
    };
    this.#clock.setTimer(Math.min(1000, limit), check);
  }

  #onRunnerMessage(record: ModelRecord, generation: number, m: RunnerMessage): void {
    if (record.generation !== generation) return;
    switch (m.type) {
      case "spawned":
        record.port = m.port;
        record.args = this.argsOf(record);
        break;
      case "log":
      case "logs": {
        const lines = m.type === "log" ? [m.line] : m.lines;
        record.lastActivity = this.#clock.now();
        for (const line of lines) record.pushLog(line);
        this.#opts.log?.(lines.map((line) => `[${record.id}] ${line}`).join("\n"));
        // the engine's last words may trail its exit: they belong in the reason it failed
        if (record.failed && record.state === "unloaded") {
          record.error = failureText(record, record.failureVerdict);
        }
        return;
      }
      case "progress": {
        record.lastActivity = this.#clock.now();
        record.move("wake");
        record.progress = m.progress;
        const last = typeof m.progress.value === "number" && m.progress.value >= 1;
        if (record.progressDue(this.#clock.now()) || last) {
          this.#opts.events.publish({
            model: record.id,
            event: "status_change",
            data: { status: "loading", progress: m.progress },
          });
        }
        break;
      }
      case "ready":
        if (this.#restoreKvCache(record, generation, m.info)) return;
        this.#onReady(record, m.info);
        break;
      case "sleeping":
        if (record.move("sleep")) {
          this.#opts.events.publish({
            model: record.id,
            event: "status_change",
            data: { status: "sleeping" },
          });
        }
        break;
      case "exit":
        this.#onExit(record, m.code, m.signal);
        return;
      case "hello":
        return;
    }
    this.#notify();
  }

  /** `ready`: the engine serves; what it logged while loading says what it really uses. */
  #onReady(record: ModelRecord, info: Record<string, unknown>): void {
    if (!record.move("ready")) return;
    const first = record.readyAt === undefined;
    record.readyAt ??= this.#clock.now();
    record.progress = undefined;
    record.oomRetried = false;
    if (Object.keys(info).length > 0) record.info = info;
    if (first && this.#opts.memory && record.launch) {
      const seen = this.#opts.memory.observe(record.spec, record.launch, record.spawnLogs());
      if (seen) {
        record.actual = seen;
        record.claim = seen.bytes;
      }
    }
    this.#log(`${record.id} is ready on port ${record.port}`);
    this.#opts.events.publish({
      model: record.id,
      event: "status_change",
      // `args` (an extension) carries the port the engine got, so a listener's copy stays current
      data: Object.keys(info).length > 0
        ? { status: "loaded", info, args: record.args }
        : { status: "loaded", args: record.args },
    });
    this.#armIdle(record);
    // a model ready and unused may be what frees a queued one's turn (its claim is now actual)
    this.#pump();
  }

  /**
   * A fresh engine gets its saved KV cache back before it counts as ready: it stays `loading`, so no
   * request is admitted until the restore has finished, failed or run out of time. False when there
   * is nothing to restore (the feature is off for it, or this `ready` is a wake-up).
   */
  #restoreKvCache(record: ModelRecord, generation: number, info: Record<string, unknown>): boolean {
    const kv = this.#opts.kvCache;
    const target = this.#kvTarget(record);
    // only a fresh engine: after a wake-up its cache is where it was
    if (!kv || !target || record.state !== "loading" || record.readyAt !== undefined) return false;
    // the restore is part of the load: the watchdog counts its silence from here, within its bound
    record.lastActivity = this.#clock.now();
    void this.#withinKvBound(record, "restore", (signal) => kv.restore(target, signal)).then(() => {
      if (record.generation !== generation) return;
      this.#onReady(record, info);
      this.#notify();
    });
    return true;
  }

  /** Saves the engine's slots on a stop that keeps them: it serves nothing now, and it is still up. */
  async #saveKvCache(record: ModelRecord): Promise<void> {
    const kv = this.#opts.kvCache;
    const target = this.#kvTarget(record);
    if (!kv || !target || record.state !== "loaded" || record.inflight > 0 || !record.engine) return;
    await this.#withinKvBound(record, "save", (signal) => kv.save(target, signal));
  }

  /** The engine whose slots to save or restore: the model keeps its cache, and its engine has a port. */
  #kvTarget(record: ModelRecord): KvCacheTarget | undefined {
    const { launch, port } = record;
    if (!this.#opts.kvCache?.enabledFor(record.spec) || !launch || port === undefined) return undefined;
    return { modelId: record.id, launch, port };
  }

  /** A KV cache step, given up after the port's bound: a slow disk never holds a stop or a load longer. */
  async #withinKvBound(
    record: ModelRecord,
    what: "save" | "restore",
    step: (signal: AbortSignal) => Promise<void>,
  ): Promise<void> {
    const bound = this.#opts.kvCache!.timeoutMs;
    const controller = new AbortController();
    const expired = delay(this.#clock, bound, controller.signal).then(() => true, () => false);
    const finished = step(controller.signal).then(() => false, (err) => {
      this.#log(`${record.id}: KV cache ${what} failed: ${(err as Error).message}`);
      return false;
    });
    const overran = await Promise.race([finished, expired]);
    const late = `KV cache ${what} took longer than ${bound} ms`;
    // ends the timer, or tells the step that overran to give up
    controller.abort(new Error(late));
    if (overran) this.#log(`${record.id}: ${late}: going on without it`);
  }

  /** Our own reading of why a load failed, where the engine's log lost the lines that would say. */
  #unloggedProblem(record: ModelRecord): string | undefined {
    if (engineLoggedAnError(record.spawnLogs())) return undefined;
    return this.#opts.modelFileProblem?.(record.spec);
  }

  /** `exited` or `crashed`: the process is gone, and so is its claim. */
  #onExit(record: ModelRecord, code: number, signal: string | null): void {
    const { kind, exitCode } = classifyExit(record.stopRequested, code, signal);
    const loadFailed = kind === "crashed" && record.readyAt === undefined;
    const oom = loadFailed
      ? onLoadFailure({
        modelId: record.id,
        logLines: record.spawnLogs(),
        signal,
        killedByGateway: record.killedByGateway,
      }, record.oomRetried)
      : { kind: "not-oom" as const };
    const crashed = kind === "crashed" && oom.kind !== "retry-after-evicting-all-idle-unpinned";
    record.crashes = crashesAfterExit({
      previous: record.crashes,
      crashed,
      readyAt: record.readyAt,
      now: this.#clock.now(),
    });
    this.#clock.clearTimer(record.idleTimer);
    if (record.port !== undefined) this.#opts.closeConnections?.(record.port);
    const leftGpu = this.#onSettlingDevice(record.claim);
    record.exited(kind, {
      exitCode,
      signal,
      failed: crashed,
      reason: exitReason(record.stopReason, oom.kind !== "not-oom"),
      verdict: oom.kind === "fail" ? oom.reason : loadFailed ? this.#unloggedProblem(record) : undefined,
    });
    record.error = crashed ? failureText(record, record.failureVerdict) : undefined;
    // what the listing shows is now what the next launch would be
    record.args = this.argsOf(record);
    const how = `code ${exitCode}${signal ? `, ${signal}` : ""}`;
    this.#log(`${record.id} ${kind === "stopped" ? "stopped" : "exited"} (${how}): ${record.unloadReason}`);
    const data: Record<string, unknown> = {
      status: "unloaded",
      exit_code: exitCode,
      reason: record.unloadReason,
    };
    if (record.failed) Object.assign(data, { failed: true, error: record.error });
    this.#opts.events.publish({ model: record.id, event: "status_change", data });
    if (oom.kind === "retry-after-evicting-all-idle-unpinned") this.#retryAfterOom(record, oom.evidence);
    if (leftGpu) this.#settle();
    this.#notify();
    this.#pump();
  }

  /** A load that ran out of memory: every idle unpinned model makes way, and it is tried once more. */
  #retryAfterOom(record: ModelRecord, evidence: string): void {
    record.oomRetried = true;
    record.retryPending = true;
    const victims = evictionCandidates(this.#facts());
    this.#log(
      `${record.id} ran out of memory while loading (${evidence}); ` +
        (victims.length ? `unloading ${victims.map((v) => v.modelId).join(", ")} and ` : "") +
        "trying once more",
    );
    for (const v of victims) void this.#stop(this.#records.get(v.modelId)!, "memory");
    const entry: QueueEntry = { record, waiters: 1, done: false };
    this.#queue = [entry, ...this.#queue];
  }

  /**
   * `beginStop`: no new requests; those in flight may finish (within stop-timeout); its KV cache is
   * saved when the reason keeps it (`savesOnStop`, unless `keepKvCache` says otherwise); then the
   * engine stops.
   */
  async #stop(record: ModelRecord, reason: UnloadReason, keepKvCache = savesOnStop(reason)): Promise<void> {
    if (!record.alive) return;
    const timeoutMs = record.spec.stopTimeoutS * 1000;
    if (record.beginStop(reason)) {
      this.#clock.clearTimer(record.idleTimer);
      record.idleTimer = undefined;
      this.#notify();
      if (!record.engine) {
        // still inside the load delay: nothing was started
        record.generation++;
        this.#onExit(record, 0, null);
        return;
      }
      if (record.state === "loading") {
        record.killedByGateway = true;
        record.engine.kill();
      } else {
        const deadline = this.#clock.now() + timeoutMs;
        while (record.inflight > 0 && this.#clock.now() < deadline && record.engine) {
          await Promise.race([
            this.#nextChange(),
            delay(this.#clock, Math.max(0, deadline - this.#clock.now())),
          ]);
        }
        if (keepKvCache) await this.#saveKvCache(record);
        if (record.port !== undefined) this.#opts.closeConnections?.(record.port);
        record.engine?.stop(timeoutMs);
      }
    }
    await this.waitUnloaded(record);
  }

  // ---- downloads -----------------------------------------------------------------------------------

  /**
   * Adds the transient entry llama.cpp shows for a download (`POST /models` or a first request for an
   * uncached `owner/repo[:quant]`): named as requested, status `downloading`.
   */
  beginDownload(name: string): ModelRecord {
    const existing = this.#records.get(name);
    if (existing && existing.state !== "downloaded") throw badRequest(`model '${name}' already exists`);
    const record = new ModelRecord({
      id: name,
      aliases: [],
      tags: [],
      source: "cache",
      options: new Map([["--hf-repo", name]]),
      loadOnStartup: false,
      stopTimeoutS: 10,
      pinned: false,
      priority: 0,
      hidden: false,
    });
    record.move("downloadBegin");
    this.#records.set(name, record);
    this.#opts.events.publish({ model: name, event: "model_status", data: { status: "downloading" } });
    this.#notify();
    return record;
  }

  updateDownload(name: string, progress: Record<string, unknown>): void {
    const record = this.#records.get(name);
    if (record?.state !== "downloading") return;
    record.progress = progress;
    this.#opts.events.publish({ model: name, event: "download_progress", data: { progress } });
  }

  /** The download ended; the entry stays `downloaded` (with the error, if any) until the next reload. */
  endDownload(name: string, error?: string): void {
    const record = this.#records.get(name);
    if (!record?.move("downloadEnd")) return;
    record.progress = undefined;
    record.failed = error !== undefined;
    record.error = error;
    this.#opts.events.publish({
      model: name,
      event: error === undefined ? "download_finished" : "download_failed",
      data: error === undefined ? undefined : { error },
    });
    this.#notify();
  }

  /** Stops the model if it runs and drops it from the table (`DELETE /models`). */
  async remove(record: ModelRecord): Promise<void> {
    // what it would save goes with it
    await this.#stop(record, "requested", false);
    await this.#opts.kvCache?.discard(record.id);
    this.#records.delete(record.id);
    for (const [alias, id] of this.#aliases) if (id === record.id) this.#aliases.delete(alias);
    this.#notify();
  }

  // ---- sources -------------------------------------------------------------------------------------

  /**
   * Applies a freshly read catalog: new models appear, vanished or changed models that run are
   * stopped (after their requests finish), unchanged ones are untouched.
   */
  replaceSpecs(specs: ModelSpec[]): Promise<void> {
    const next = new Map(specs.map((s) => [s.id, s]));
    const stops: Promise<void>[] = [];
    for (const [id, record] of this.#records) {
      const spec = next.get(id);
      if (!spec) {
        if (record.state === "downloading") continue;
        if (record.state === "downloaded") {
          this.#records.delete(id);
          continue;
        }
        if (record.alive) stops.push(this.#stop(record, "reload").then(() => void this.#records.delete(id)));
        else this.#records.delete(id);
      } else if (!sameLaunch(record.spec, spec) && record.alive) {
        stops.push(
          this.#stop(record, "reload").then(() => {
            record.spec = spec;
            record.args = this.argsOf(record);
            record.presetText = renderPresetText(spec, this.#opts.passthrough);
            this.#notify();
          }),
        );
      } else if (record.state === "downloading") {
        continue;
      } else {
        record.spec = spec;
        record.move("adopt");
        if (!record.alive) {
          record.failed = false;
          record.exitCode = undefined;
          record.error = undefined;
        }
        // pin, priority or ttl may have changed
        this.#armIdle(record);
      }
    }
    for (const spec of specs) {
      if (!this.#records.has(spec.id)) this.#records.set(spec.id, new ModelRecord(spec));
    }
    this.#aliases.clear();
    for (const spec of specs) for (const alias of spec.aliases) this.#aliases.set(alias, spec.id);
    for (const record of this.#records.values()) {
      record.args = this.argsOf(record);
      record.presetText = renderPresetText(record.spec, this.#opts.passthrough);
    }
    this.#notify();
    return Promise.all(stops).then(() => {});
  }

  /** Starts the preset's `load-on-startup` models. */
  async loadOnStartup(): Promise<void> {
    for (const record of this.records()) {
      if (record.spec.loadOnStartup && !record.alive) await this.load(record.id);
    }
  }

  // ---- shutdown ------------------------------------------------------------------------------------

  /** Stops every engine; requests still queued get an error. */
  async shutdown(): Promise<void> {
    this.#closing = true;
    this.#clock.clearTimer(this.#settling?.timer);
    this.#settling = undefined;
    for (const record of this.#records.values()) {
      this.#clock.clearTimer(record.idleTimer);
      record.idleTimer = undefined;
    }
    this.#notify();
    await Promise.all(this.records().map((r) => this.#stop(r, "shutdown")));
  }

  #log(line: string): void {
    this.#opts.log?.(line);
  }
}

/** Why a model failed: how its engine ended, the policy's verdict if any, and its last log lines. */
function failureText(record: ModelRecord, verdict?: string): string {
  const how = `exit code ${record.exitCode}${record.exitSignal ? ` (${record.exitSignal})` : ""}`;
  return `${verdict ? `${verdict}; ` : ""}${how}; last log lines:\n${
    record.logs.slice(-ERROR_LOG_LINES).join("\n")
  }`;
}

function sameLaunch(a: ModelSpec, b: ModelSpec): boolean {
  if (a.options.size !== b.options.size) return false;
  for (const [k, v] of a.options) if (b.options.get(k) !== v) return false;
  return true;
}
