/**
 * Parses the gateway's command line the way llama-server parses it in router mode: router flags
 * (`--models-dir`, `--models-max`...) configure the gateway, every other llama-server flag is
 * inherited by each model instance, and router flags also come from their `LLAMA_ARG_*` env forms.
 */
import {
  isFalsey,
  isTruthy,
  lookupFlag,
  type OptionMap,
  type ResolvedFlag,
  switchValue,
} from "./flags/flags.ts";
import { type ApiKey, parseKeyFile } from "./auth.ts";
import { FEATURE_FLAGS, featureSettings } from "./features/settings.ts";
import { type GatewayConfig, gcpCompatFromEnv, type LogFormat, type WebuiPage } from "./config.ts";
import { MemorySpecError, parseMemorySpec } from "./memory/budget.ts";
import { parseSize, SizeError } from "./memory/size.ts";

export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CliError";
  }
}

/** Flags the gateway owns: read here, never passed to a model instance. */
const ROUTER_ONLY = new Set([
  "--host",
  "--port",
  "--models-dir",
  "--models-max",
  "--models-preset",
  "--models-autoload",
  "--api-key",
  "--api-key-file",
  "--ssl-key-file",
  "--ssl-cert-file",
  // canonical spelling of --ui (the table's last one): with "--ui" here, --no-ui reached the engines instead
  "--webui",
  "--path",
  // the gateway serves /tools and /cors-proxy; in each engine they would only start MCP servers and tool
  // runtimes nobody can reach
  ...FEATURE_FLAGS,
]);
/**
 * Flags that name one model and its identity. In router mode each model has its own; given to the
 * gateway they make llama-server's single-model command line (`-m model.gguf`), whose model becomes
 * the default one.
 */
const MODEL_IDENTITY = new Set([
  "--model",
  "--model-url",
  "--hf-file",
  "--mmproj",
  "--mmproj-url",
  "--alias",
  "--tags",
]);
/** Identity flags that are a model source on their own (the others only describe one). */
const MODEL_SOURCES = ["--model", "--model-url", "--hf-file"];
/** Env forms of the model source flags, as llama-server reads them. */
const MODEL_ENV: Record<string, string> = {
  "--model": "LLAMA_ARG_MODEL",
  "--model-url": "LLAMA_ARG_MODEL_URL",
  "--hf-file": "LLAMA_ARG_HF_FILE",
};

/** Switchyard's own flags, not llama-server's. */
const OWN_FLAGS: Record<string, keyof OwnValues> = {
  "--server-bin": "serverBin",
  "--spare-runners": "spareRunners",
  "--body-limit": "bodyLimit",
  "--admin-api-key": "adminApiKey",
  "--admin-api-key-file": "adminApiKeyFile",
  "--queue-max": "queueMax",
  "--load-silence-timeout": "loadSilenceTimeout",
  "--max-crashes": "maxCrashes",
  "--models-memory": "modelsMemory",
  "--models-ttl": "modelsTtl",
  "--log-format": "logFormat",
  "--swap-kv-cache-max": "swapKvCacheMax",
  "--swap-kv-cache-dir": "swapKvCacheDir",
};
/** Switchyard's own switches. */
const OWN_SWITCHES = new Set(["--no-metrics", "--swap-kv-cache"]);
interface OwnValues {
  serverBin?: string;
  spareRunners?: string;
  bodyLimit?: string;
  adminApiKey?: string;
  adminApiKeyFile?: string;
  queueMax?: string;
  loadSilenceTimeout?: string;
  maxCrashes?: string;
  modelsMemory?: string;
  modelsTtl?: string;
  logFormat?: string;
  swapKvCacheMax?: string;
  swapKvCacheDir?: string;
}

export interface ParsedCli {
  config: GatewayConfig;
  /** warnings to log at start-up */
  warnings: string[];
  help: boolean;
  version: boolean;
}

