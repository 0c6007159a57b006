/** What the HTTP layer needs from the rest of the gateway. Routes get this, nothing more. */
import type { GatewayConfig } from "./config.ts";
import type { FeatureHost } from "./features/host.ts";
import type { ModelPuller } from "./hub/puller.ts";
import type { GatewayMemory } from "./memory/port.ts";
import type { Observer } from "./metrics/observer.ts";
import type { EventBus } from "./scheduler/events.ts";
import type { Scheduler } from "./scheduler/scheduler.ts";
import type { UpstreamPool } from "./upstream/http1.ts";

export interface GatewayDeps {
  config: GatewayConfig;
  scheduler: Scheduler;
  /** pulls models from the Hub into the cache and the model table */
  puller: ModelPuller;
  /** kept-alive connections to the engines */
  upstream: UpstreamPool;
  events: EventBus;
  /**
   * The id of the model a single-model command line (`-m`, `-hf`) named: requests without a `model`
   * the gateway knows go there, as llama-server ignores the field.
   */
  defaultModel?: string;
  /** serves `/tools` and `/cors-proxy` when their flags were given (router/features/) */
  features?: FeatureHost;
  /** `b<N>-<hash>` of the engine */
  buildInfo: string;
  /** devices, budgets and projections (`/props`' `memory`); absent where only `--models-max` counts */
  memory?: GatewayMemory;
  /** metrics, the activity ring and the tap on proxied routes; absent with `--no-metrics` */
  observer?: Observer;
  /** re-reads every model source and applies it to the model table */
  reload(): Promise<void>;
  log(line: string): void;
}
