/**
 * The model table and its single owner. Every decision to load, evict, queue or stop a model is
 * made here, synchronously, on the table as it is now: callers never act on a copy of a model's
 * state. Slow work (starting and stopping engines) runs detached and reports back through runner
 * messages, which this class applies to the table.
 *
 * Semantics follow llama.cpp's router (`server_models`): `--models-max` counts loading, loaded and
 * sleeping models; requests for one model share one load; when no slot is free the least recently
 * used idle model is evicted; a model serving or awaited by a request is never evicted; requests
 * that find no slot wait in a FIFO queue, and a client that leaves frees its place.
 */
import { abortable, sleep } from "../abort.ts";
import { badRequest, notFound, serverError, unavailable } from "../errors.ts";
import { type OptionMap, renderArgs } from "../flags/flags.ts";
import { renderPresetText } from "../sources/preset.ts";
import type { ModelSpec } from "../sources/types.ts";
import type { EngineLaunch, RunnerMessage } from "../../runners/protocol.ts";
import type { Admission } from "./admission.ts";
import type { EventBus } from "./events.ts";

export type ModelState = "unloaded" | "loading" | "loaded" | "sleeping" | "downloading" | "downloaded";

/** The scheduler's view of the runners module: start an engine, stop or kill it. */
export interface EngineStarter {
  start(launch: EngineLaunch, onMessage: (message: RunnerMessage) => void): RunningEngine;
}
export interface RunningEngine {
  stop(timeoutMs: number): Promise<void>;
  kill(): void;
}

export interface SchedulerOptions {
  engineBin: string;
  starter: EngineStarter;
  admission: Admission;
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

const LOG_LINES_KEPT = 200;
/** a model that ran this long before crashing is not in a crash loop */
const STABLE_RUN_MS = 60_000;
const MAX_BACKOFF_MS = 30_000;
const ERROR_LOG_LINES = 12;
const PROGRESS_EVENT_INTERVAL_MS = 200;

/** One row of the model table. Only the Scheduler writes to it. */
export class ModelRecord {
  state: ModelState = "unloaded";
  /** set while a stop is under way: the process still holds its place but takes no new requests */
  stopping = false;
  /** the stop was asked for (unload, eviction, reload), so an exit is not a failure */
  stopRequested = false;
  engine?: RunningEngine;
  port?: number;
  /** counts spawns; runner messages from an earlier spawn are ignored */
  generation = 0;
  inflight = 0;
  /** requests waiting for this model to become ready: they protect it from eviction */
  waiting = 0;
  lastUsed = 0;
  failed = false;
  /** unexpected exits in a row; drives restart backoff and the crash-loop cap */
  crashes = 0;
  readyAt?: number;
  /** last sign of life while loading (a log line or progress) */
  lastActivity = 0;
  exitCode?: number;
  exitSignal: string | null = null;
  error?: string;
  progress?: Record<string, unknown>;
  info?: Record<string, unknown>;
  args: string[] = [];
  /** the model's effective preset as INI text (`status.preset`) */
  presetText = "";
  readonly logs: string[] = [];
  #lastProgressEvent = 0;

  constructor(public spec: ModelSpec) {}

  get id(): string {
    return this.spec.id;
  }
  /** every name a client may use for this model: its id and aliases */
  get names(): string[] {
    return [this.spec.id, ...this.spec.aliases];
  }
  /** the process exists (or is about to): it holds a place against --models-max */
  get alive(): boolean {
    return this.state === "loading" || this.state === "loaded" || this.state === "sleeping" || this.stopping;
  }
  get ready(): boolean {
    return (this.state === "loaded" || this.state === "sleeping") && !this.stopping &&
      this.port !== undefined;
  }
  pushLog(line: string): void {
    this.logs.push(line);
    if (this.logs.length > LOG_LINES_KEPT) this.logs.splice(0, this.logs.length - LOG_LINES_KEPT);
  }
  progressDue(now: number): boolean {
    if (now - this.#lastProgressEvent < PROGRESS_EVENT_INTERVAL_MS) return false;
    this.#lastProgressEvent = now;
    return true;
  }
}

interface QueueEntry {
  record: ModelRecord;
  waiters: number;
  /** left the queue: its model was started or it was dropped */
  done: boolean;
}

export class Scheduler {
  readonly #records = new Map<string, ModelRecord>();
  readonly #aliases = new Map<string, string>();
  #queue: QueueEntry[] = [];
  #changed = Promise.withResolvers<void>();
  #closing = false;
  readonly #opts: SchedulerOptions;

