/** The gateway's configuration, parsed from llama-server-style flags and their env forms. */
import type { ApiKey } from "./auth.ts";
import type { FeatureSettings } from "./features/settings.ts";
import type { OptionMap } from "./flags/flags.ts";

/** The two web pages: Switchyard's own, and llama.cpp's web UI (built with npm into the cache). */
export type WebuiPage = "switchyard" | "llamacpp";

export interface GatewayConfig {
  host: string;
  port: number;
  modelsDir?: string;
  modelsPreset?: string;
  /** `-hf owner/repo` whose root holds preset.ini: that file is the models preset (llama.cpp's "remote preset") */
  remotePreset?: string;
  /**
   * llama-server's single-model command line (`-m`, `-hf`, `--hf-file`, `-mu`, with `--alias`, `--tags`,
   * `--mmproj`): that model's identity flags. It joins the model table as the default model. With
   * `remotePreset` also set, it applies only when the repo turns out to have no preset.ini.
   */
  singleModel?: OptionMap;
  /** `AIP_MODE=PREDICTION`: Vertex AI's predict route, served on `AIP_HTTP_PORT`, as llama-server does */
  gcp?: GcpCompat;
  /** 0 = unlimited */
  modelsMax: number;
  autoload: boolean;
  /** keys accepted for every endpoint but /health (empty: no auth) */
  apiKeys: ApiKey[];
  /** some keys are admin keys: model management then needs one */
  adminKeysConfigured: boolean;
  serverBin?: string;
  offline: boolean;
  /** comma-separated origins, as llama-server's --cors-origins; undefined: no CORS headers */
  corsOrigins?: string;
  /** --timeout: seconds a proxied request may take */
  timeoutS: number;
  apiPrefix: string;
  /** `--ui`/`--webui` (default) or `--no-ui`/`--no-webui`: whether any web page is served */
  uiEnabled: boolean;
  /** `--webui llamacpp|switchyard`: the page `/` shows; the other stays at `/llamacpp/` or `/switchyard/` */
  webui: WebuiPage;
  /** `--path DIR`: a folder served at `/` instead, as llama-server serves it */
  staticPath?: string;
  /** `--tools`, `--mcp-servers-*`, `--ui-mcp-proxy`, `--agent`: `/tools` and `/cors-proxy`, served by the gateway */
  features: FeatureSettings;
  /** llama-server options given to the gateway that every model instance inherits */
  passthrough: OptionMap;
  /** LLAMA_SERVER_DEBUG_FAKE_TIMING: 2 s before each load and each proxied request, as llama.cpp does */
  fakeTiming: boolean;
  /** max request body in bytes */
  bodyLimit: number;
  /** runners started ahead of need, to hide a runner's start-up from cold start */
  spareRunners: number;
  /** requests that may wait for one model; more get 503 with Retry-After */
  queueMax: number;
  /** a loading engine silent this long (no log, no progress) is considered hung and killed */
  loadSilenceTimeoutS: number;
  /** consecutive crashes after which a model is not restarted until an explicit load */
  maxCrashes: number;
  /** `--models-memory`: budgets per device (`auto`, `20G`, `host=12G,CUDA0=22G`), its syntax checked */
  modelsMemory: string;
  /** `--models-ttl`: seconds idle before a model is unloaded (0 = never), unless its preset says */
  modelsTtlS: number;
  /** metrics and activity recorded, engines started with `--metrics` (off: `--no-metrics`) */
  metrics: boolean;
  /** `--metrics` (or LLAMA_ARG_ENDPOINT_METRICS) was given: every engine's own page is served */
  engineMetricsAsked: boolean;
  /** `--log-format`: the gateway's log lines as text, or one JSON object a line */
  logFormat: LogFormat;
  /** `--swap-kv-cache`: a model stopped on purpose keeps its engine's KV cache on disk for its next load */
  swapKvCache: boolean;
  /** `--swap-kv-cache-max`: bytes the saved caches may take in all; least recently used go first */
  swapKvCacheMaxBytes: number;
  /** `--swap-kv-cache-dir`: where they are kept; undefined: `kv-cache/` in the gateway's cache dir */
  swapKvCacheDir?: string;
}

export type LogFormat = "text" | "json";

/** LLAMA_SERVER_DEBUG_FAKE_TIMING: llama.cpp's router waits this long before each load and each proxied request. */
export const FAKE_TIMING_DELAY_MS = 2000;

/** Google Cloud Vertex AI's container settings (`AIP_*`), as llama-server reads them. */
export interface GcpCompat {
  predictRoute: string;
  /** serves `/health` here too; undefined: only at `/health` */
  healthRoute?: string;
  port: number;
}

/** `AIP_*` as llama.cpp reads them; undefined unless `AIP_MODE=PREDICTION`. */
export function gcpCompatFromEnv(env: Record<string, string | undefined>): GcpCompat | undefined {
  if (env.AIP_MODE !== "PREDICTION") return undefined;
  const route = (name: string) => {
    const value = env[name];
    if (!value) return undefined;
    return value.startsWith("/") ? value : `/${value}`;
  };
  return {
    predictRoute: route("AIP_PREDICT_ROUTE") ?? "/predict",
    healthRoute: route("AIP_HEALTH_ROUTE"),
    port: Number(env.AIP_HTTP_PORT || "8080"),
  };
}