export function parseCli(argv: string[], env: Record<string, string | undefined>): ParsedCli {
  const router = new Map<string, string | boolean>();
  const passthrough: OptionMap = new Map();
  const own: OwnValues = {};
  const single: OptionMap = new Map();
  const warnings: string[] = [];
  const switches = new Set<string>();
  let help = false, version = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const spelling = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const takeValue = (): string => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) throw new CliError(`error: missing value for argument: ${spelling}`);
      return argv[++i];
    };
    if (spelling === "-h" || spelling === "--help" || spelling === "--usage") {
      help = true;
      continue;
    }
    if (spelling === "--version") {
      version = true;
      continue;
    }
    if (OWN_SWITCHES.has(spelling)) {
      if (inline !== undefined) throw new CliError(`error: ${spelling} takes no value (got '${inline}')`);
      switches.add(spelling);
      continue;
    }
    const ownFlag = OWN_FLAGS[spelling];
    if (ownFlag) {
      own[ownFlag] = takeValue();
      continue;
    }
    const resolved = lookupFlag(spelling);
    if (!resolved) throw new CliError(`error: invalid argument: ${arg}`);
    // llama-server's `--webui` is a switch; a page name after it also picks what `/` shows
    const page = resolved.option.flag === "--webui" && !resolved.negated
      ? pageName(inline ?? argv[i + 1])
      : undefined;
    if (page && inline === undefined) i++;
    const value = page ?? readValue(resolved, spelling, takeValue, inline);
    const flag = resolved.option.flag;
    if (ROUTER_ONLY.has(flag) || flag === "--hf-repo") router.set(flag, value);
    else if (MODEL_IDENTITY.has(flag)) single.set(flag, value);
    else {
      passthrough.set(flag, value);
      if (
        flag === "--offline" || flag === "--timeout" || flag === "--api-prefix" || flag === "--cors-origins"
      ) {
        router.set(flag, value);
      }
    }
  }

  const fromEnv = (flag: string, envName: string): string | boolean | undefined => {
    if (router.has(flag)) return router.get(flag);
    const raw = env[envName];
    if (raw === undefined || raw === "") return undefined;
    const resolved = lookupFlag(flag);
    if (resolved && (resolved.option.def.kind === "bool" || resolved.option.def.kind === "none")) {
      if (!isTruthy(raw) && !isFalsey(raw)) {
        throw new CliError(`error: invalid boolean value for ${envName}: ${raw}`);
      }
      return isTruthy(raw);
    }
    return raw;
  };
  const str = (flag: string, envName: string): string | undefined => {
    const v = fromEnv(flag, envName);
    return typeof v === "string" ? v : undefined;
  };
  const bool = (flag: string, envName: string): boolean | undefined => {
    const v = fromEnv(flag, envName);
    return typeof v === "boolean" ? v : undefined;
  };
  const int = (flag: string, envName: string, fallback: number): number => {
    const v = str(flag, envName);
    if (v === undefined) return fallback;
    if (!/^-?\d+$/.test(v.trim())) throw new CliError(`error: ${flag} expects an integer, got '${v}'`);
    return Number(v);
  };

  const adminKeys = [
    ...keyList(own.adminApiKey ?? env.SWITCHYARD_ADMIN_API_KEY, true),
    ...keysFromFile(own.adminApiKeyFile, "--admin-api-key-file", true),
  ];
  const apiKeys = [
    ...keyList(str("--api-key", "LLAMA_API_KEY"), adminKeys.length === 0),
    ...keysFromFile(
      str("--api-key-file", "LLAMA_ARG_API_KEY_FILE"),
      "--api-key-file",
      adminKeys.length === 0,
    ),
    ...adminKeys,
  ];

  const modelsMax = int("--models-max", "LLAMA_ARG_MODELS_MAX", 4);
  for (const [flag, envName] of Object.entries(MODEL_ENV)) {
    if (!single.has(flag) && env[envName]) single.set(flag, env[envName]!);
  }
  const hfRepo = str("--hf-repo", "LLAMA_ARG_HF_REPO");
  const singleSource = MODEL_SOURCES.some((f) => single.has(f));
  if (hfRepo && singleSource && !single.has("--hf-file")) {
    throw new CliError("error: give either -m/-mu or -hf, not both");
  }
  if (hfRepo && singleSource) single.set("--hf-repo", hfRepo);
  if (single.size && !singleSource && !hfRepo) {
    warnings.push(
      `${
        [...single.keys()].join(", ")
      }: these describe the model of a single-model command line (-m, -hf, -mu), ` +
        "and none was given, so they are ignored",
    );
  }
  const config: GatewayConfig = {
    host: str("--host", "LLAMA_ARG_HOST") ?? "127.0.0.1",
    port: int("--port", "LLAMA_ARG_PORT", 8080),
    modelsDir: str("--models-dir", "LLAMA_ARG_MODELS_DIR"),
    modelsPreset: str("--models-preset", "LLAMA_ARG_MODELS_PRESET"),
    // `-hf owner/repo` alone: a remote preset when the repo has preset.ini, else the single model
    remotePreset: hfRepo && !singleSource ? hfRepo : undefined,
    singleModel: singleSource || hfRepo ? single : undefined,
    gcp: gcpCompatFromEnv(env),
    modelsMax: modelsMax < 0 ? 0 : modelsMax,
    autoload: fromEnv("--models-autoload", "LLAMA_ARG_MODELS_AUTOLOAD") !== false,
    apiKeys,
    adminKeysConfigured: adminKeys.length > 0,
    serverBin: own.serverBin ?? env.LLAMA_SERVER_BIN,
    offline: fromEnv("--offline", "LLAMA_ARG_OFFLINE") === true,
    corsOrigins: str("--cors-origins", "LLAMA_ARG_CORS_ORIGINS"),
    timeoutS: int("--timeout", "LLAMA_ARG_TIMEOUT", 3600),
    apiPrefix: (str("--api-prefix", "LLAMA_ARG_API_PREFIX") ?? "").replace(/\/+$/, ""),
    ...webuiSetting(
      router.get("--webui") ?? pageName(env.LLAMA_ARG_UI) ?? fromEnv("--webui", "LLAMA_ARG_UI"),
    ),
    staticPath: str("--path", "LLAMA_ARG_STATIC_PATH"),
    features: featureSettings({
      tools: str("--tools", "LLAMA_ARG_TOOLS"),
      toolsRuntime: str("--tools-runtime", "LLAMA_ARG_TOOLS_RUNTIME"),
      mcpServersConfig: str("--mcp-servers-config", "LLAMA_ARG_MCP_SERVERS_CONFIG"),
      mcpServersJson: str("--mcp-servers-json", "LLAMA_ARG_MCP_SERVERS_JSON"),
      corsProxy: bool("--webui-mcp-proxy", "LLAMA_ARG_UI_MCP_PROXY"),
      agent: bool("--agent", "LLAMA_ARG_AGENT"),
    }),
    passthrough,
    fakeTiming: !!env.LLAMA_SERVER_DEBUG_FAKE_TIMING,
    bodyLimit: own.bodyLimit ? positiveInt("--body-limit", own.bodyLimit) : 32 * 1024 * 1024,
    spareRunners: own.spareRunners ? nonNegativeInt("--spare-runners", own.spareRunners) : 1,
    queueMax: own.queueMax ? positiveInt("--queue-max", own.queueMax) : 256,
    loadSilenceTimeoutS: own.loadSilenceTimeout
      ? positiveInt("--load-silence-timeout", own.loadSilenceTimeout)
      : 120,
    maxCrashes: own.maxCrashes ? positiveInt("--max-crashes", own.maxCrashes) : 5,
    modelsMemory: memorySpec(own.modelsMemory ?? env.LLAMA_ARG_MODELS_MEMORY),
    modelsTtlS: seconds("--models-ttl", own.modelsTtl ?? env.LLAMA_ARG_MODELS_TTL ?? "0"),
    metrics: !switches.has("--no-metrics"),
    // as llama-server reads its own switch: the flag, else its env form, which engines inherit
    engineMetricsAsked: passthrough.get("--metrics") === true ||
      isTruthy(env.LLAMA_ARG_ENDPOINT_METRICS ?? ""),
    logFormat: logFormat(own.logFormat ?? "text"),
    swapKvCache: switches.has("--swap-kv-cache"),
    swapKvCacheMaxBytes: size("--swap-kv-cache-max", own.swapKvCacheMax ?? "4G"),
    swapKvCacheDir: own.swapKvCacheDir,
  };
  if (config.gcp) {
    if (config.gcp.port !== config.port) {
      warnings.push(
        `Google Cloud Platform compat: overriding port ${config.port} with AIP_HTTP_PORT ${config.gcp.port}`,
      );
    }
    config.port = config.gcp.port;
  }
  if (config.port < 0 || config.port > 65535) throw new CliError(`error: invalid --port ${config.port}`);
  if (config.uiEnabled && config.staticPath) checkStaticPath(config.staticPath);
  return { config, warnings, help, version };
}