  constructor(opts: SchedulerOptions, specs: ModelSpec[]) {
    this.#opts = opts;
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

  /** Models whose process is alive, for /metrics-style reporting and tests. */
  aliveCount(): number {
    return this.records().filter((r) => r.alive).length;
  }

  queueLength(): number {
    return this.#queue.length;
  }

  // ---- requests ------------------------------------------------------------------------------------

  /**
   * Waits until the model can serve a request and holds it until the lease is released. Loads the
   * model (queueing for a place) when `autoload` allows it.
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
        if (record.ready) return this.#lease(record, opts.touch);
        if (record.state === "unloaded" && !record.stopping) {
          if (awaitedGeneration >= 0 && record.generation >= awaitedGeneration) {
            throw record.failed
              ? serverError(
                `model name=${record.id} failed to load${record.error ? `: ${record.error}` : ""}`,
              )
              : badRequest(`model name=${record.id} is not running`);
          }
          if (!opts.autoload) throw badRequest("model is not loaded");
          const maxCrashes = this.#opts.maxCrashes ?? Infinity;
          if (record.crashes >= maxCrashes) {
            throw unavailable(
              `model ${record.id} crashed ${record.crashes} times in a row; it is not restarted until ` +
                `an explicit POST /models/load. Last error: ${record.error ?? "unknown"}`,
            );
          }
          if (!entry || entry.done) {
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
        record.waiting++;
        try {
          await this.#nextChange(opts.signal);
        } finally {
          record.waiting--;
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

  #lease(record: ModelRecord, touch: boolean): Lease {
    record.inflight++;
    if (touch) record.lastUsed = performance.now();
    let released = false;
    return {
      modelId: record.id,
      port: record.port!,
      release: () => {
        if (released) return;
        released = true;
        record.inflight--;
        this.#notify();
        if (record.inflight === 0) this.#pump();
      },
    };
  }

  #enqueue(record: ModelRecord): QueueEntry {
    let entry = this.#queue.find((e) => e.record === record);
    if (entry) entry.waiters++;
    else {
      entry = { record, waiters: 1, done: false };
      this.#queue.push(entry);
    }
    return entry;
  }

  /** Starts queued models while there is room and evicts idle models to make room for the rest. */
  #pump(): void {
    // the common case, on every request's end: nobody waits, nothing to decide
    if (this.#closing || this.#queue.length === 0) return;
    this.#queue = this.#queue.filter((e) => {
      if (e.record.alive || e.record.state !== "unloaded") e.done = true;
      return !e.done;
    });
    while (this.#queue.length && this.#hasRoomFor(this.#queue[0].record)) {
      const entry = this.#queue.shift()!;
      entry.done = true;
      this.#spawn(entry.record);
    }
    let short = this.#queue.length - [...this.#records.values()].filter((r) => r.stopping).length;
    while (short > 0) {
      const victim = this.#lruVictim();
      if (!victim) break;
      this.#log(`evicting ${victim.id} (least recently used) to make room`);
      void this.#stop(victim);
      short--;
    }
  }

  #hasRoomFor(record: ModelRecord): boolean {
    const running = [...this.#records.values()].filter((r) => r.alive).map((r) => ({ id: r.id }));
    return this.#opts.admission.admits({ id: record.id }, running);
  }

  #lruVictim(): ModelRecord | undefined {
    const wanted = new Set(this.#queue.map((e) => e.record));
    let victim: ModelRecord | undefined;
    for (const r of this.#records.values()) {
      if (!r.ready || r.inflight > 0 || r.waiting > 0 || wanted.has(r)) continue;
      if (!victim || r.lastUsed < victim.lastUsed) victim = r;
    }
    return victim;
  }

  #nextChange(signal?: AbortSignal): Promise<void> {
    return abortable(this.#changed.promise, signal);
  }

  #notify(): void {
    const previous = this.#changed;
    this.#changed = Promise.withResolvers<void>();
    previous.resolve();
  }

  // ---- explicit load and unload --------------------------------------------------------------------

