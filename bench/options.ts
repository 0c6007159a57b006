/** What one bench run does: its command line, and how many samples and how long a pause each phase takes. */

export type Phase = "latency" | "streaming" | "floor" | "throughput" | "memory" | "cold" | "swap" | "metrics";
export const PHASES: readonly Phase[] = [
  "latency",
  "streaming",
  "floor",
  "throughput",
  "memory",
  "cold",
  "swap",
  "metrics",
];
export type LoadClient = "wrk" | "deno";

/**
 * The same llama-server flags for all three; both routers pass them on to their model instances. `-t 1`: on a
 * 2-core machine shared with the gateway and the load generator, llama.cpp's default of one compute thread per
 * core makes every token wait at a spinning barrier for whichever thread was preempted, so a 4-token completion
 * swings between 2 ms and 1 s and drowns what the proxies add. One thread keeps generation steady.
 */
export const DEFAULT_ENGINE_FLAGS: readonly string[] = ["-c", "512", "-np", "4", "--no-webui", "-t", "1"];

/** Pause after an unload before the next cold start: Switchyard re-spawns its spare runner meanwhile. */
export const COLD_SETTLE_MS = 500;

export interface BenchOptions {
  /** short runs, for trying the bench itself */
  quick: boolean;
  /** the load generator; null: wrk when installed, else the Deno one */
  client: LoadClient | null;
  /** replaces the llama-server flags of all three systems */
  engineFlags: string[];
  /** extra Switchyard-only flags (e.g. `--spare-runners 0`), for experiments */
  gatewayArgs: string[];
  /** the phases to run; the report shows n/a for the rest */
  phases: Set<Phase>;
  /** write `bench/results/latest.{md,json}` */
  write: boolean;
  help: boolean;
}

export const USAGE = `usage: deno task bench [options]

  --quick                  short runs, for trying the bench itself
  --client deno|wrk        load generator (default: wrk when installed, else the Deno one)
  --phases LIST            comma-separated subset of ${PHASES.join(",")}
  --engine-flags "FLAGS"   llama-server flags for all three systems (default: ${
  DEFAULT_ENGINE_FLAGS.join(" ")
})
  --gateway-args "ARGS"    extra Switchyard-only flags, e.g. "--spare-runners 0"
  --no-write               print the report only; leave bench/results/ alone
  --help                   this text`;

export class UsageError extends Error {}

const words = (value: string) => value.split(/\s+/).filter(Boolean);

/** Parses the bench's arguments; throws UsageError on anything it does not know, before any minutes are spent. */
export function parseArgs(args: readonly string[]): BenchOptions {
  const options: BenchOptions = {
    quick: false,
    client: null,
    engineFlags: [...DEFAULT_ENGINE_FLAGS],
    gatewayArgs: [],
    phases: new Set(PHASES),
    write: true,
    help: false,
  };
  for (let i = 0; i < args.length; i++) {
    const [name, inline] = args[i].startsWith("--") && args[i].includes("=")
      ? [args[i].slice(0, args[i].indexOf("=")), args[i].slice(args[i].indexOf("=") + 1)]
      : [args[i], undefined];
    // Values are taken verbatim: `--engine-flags "-c 1024"` starts with a dash.
    const value = (): string => {
      if (inline !== undefined) return inline;
      if (i + 1 >= args.length) throw new UsageError(`${name} needs a value`);
      return args[++i];
    };
    const flag = () => {
      if (inline !== undefined) throw new UsageError(`${name} takes no value`);
    };
    switch (name) {
      case "--quick":
        flag();
        options.quick = true;
        break;
      case "--no-write":
        flag();
        options.write = false;
        break;
      case "--help":
      case "-h":
        flag();
        options.help = true;
        break;
      case "--client": {
        const client = value();
        if (client !== "wrk" && client !== "deno") {
          throw new UsageError(`--client: deno or wrk, not "${client}"`);
        }
        options.client = client;
        break;
      }
      case "--phases": {
        const phases = value().split(",").filter(Boolean);
        const unknown = phases.filter((p) => !(PHASES as readonly string[]).includes(p));
        if (unknown.length) throw new UsageError(`--phases: unknown ${unknown.join(", ")}`);
        options.phases = new Set(phases as Phase[]);
        break;
      }
      case "--engine-flags":
        options.engineFlags = words(value());
        break;
      case "--gateway-args":
        options.gatewayArgs = words(value());
        break;
      default:
        throw new UsageError(`unknown argument ${args[i]}`);
    }
  }
  return options;
}

/** How much each phase measures; stored with the results. */
export interface Samples {
  warmup: number;
  tokenize: number;
  completion: number;
  ttfc: number;
  cold: number;
  loadWarmupMs: number;
  /**
   * load once before the first load rounds, per system: V8 takes seconds of load to optimize the gateway's
   * request path, and the rows are about a gateway that has been serving, as a deployed one has
   */
  steadyWarmupMs: number;
  /** measured time per system and connection count = rounds × roundMs (wrk counts whole seconds) */
  rounds: number;
  roundMs: number;
  connections: number[];
  /** single streams per system and kind of connection (fresh, kept-alive) */
  streams: number;
  /** tokens per stream, in every streaming sample */
  streamTokens: number;
  /** concurrent streams per round, and rounds per system */
  concurrentStreams: number[];
  streamRounds: number;
  /** swaps per system, after two unmeasured ones that load each model once */
  swaps: number;
  /** the memory phase's load per system, and how often the footprints are sampled during it */
  memoryLoadMs: number;
  memoryEveryMs: number;
}

export function samplesFor(quick: boolean): Samples {
  return {
    warmup: quick ? 50 : 300,
    tokenize: quick ? 200 : 2000,
    completion: quick ? 40 : 300,
    ttfc: quick ? 30 : 150,
    cold: quick ? 3 : 10,
    loadWarmupMs: 1000,
    steadyWarmupMs: quick ? 1000 : 5000,
    rounds: quick ? 1 : 3,
    roundMs: 1000,
    connections: [1, 16, 64],
    streams: quick ? 30 : 150,
    // 64 tokens: enough events per round that CPU time, counted in 10 ms ticks, resolves µs per event
    streamTokens: 64,
    concurrentStreams: [8, 64],
    streamRounds: quick ? 1 : 8,
    swaps: quick ? 6 : 30,
    memoryLoadMs: quick ? 1000 : 3000,
    memoryEveryMs: 100,
  };
}