function logFormat(raw: string): LogFormat {
  if (raw !== "text" && raw !== "json") {
    throw new CliError(`error: --log-format expects text or json, got '${raw}'`);
  }
  return raw;
}

function pageName(value: string | undefined): WebuiPage | undefined {
  return value === "llamacpp" || value === "switchyard" ? value : undefined;
}

/** `--ui`/`--webui` as a switch (pages on or off) or a page name (on, and that page at `/`). */
function webuiSetting(value: string | boolean | undefined): { uiEnabled: boolean; webui: WebuiPage } {
  return {
    uiEnabled: value !== false,
    webui: pageName(typeof value === "string" ? value : undefined) ?? "switchyard",
  };
}

/** llama-server refuses to start when --path is not a folder; so does the gateway. */
function checkStaticPath(path: string): void {
  let isDir = false;
  try {
    isDir = Deno.statSync(path).isDirectory;
  } catch { /* reported below */ }
  if (!isDir) throw new CliError(`error: --path: static assets path not found: ${path}`);
}

function readValue(
  resolved: ResolvedFlag,
  spelling: string,
  takeValue: () => string,
  inline: string | undefined,
): string | boolean {
  switch (resolved.option.def.kind) {
    case "value":
      return takeValue();
    case "pair":
      // llama.cpp's router cannot forward two-valued flags and fails at start-up; we keep both values
      return `${takeValue()} ${takeValue()}`;
    default:
      if (inline !== undefined && !isTruthy(inline) && !isFalsey(inline)) {
        throw new CliError(`error: ${spelling} takes no value (got '${inline}')`);
      }
      return switchValue(resolved, inline);
  }
}

