/**
 * The gateway's observability, wired once per gateway (router/core.ts): the metric families, the
 * activity ring, the tap every proxied route gets, and the page `GET /metrics` serves, which is the
 * gateway's families followed by every running engine's own, each sample labelled with its model.
 * Absent with `--no-metrics`: then no route is tapped at all.
 */
import type { KvCacheStats } from "../kvcache/port.ts";
import { registerKvCacheMetrics } from "./kv_cache.ts";
import type { MiddlewareHandler } from "hono";
import { ActivityRing } from "../activity/ring.ts";
import type { EventBus } from "../scheduler/events.ts";
import type { UpstreamPool } from "../upstream/http1.ts";
import {
  ENGINE_PAGE_TIMEOUT_MS,
  type EnginePage,
  gatherEnginePages,
  type PageFetcher,
  pageFetcher,
} from "./engines.ts";
import {
  escapeLabelValue,
  type Family,
  keepModels,
  mergeFamilies,
  relabel,
  renderFamilies,
} from "./exposition.ts";
import { catalogModel, GatewayMetrics, type ModelTable } from "./families.ts";
import { watchLoads } from "./model_events.ts";
import { type FinishedRequest, tapRequests } from "./tap.ts";

export interface ObserverOptions {
  table: ModelTable;
  events: EventBus;
  upstream: UpstreamPool;
  /** `--api-prefix`: engines serve their pages under it too */
  apiPrefix: string;
  /** how long a scrape waits for each engine's page */
  enginePageTimeoutMs?: number;
  /** how engines' pages are read (tests give a slow one) */
  fetchPage?: PageFetcher;
  /** requests `/activity` keeps */
  activityKept?: number;
  /** `--swap-kv-cache`'s totals, when it is on */
  kvCacheStats?: () => KvCacheStats;
}

export class Observer {
  readonly metrics: GatewayMetrics;
  readonly activity: ActivityRing;
  readonly #table: ModelTable;
  readonly #fetchPage: PageFetcher;
  readonly #timeoutMs: number;
  readonly #sink = (request: FinishedRequest) => {
    this.metrics.requestFinished(request);
    this.activity.push(request);
  };

  constructor(opts: ObserverOptions) {
    this.#table = opts.table;
    this.metrics = new GatewayMetrics(opts.table);
    if (opts.kvCacheStats) registerKvCacheMetrics(this.metrics.registry, opts.kvCacheStats);
    this.activity = new ActivityRing(opts.activityKept);
    this.#fetchPage = opts.fetchPage ?? pageFetcher(opts.upstream, `${opts.apiPrefix}/metrics`);
    this.#timeoutMs = opts.enginePageTimeoutMs ?? ENGINE_PAGE_TIMEOUT_MS;
    watchLoads(opts.events, this.metrics);
  }

  /**
   * The middleware for one proxied route (`endpoint` is its path pattern, a bounded label);
   * `countsTokens`: its answers carry token usage, which is then read from their last bytes.
   */
  tap(endpoint: string, countsTokens: boolean): MiddlewareHandler {
    return tapRequests(endpoint, countsTokens, this.#sink);
  }

  /** The content type of `page()`. */
  get contentType(): string {
    return this.metrics.registry.contentType;
  }

  /**
   * The gateway's page: its own families, then the engines' (of the models `visible` accepts, if given), each
   * engine's samples labelled with its model. An engine that fails to answer in time is left out,
   * and `switchyard_engine_metrics_up` says so.
   */
  async page(visible?: (model: string) => boolean): Promise<string> {
    const targets = this.#table.records()
      .filter((r) => r.ready && catalogModel(r) && (!visible || visible(r.id)))
      .map((r) => ({ model: r.id, port: r.port! }));
    const [own, engines] = await Promise.all([
      this.metrics.registry.metrics(),
      gatherEnginePages(targets, this.#fetchPage, this.#timeoutMs),
    ]);
    return (visible ? keepModels(own, visible) : own) + renderFamilies(engineFamilies(engines));
  }
}

/** The engines' pages merged family by family, with the up gauge of each engine's scrape first. */
function engineFamilies(pages: readonly EnginePage[]): Iterable<Family> {
  const up: Family = {
    name: "switchyard_engine_metrics_up",
    help: "1 when the model's engine gave its own /metrics page to this scrape in time, else 0",
    type: "gauge",
    samples: [],
  };
  const merged = new Map<string, Family>([[up.name, up]]);
  for (const page of pages) {
    const families = "page" in page ? relabel(page.page, page.model) : [];
    mergeFamilies(merged, families);
    up.samples.push(`${up.name}{model="${escapeLabelValue(page.model)}"} ${"page" in page ? 1 : 0}`);
  }
  return up.samples.length ? merged.values() : [];
}
