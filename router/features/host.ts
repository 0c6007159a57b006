/**
 * The process that serves `/tools` and `/cors-proxy`: llama-server itself, started with no model (as
 * a router over an empty models folder) and the feature flags. Its tools, MCP clients, tool runtimes
 * and proxy are llama.cpp's own code, so they behave exactly as in llama.cpp's router, where the same
 * code runs in the router process; rewriting them would only copy them less faithfully. It costs one
 * small process, and only when a feature flag is given.
 *
 * It listens on a loopback port the kernel picks and demands a key only the gateway holds: its tools
 * can run shell commands, so another local user must not be able to reach it as engines can be.
 */
import { forEachLine } from "../../runners/lines.ts";
import { tiedToParent } from "../../runners/lifeline.ts";
import { GATEWAY_PID_ENV } from "../orphans.ts";
import { featureArgs, type FeatureSettings } from "./settings.ts";

/** llama-server's start-up line, once it accepts connections. */
const LISTENING = /listening on http:\/\/127\.0\.0\.1:(\d+)/;
/** MCP servers are started before that line: a slow one is waited for, a hung one is not. */
const START_TIMEOUT_MS = 120_000;
/** a tools runtime container is removed on a graceful exit: give it that long before SIGKILL */
const STOP_TIMEOUT_MS = 10_000;
const TAIL_LINES = 20;
/** llama-server's warning and error lines (`... W srv ...`): what is worth the gateway's log */
const NOTEWORTHY = /^\S+ [WE] /;

export interface FeatureHostOptions {
  bin: string;
  settings: FeatureSettings;
  /** the gateway's environment: the host's tools run in it, minus llama-server settings and secrets */
  env: Record<string, string | undefined>;
  log: (line: string) => void;
}

export class FeatureHost {
  /** `Authorization` value the host demands */
  readonly authorization: string;
  #exit?: Deno.CommandStatus;

  private constructor(
    readonly port: number,
    key: string,
    readonly settings: FeatureSettings,
    readonly exited: Promise<Deno.CommandStatus>,
    readonly child: Deno.ChildProcess,
    readonly dir: string,
  ) {
    this.authorization = `Bearer ${key}`;
    exited.then((s) => this.#exit = s);
  }

  /** Why the host cannot answer, once it has exited; undefined while it runs. */
  get gone(): string | undefined {
    const s = this.#exit;
    return s && `the tools host exited (${s.signal ?? `code ${s.code}`})`;
  }

  /** Starts the host; rejects with its last lines if it exits first (a bad `--tools` list, say). */
  static async start(opts: FeatureHostOptions): Promise<FeatureHost> {
    // empty: the host must find no model to offer, in the models folder or a cache
    const dir = await Deno.makeTempDir({ prefix: "switchyard-features-" });
    const key = randomKey();
    const args = ["--models-dir", dir, "--offline", "--host", "127.0.0.1", "--port", "0"];
    const { cmd, args: argv } = tiedToParent(opts.bin, [...args, ...featureArgs(opts.settings)]);
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(cmd, {
        args: argv,
        env: hostEnv(opts.env, key, dir),
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (err) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw err;
    }
    const tail: string[] = [];
    const listening = Promise.withResolvers<number>();
    const onLine = (line: string) => {
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      const m = line.match(LISTENING);
      if (m) listening.resolve(Number(m[1]));
      if (NOTEWORTHY.test(line)) opts.log(`tools host: ${line}`);
    };
    const drained = Promise.all([forEachLine(child.stdout, onLine), forEachLine(child.stderr, onLine)]);
    const exited = child.status.then(async (s) => {
      await drained;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return s;
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const port = await Promise.race([
        listening.promise,
        exited.then((s) => {
          throw new Error(`the tools host exited (code ${s.code}) before it listened:\n${tail.join("\n")}`);
        }),
        new Promise<never>((_, reject) =>
          timer = setTimeout(
            () => reject(new Error(`the tools host did not listen within ${START_TIMEOUT_MS / 1000} s`)),
            START_TIMEOUT_MS,
          )
        ),
      ]);
      const host = new FeatureHost(port, key, opts.settings, exited, child, dir);
      exited.then((s) => opts.log(`${host.gone ?? `tools host exited (${s.code})`}; /tools now answer 503`));
      opts.log(`tools host on 127.0.0.1:${port} (pid ${child.pid}): ${featureArgs(opts.settings).join(" ")}`);
      return host;
    } catch (err) {
      kill(child, "SIGKILL");
      await exited;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGTERM (the host removes a tools runtime container on the way out), SIGKILL if it lingers. */
  async close(): Promise<void> {
    if (this.#exit) return;
    kill(this.child, "SIGTERM");
    const timer = setTimeout(() => kill(this.child, "SIGKILL"), STOP_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch { /* already gone */ }
}

function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The gateway's environment for the host, whose tools (a shell command, say) run in it: without any
 * llama-server setting (`LLAMA_ARG_MODEL` would make it load a model; the features come as flags),
 * without the gateway's secrets, with the host's own key and an empty cache.
 */
function hostEnv(env: Record<string, string | undefined>, key: string, dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || name.startsWith("LLAMA_") || SECRETS.has(name)) continue;
    out[name] = value;
  }
  return { ...out, LLAMA_API_KEY: key, LLAMA_CACHE: dir, [GATEWAY_PID_ENV]: String(Deno.pid) };
}

const SECRETS = new Set(["HF_TOKEN", "SWITCHYARD_ADMIN_API_KEY"]);