function positiveInt(flag: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    throw new CliError(`error: ${flag} expects a positive integer, got '${raw}'`);
  }
  return n;
}

function nonNegativeInt(flag: string, raw: string): number {
  return raw.trim() === "0" ? 0 : positiveInt(flag, raw);
}

function seconds(flag: string, raw: string): number {
  if (!/^\d+$/.test(raw.trim())) {
    throw new CliError(`error: ${flag} expects a whole number of seconds (0 = never), got '${raw}'`);
  }
  return Number(raw);
}

function size(flag: string, raw: string): number {
  try {
    return parseSize(raw);
  } catch (e) {
    if (e instanceof SizeError) throw new CliError(`error: ${flag}: ${e.message}`);
    throw e;
  }
}

/** `--models-memory`, its syntax checked now; device names are checked once the devices are known. */
function memorySpec(raw: string | undefined): string {
  const spec = raw?.trim() || "auto";
  try {
    parseMemorySpec(spec);
  } catch (e) {
    if (e instanceof MemorySpecError) throw new CliError(`error: ${e.message}`);
    throw e;
  }
  return spec;
}

function keyList(raw: string | undefined, admin: boolean): ApiKey[] {
  return (raw ?? "").split(",").map((k) => k.trim()).filter(Boolean).map((key) => ({ key, admin }));
}

function keysFromFile(path: string | undefined, flag: string, admin: boolean): ApiKey[] {
  if (!path) return [];
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new CliError(`error: cannot read ${flag} '${path}': ${(e as Error).message}`);
  }
  try {
    return parseKeyFile(text, path, admin);
  } catch (e) {
    throw new CliError(`error: ${(e as Error).message}`);
  }
}

