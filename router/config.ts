/** The gateway's configuration, parsed from llama-server-style flags and their env forms. */
import type { ApiKey } from "./auth.ts";
import type { OptionMap } from "./flags/flags.ts";

export interface GatewayConfig {
  host: string;
  port: number;
  modelsDir?: string;
  modelsPreset?: string;
  /** `-hf owner/repo` whose root holds preset.ini: that file is the models preset (llama.cpp's "remote preset") */
  remotePreset?: string;
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
  uiEnabled: boolean;
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
}

/** LLAMA_SERVER_DEBUG_FAKE_TIMING: llama.cpp's router waits this long before each load and each proxied request. */
export const FAKE_TIMING_DELAY_MS = 2000;
