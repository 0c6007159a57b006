/**
 * The families fed by every proxied request (requests, their duration, time to first token, queue
 * wait, tokens), kept by the gateway itself: a finished request costs two map lookups and a few
 * additions. prom-client's own Counter and Histogram validate and hash a labels object, and build a
 * closure, on every call, which profiled at about a quarter of what the metrics cost the gateway under
 * `/tokenize` load. prom-client still writes the page: each family here is a metric of its registry
 * whose `get()` answers in the shape prom-client's own classes do, read only when scraped.
 */
import type { Registry } from "prom-client";
import type { FinishedRequest } from "./tap.ts";

/** One histogram series: a count per bucket (not cumulative), the sum and the count. */
class Buckets {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    this.sum += value;
    this.count++;
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]) {
        this.counts[i]++;
        return;
      }
    }
  }
}

interface EndpointSeries {
  labels: { model: string; endpoint: string };
  duration: Buckets;
  /** requests by HTTP status */
  statuses: Map<number, number>;
}

interface ModelSeries {
  endpoints: Map<string, EndpointSeries>;
  firstToken: Buckets;
  queueWait: Buckets;
  promptTokens: number;
  generatedTokens: number;
}

/** A value as prom-client's `get()` gives it (`metricName` for a histogram's `_bucket`, `_sum`, `_count`). */
interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** What a registry asks of a metric: prom-client's `MetricObjectWithValues`, plus what `registerMetric` reads. */
interface CollectedMetric {
  name: string;
  help: string;
  type: "counter" | "histogram";
  aggregator: "sum";
  get(): { name: string; help: string; type: string; aggregator: string; values: MetricValue[] };
}

export interface RequestBuckets {
  duration: readonly number[];
  firstToken: readonly number[];
  queueWait: readonly number[];
}

function histogramValues(name: string, labels: Record<string, string>, h: Buckets): MetricValue[] {
  const values: MetricValue[] = [];
  let cumulative = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    cumulative += h.counts[i];
    values.push({ labels: { le: h.bounds[i], ...labels }, value: cumulative, metricName: `${name}_bucket` });
  }
  values.push({ labels: { le: "+Inf", ...labels }, value: h.count, metricName: `${name}_bucket` });
  values.push({ labels, value: h.sum, metricName: `${name}_sum` });
  values.push({ labels, value: h.count, metricName: `${name}_count` });
  return values;
}

export class RequestFamilies {
  readonly #models = new Map<string, ModelSeries>();
  readonly #buckets: RequestBuckets;

  constructor(buckets: RequestBuckets) {
    this.#buckets = buckets;
  }

  /** A proxied request ended (its whole answer relayed, or its error sent). */
  finished(r: FinishedRequest): void {
    const model = r.model ?? "";
    const series = this.#modelSeries(model);
    let endpoint = series.endpoints.get(r.endpoint);
    if (endpoint === undefined) {
      endpoint = {
        labels: { model, endpoint: r.endpoint },
        duration: new Buckets(this.#buckets.duration),
        statuses: new Map(),
      };
      series.endpoints.set(r.endpoint, endpoint);
    }
    endpoint.statuses.set(r.status, (endpoint.statuses.get(r.status) ?? 0) + 1);
    endpoint.duration.observe(r.durationMs / 1000);
    if (r.model === undefined) return;
    if (r.queueWaitMs !== undefined) series.queueWait.observe(r.queueWaitMs / 1000);
    if (r.streamed && r.firstChunkMs !== undefined) series.firstToken.observe(r.firstChunkMs / 1000);
    if (r.usage.prompt) series.promptTokens += r.usage.prompt;
    if (r.usage.generated) series.generatedTokens += r.usage.generated;
  }

  #modelSeries(model: string): ModelSeries {
    let series = this.#models.get(model);
    if (series === undefined) {
      series = {
        endpoints: new Map(),
        firstToken: new Buckets(this.#buckets.firstToken),
        queueWait: new Buckets(this.#buckets.queueWait),
        promptTokens: 0,
        generatedTokens: 0,
      };
      this.#models.set(model, series);
    }
    return series;
  }

  /** `switchyard_requests_total{model,endpoint,status}` */
  requests(name: string, help: string): CollectedMetric {
    return this.#metric(
      name,
      help,
      "counter",
      () =>
        this.#endpoints().flatMap((e) =>
          [...e.statuses].map(([status, value]) => ({
            labels: { ...e.labels, status: String(status) },
            value,
          }))
        ),
    );
  }

  /** `switchyard_request_duration_seconds{model,endpoint}` */
  durations(name: string, help: string): CollectedMetric {
    return this.#metric(
      name,
      help,
      "histogram",
      () => this.#endpoints().flatMap((e) => histogramValues(name, e.labels, e.duration)),
    );
  }

  /** `switchyard_time_to_first_token_seconds{model}` (streamed answers only) */
  firstTokens(name: string, help: string): CollectedMetric {
    return this.#perModel(name, help, (s) => s.firstToken);
  }

  /** `switchyard_queue_wait_seconds{model}` */
  queueWaits(name: string, help: string): CollectedMetric {
    return this.#perModel(name, help, (s) => s.queueWait);
  }

  /** `switchyard_tokens_total{model,type}` */
  tokens(name: string, help: string): CollectedMetric {
    return this.#metric(name, help, "counter", () =>
      this.#routed().flatMap(([model, s]) => [
        ...(s.promptTokens ? [{ labels: { model, type: "prompt" }, value: s.promptTokens }] : []),
        ...(s.generatedTokens ? [{ labels: { model, type: "generated" }, value: s.generatedTokens }] : []),
      ]));
  }

  /** The models requests were routed to (not the empty label of those that were not). */
  #routed(): [string, ModelSeries][] {
    return [...this.#models].filter(([model]) => model !== "");
  }

  #endpoints(): EndpointSeries[] {
    return [...this.#models.values()].flatMap((s) => [...s.endpoints.values()]);
  }

  #perModel(name: string, help: string, of: (s: ModelSeries) => Buckets): CollectedMetric {
    return this.#metric(
      name,
      help,
      "histogram",
      () =>
        this.#routed().flatMap(([model, s]) => of(s).count ? histogramValues(name, { model }, of(s)) : []),
    );
  }

  #metric(
    name: string,
    help: string,
    type: "counter" | "histogram",
    values: () => MetricValue[],
  ): CollectedMetric {
    return {
      name,
      help,
      type,
      aggregator: "sum",
      get: () => ({ name, help, type, aggregator: "sum", values: values() }),
    };
  }
}

/** Adds a family of `RequestFamilies` to `registry`, which writes it as it writes its own metrics. */
export function register(registry: Registry, metric: CollectedMetric): void {
  registry.registerMetric(metric as unknown as Parameters<Registry["registerMetric"]>[0]);
}