export const USAGE =
  `Switchyard: a model-managing gateway for llama.cpp (llama-server router mode, done better)

usage: switchyard [router options] [llama-server options inherited by every model]

router options (llama-server's, same env forms):
  --host HOST               listen address (default 127.0.0.1)            LLAMA_ARG_HOST
  --port PORT               listen port (default 8080)                    LLAMA_ARG_PORT
  --models-dir DIR          folder of .gguf files and model folders       LLAMA_ARG_MODELS_DIR
  --models-preset FILE      INI file of model presets                     LLAMA_ARG_MODELS_PRESET
  -hf, --hf-repo OWNER/REPO[:QUANT]
                            with a preset.ini in the repo: that file is the models preset (remote preset);
                            without one: the single model, pulled into the cache (see -m)
single-model command line (llama-server's; the model becomes the default one, loaded at start-up):
  -m, --model PATH          a local .gguf                                  LLAMA_ARG_MODEL
  -hff, --hf-file FILE      with -hf: this file of the repo                LLAMA_ARG_HF_FILE
  -mu, --model-url URL      a model the engine downloads                   LLAMA_ARG_MODEL_URL
  -a, --alias A[,B]         its names (the first in sorted order is its id); --tags, --mmproj likewise
  --models-max N            models running at once (default 4, 0 = no limit) LLAMA_ARG_MODELS_MAX
  --models-autoload, --no-models-autoload
                            load a model on its first request (default on) LLAMA_ARG_MODELS_AUTOLOAD
  --api-key KEY[,KEY]       require a key (Bearer or X-Api-Key)            LLAMA_API_KEY
  --api-key-file FILE       keys, one per line ('KEY [models=a,b]')          LLAMA_ARG_API_KEY_FILE
  --cors-origins LIST       allowed CORS origins (none by default)         LLAMA_ARG_CORS_ORIGINS
  --offline                 never touch the network                        LLAMA_ARG_OFFLINE
  --ui, --webui [llamacpp|switchyard], --no-ui, --no-webui               LLAMA_ARG_UI
                            web pages on or off (default on); a page name picks what / shows:
                            Switchyard's own (default; always at /switchyard/) or llama.cpp's
                            web UI (always at /llamacpp/; built once with npm, see deno task webui)
  --path DIR                serve the files of DIR at / instead, as llama-server does  LLAMA_ARG_STATIC_PATH
  --timeout N               proxied request timeout in seconds (default 3600)
  --tools LIST|all          experimental: built-in tools at /tools         LLAMA_ARG_TOOLS
                            (read_file, exec_shell_command, ...; all = every one)
  --tools-runtime OPTION    where tools run (docker:IMAGE, ssh:TARGET...)  LLAMA_ARG_TOOLS_RUNTIME
  --mcp-servers-config FILE, --mcp-servers-json JSON
                            experimental: MCP servers' tools at /tools    LLAMA_ARG_MCP_SERVERS_*
  --ui-mcp-proxy, --no-ui-mcp-proxy
                            experimental: the web UI's CORS proxy at /cors-proxy LLAMA_ARG_UI_MCP_PROXY
  -ag, --agent, --no-agent  all tools and the CORS proxy                  LLAMA_ARG_AGENT
                            (tools run on this machine: never expose these to untrusted clients;
                            with admin keys, POST /tools and /cors-proxy need one)
Switchyard options:
  --server-bin PATH         llama-server to run (else LLAMA_SERVER_BIN, PATH, or a cached build)
  --spare-runners N         runners started ahead of need (default 1)
  --body-limit BYTES        largest request body (default 32 MiB)
  --admin-api-key KEY[,KEY] keys for load/unload/download/delete/reload; other keys then only infer
  --admin-api-key-file FILE admin keys, one per line                        (SWITCHYARD_ADMIN_API_KEY)
  --queue-max N             requests that may wait for one model (default 256), then 503
  --load-silence-timeout S  kill a loading engine silent for S seconds (default 120)
  --max-crashes N           stop restarting a model after N crashes in a row (default 5)
  --models-memory SPEC      what models may claim per device: auto (default: each device less
                            max(1 GiB, 5%)), one size for every device (20G), or per device
                            (host=12G,CUDA0=22G; others stay auto)   LLAMA_ARG_MODELS_MEMORY
  --models-ttl SECONDS      unload a model idle this long (default 0 = never); a preset's ttl wins
                                                                      LLAMA_ARG_MODELS_TTL
  --no-metrics              record no metrics nor activity (GET /metrics, /activity answer 501), and
                            start engines without --metrics unless it is given
  --log-format text|json    the gateway's log lines as text (default) or one JSON object a line
  --swap-kv-cache           save a model's KV cache when it is evicted, idle or unloaded, and restore
                            it when it loads again (a preset's swap-kv-cache = false opts out)
  --swap-kv-cache-max SIZE  disk the saved caches may use in all (default 4G); least recently used go
  --swap-kv-cache-dir DIR   where they are kept (default: kv-cache/ in the gateway's cache dir)
Any other llama-server flag (-c 8192, -ngl 99, --temp 0.8, --no-jinja, ...) is passed to every model.
`;