  /** `POST /models/load`: starts the model now, evicting an idle one if needed; does not wait for ready. */
  async load(name: string): Promise<void> {
    const record = this.find(name);
    if (!record) throw notFound("model is not found");
    record.crashes = 0;
    for (let attempt = 0;; attempt++) {
      if (record.alive) throw badRequest("model is already running");
      if (record.state === "downloading" || record.state === "downloaded") return;
      if (this.#hasRoomFor(record)) break;
      const victim = this.#lruVictim();
      if (!victim || attempt > 0) throw serverError("model limit reached, try again later");
      this.#log(`evicting ${victim.id} (least recently used) to load ${record.id}`);
      await this.#stop(victim);
    }
    this.#spawn(record);
  }

  /** `POST /models/unload`: stops the model once its requests in flight have finished. */
  unload(name: string): void {
    const record = this.find(name);
    if (!record) throw badRequest("model is not found");
    if (!record.alive || record.stopping) throw badRequest("model is not running");
    void this.#stop(record);
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
    const options: OptionMap = new Map(record.spec.options);
    for (const [flag, value] of this.#opts.passthrough) options.set(flag, value);
    options.set("--alias", record.id);
    // the gateway owns downloads: an engine only ever reads the cache
    if (options.has("--hf-repo")) options.set("--offline", true);
    return { bin: this.#opts.engineBin, args: renderArgs(options), env: this.#opts.engineEnv ?? {} };
  }

  /** The argv shown in `status.args`, as llama.cpp shows its child's. */
  argsOf(record: ModelRecord): string[] {
    const launch = this.#launchFor(record);
    return [launch.bin, ...launch.args, "--host", "127.0.0.1", "--port", String(record.port ?? 0)];
  }

  #spawn(record: ModelRecord): void {
    const generation = ++record.generation;
    Object.assign(record, {
      state: "loading",
      stopping: false,
      stopRequested: false,
      failed: false,
      exitCode: undefined,
      error: undefined,
      progress: undefined,
      port: undefined,
      lastUsed: performance.now(),
    });
    this.#log(`loading ${record.id}`);
    this.#opts.events.publish({ model: record.id, event: "model_status", data: { status: "loading" } });
    this.#notify();
    const start = () => {
      if (record.generation !== generation || record.stopRequested) return;
      const launch = this.#launchFor(record);
      try {
        record.engine = this.#opts.starter.start(launch, (m) => this.#onRunnerMessage(record, generation, m));
      } catch (err) {
        record.pushLog(`failed to start the runner: ${(err as Error).message}`);
        this.#onExit(record, 1, null);
      }
    };
    const backoff = record.crashes >= 2 ? Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (record.crashes - 2)) : 0;
    if (backoff) {
      this.#log(`${record.id} crashed ${record.crashes} times in a row: restarting in ${backoff} ms`);
    }
    const delay = (this.#opts.loadDelayMs ?? 0) + backoff;
    if (delay > 0) setTimeout(start, delay);
    else start();
    this.#watchLoad(record, generation);
  }

  /** Judges a load by its progress, not a fixed timer: only an engine that goes silent is killed. */
  #watchLoad(record: ModelRecord, generation: number): void {
    const limit = this.#opts.loadSilenceTimeoutMs;
    if (!limit) return;
    record.lastActivity = performance.now();
    const timer = setInterval(() => {
      if (record.generation !== generation || record.state !== "loading" || record.stopping) {
        clearInterval(timer);
        return;
      }
      if (!record.engine || performance.now() - record.lastActivity < limit) return;
      clearInterval(timer);
      const line = `no output for ${
        Math.round(limit / 1000)
      } s while loading: the engine looks hung, killing it`;
      this.#log(`${record.id}: ${line}`);
      record.pushLog(line);
      record.engine.kill();
    }, Math.min(1000, limit));
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
        record.lastActivity = performance.now();
        for (const line of lines) record.pushLog(line);
        this.#opts.log?.(lines.map((line) => `[${record.id}] ${line}`).join("\n"));
        // the engine's last words may trail its exit: they belong in the reason it failed
        if (record.failed && record.state === "unloaded") record.error = failureText(record);
        return;
      }
      case "progress": {
        record.lastActivity = performance.now();
        if (record.state === "sleeping") record.state = "loading";
        record.progress = m.progress;
        const now = performance.now();
        const last = typeof m.progress.value === "number" && m.progress.value >= 1;
        if (record.progressDue(now) || last) {
          this.#opts.events.publish({
            model: record.id,
            event: "status_change",
            data: { status: "loading", progress: m.progress },
          });
        }
        break;
      }
      case "ready": {
        record.state = "loaded";
        record.readyAt ??= performance.now();
        record.progress = undefined;
        const first = Object.keys(m.info).length > 0;
        if (first) record.info = m.info;
        this.#log(`${record.id} is ready on port ${record.port}`);
        this.#opts.events.publish({
          model: record.id,
          event: "status_change",
          // `args` (an extension) carries the port the engine got, so a listener's copy stays current
          data: first
            ? { status: "loaded", info: m.info, args: record.args }
            : { status: "loaded", args: record.args },
        });
        break;
      }
      case "sleeping":
        record.state = "sleeping";
        this.#opts.events.publish({ model: record.id, event: "status_change", data: { status: "sleeping" } });
        break;
      case "exit":
        this.#onExit(record, m.code, m.signal);
        return;
      case "hello":
        return;
    }
    this.#notify();
  }

  #onExit(record: ModelRecord, code: number, signal: string | null): void {
    const expected = record.stopRequested;
    const exitCode = signal && code === 0 ? 1 : code;
    const ranStably = record.readyAt !== undefined && performance.now() - record.readyAt > STABLE_RUN_MS;
    const crashed = !expected && (exitCode !== 0 || signal !== null);
    record.crashes = !crashed ? 0 : ranStably ? 1 : record.crashes + 1;
    record.readyAt = undefined;
    Object.assign(record, {
      state: "unloaded",
      stopping: false,
      engine: undefined,
      port: undefined,
      progress: undefined,
      info: undefined,
      exitCode,
      failed: crashed,
    });
    record.exitSignal = signal;
    record.error = record.failed ? failureText(record) : undefined;
    this.#log(
      `${record.id} ${expected ? "stopped" : "exited"} (code ${exitCode}${signal ? `, ${signal}` : ""})`,
    );
    const data: Record<string, unknown> = { status: "unloaded", exit_code: exitCode };
    if (record.failed) Object.assign(data, { failed: true, error: record.error });
    this.#opts.events.publish({ model: record.id, event: "status_change", data });
    this.#notify();
    this.#pump();
  }

  /** Graceful stop: no new requests, in-flight ones may finish (within stop-timeout), then the engine stops. */
  async #stop(record: ModelRecord): Promise<void> {
    if (!record.alive) return;
    const timeoutMs = record.spec.stopTimeoutS * 1000;
    if (!record.stopping) {
      record.stopping = true;
      record.stopRequested = true;
      this.#notify();
      if (!record.engine) {
        // still inside the load delay: nothing was started
        record.generation++;
        this.#onExit(record, 0, null);
        return;
      }
      if (record.state === "loading") {
        record.engine.kill();
      } else {
        const deadline = performance.now() + timeoutMs;
        while (record.inflight > 0 && performance.now() < deadline && record.engine) {
          await Promise.race([this.#nextChange(), sleep(Math.max(0, deadline - performance.now()))]);
        }
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
      hidden: false,
    });
    record.state = "downloading";
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
    if (record?.state !== "downloading") return;
    record.state = "downloaded";
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
    await this.#stop(record);
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
        if (record.alive) stops.push(this.#stop(record).then(() => void this.#records.delete(id)));
        else this.#records.delete(id);
      } else if (!sameLaunch(record.spec, spec) && record.alive) {
        stops.push(
          this.#stop(record).then(() => {
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
        if (record.state === "downloaded") record.state = "unloaded";
        if (!record.alive) Object.assign(record, { failed: false, exitCode: undefined, error: undefined });
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
    this.#notify();
    await Promise.all(this.records().map((r) => this.#stop(r)));
  }

  #log(line: string): void {
    this.#opts.log?.(line);
  }
}

/** Why a model failed: how its engine ended and its last log lines. */
function failureText(record: ModelRecord): string {
  const how = `exit code ${record.exitCode}${record.exitSignal ? ` (${record.exitSignal})` : ""}`;
  return `${how}; last log lines:\n${record.logs.slice(-ERROR_LOG_LINES).join("\n")}`;
}

function sameLaunch(a: ModelSpec, b: ModelSpec): boolean {
  if (a.options.size !== b.options.size) return false;
  for (const [k, v] of a.options) if (b.options.get(k) !== v) return false;
  return true;
}
