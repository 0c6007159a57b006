/**
 * The gateway's own metric families, in a prom-client registry of their own. Counters and histograms
 * are fed as requests finish and models load and unload; the gauges are read from the model table
 * when a scrape asks, so they are never stale and cost nothing between scrapes. Every `model` label
 * is a model-table id (see `catalogModel`): a name a client made up never becomes a label value.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ModelRecord } from "../scheduler/record.ts";
import type { FinishedRequest } from "./tap.ts";
import { register, RequestFamilies } from "./request_families.ts";

/** What the gauges read: the model table as it is at scrape time. */
export interface ModelTable {
  records(): ModelRecord[];
}

/** How a load ended: the engine became ready, failed (a crash, out of memory), or was stopped first. */
export type LoadResult = "success" | "failure" | "cancelled";

/** The states `switchyard_models` counts; a model whose last load or run failed counts as `failed`. */
export const MODEL_STATES = [
  "unloaded",
  "loading",
  "loaded",
  "sleeping",
  "downloading",
  "downloaded",
  "failed",
] as const;
export type CountedState = typeof MODEL_STATES[number];

const REQUEST_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const FIRST_TOKEN_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const QUEUE_SECONDS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const LOAD_SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** A model of the catalog (not a download entry, whose name a client chose): its id may be a label. */
export function catalogModel(record: Pick<ModelRecord, "state">): boolean {
  return record.state !== "downloading" && record.state !== "downloaded";
}

/** The state `switchyard_models` counts a record under. */
export function countedState(record: Pick<ModelRecord, "state" | "failed">): CountedState {
  return record.state === "unloaded" && record.failed ? "failed" : record.state;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #requests = new RequestFamilies({
    duration: REQUEST_SECONDS,
    firstToken: FIRST_TOKEN_SECONDS,
    queueWait: QUEUE_SECONDS,
  });
  readonly loads: Counter<"model" | "result">;
  readonly loadSeconds: Histogram<"model">;
  readonly unloads: Counter<"model" | "reason">;

  constructor(table: ModelTable) {
    const registers = [this.registry];
    const families = this.#requests;
    register(
      this.registry,
      families.requests(
        "switchyard_requests_total",
        "Proxied requests by the model they were routed to (empty: none), endpoint and HTTP status",
      ),
    );
    register(
      this.registry,
      families.durations(
        "switchyard_request_duration_seconds",
        "Time from a proxied request's arrival to the end of its answer",
      ),
    );
    register(
      this.registry,
      families.firstTokens(
        "switchyard_time_to_first_token_seconds",
        "Time from a streamed request's arrival to its first streamed chunk",
      ),
    );
    register(
      this.registry,
      families.queueWaits(
        "switchyard_queue_wait_seconds",
        "Time a request waited for its model to serve it (queued for room, loading included)",
      ),
    );
    new Gauge({
      name: "switchyard_queue_waiting",
      help: "Requests waiting for the model now",
      labelNames: ["model"],
      registers,
      collect() {
        this.reset();
        for (const r of table.records()) if (catalogModel(r)) this.set({ model: r.id }, r.waiting);
      },
    });
    register(
      this.registry,
      families.tokens(
        "switchyard_tokens_total",
        "Tokens by the engine's usage or timings in each answer: prompt (cached ones included) or generated",
      ),
    );
    this.loads = new Counter({
      name: "switchyard_model_loads_total",
      help:
        "Model loads by how they ended: success, failure (crash, out of memory) or cancelled (stopped first)",
      labelNames: ["model", "result"],
      registers,
    });
    this.loadSeconds = new Histogram({
      name: "switchyard_model_load_duration_seconds",
      help: "Time from a model's admission to its engine being ready",
      labelNames: ["model"],
      buckets: LOAD_SECONDS,
      registers,
    });
    this.unloads = new Counter({
      name: "switchyard_model_unloads_total",
      help: "Engine exits by reason: requested, evicted, idle, reload, crashed, memory, shutdown",
      labelNames: ["model", "reason"],
      registers,
    });
    new Gauge({
      name: "switchyard_models",
      help: "Models in the table by state (failed: unloaded after a failure)",
      labelNames: ["state"],
      registers,
      collect() {
        const counts = new Map<CountedState, number>(MODEL_STATES.map((s) => [s, 0]));
        for (const r of table.records()) counts.set(countedState(r), counts.get(countedState(r))! + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: "switchyard_model_memory_bytes",
      help:
        "Memory a running model holds on each device: what it was admitted with, or what its engine logged",
      labelNames: ["model", "device"],
      registers,
      collect() {
        this.reset();
        for (const r of table.records()) {
          if (!r.alive) continue;
          for (const [device, bytes] of Object.entries(r.claim)) this.set({ model: r.id, device }, bytes);
        }
      },
    });
  }

  /** A proxied request ended (its whole answer relayed, or its error sent). */
  requestFinished(r: FinishedRequest): void {
    this.#requests.finished(r);
  }

  loadEnded(model: string, result: LoadResult, seconds?: number): void {
    this.loads.inc({ model, result });
    if (result === "success" && seconds !== undefined) this.loadSeconds.observe({ model }, seconds);
  }

  unloaded(model: string, reason: string): void {
    this.unloads.inc({ model, reason });
  }
}
