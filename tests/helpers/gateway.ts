/**
 * Starts a real Switchyard gateway (`main.ts` in its own Deno process) for end-to-end tests, and
 * stops it without leaving a process behind.
 */
import { forEachLine } from "../../runners/lines.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

export interface TestGateway {
  url: string;
  /** the gateway's process id */
  pid: number;
  /** everything the gateway logged so far */
  logs: string[];
  /** waits until a log line matches */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL after 10 s; resolves with the exit code */
  stop(): Promise<number>;
  /** resolves with the exit status when the process ends by itself */
  status: Promise<Deno.CommandStatus>;
}

export interface StartOptions {
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** print the gateway's log as it comes (for debugging a test) */
  echo?: boolean;
}

export async function startGateway(opts: StartOptions): Promise<TestGateway> {
  const args = opts.args.includes("--port") ? opts.args : [...opts.args, "--port", "0"];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, ...args],
    env: { NO_COLOR: "1", ...opts.env },
    cwd: opts.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logs: string[] = [];
  const watchers = new Set<(line: string) => void>();
  const onLine = (line: string) => {
    logs.push(line);
    if (opts.echo || Deno.env.get("SWITCHYARD_TEST_ECHO")) console.error(`  gw| ${line}`);
    for (const w of watchers) w(line);
  };
  const drained = Promise.all([forEachLine(child.stdout, onLine), forEachLine(child.stderr, onLine)]);
  const status = child.status.then(async (s) => {
    await drained.catch(() => {});
    return s;
  });

  const waitForLog = (pattern: RegExp, timeoutMs = 60_000): Promise<string> => {
    const seen = logs.find((l) => pattern.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        watchers.delete(watch);
        reject(
          new Error(`no log line matched ${pattern} in ${timeoutMs} ms; log:\n${logs.slice(-30).join("\n")}`),
        );
      }, timeoutMs);
      const watch = (line: string) => {
        if (!pattern.test(line)) return;
        clearTimeout(timer);
        watchers.delete(watch);
        resolve(line);
      };
      watchers.add(watch);
      status.then((s) => {
        if (!watchers.has(watch)) return;
        clearTimeout(timer);
        watchers.delete(watch);
        reject(
          new Error(`gateway exited (code ${s.code}) before ${pattern}; log:\n${logs.slice(-30).join("\n")}`),
        );
      });
    });
  };

  let listening: string;
  try {
    listening = await waitForLog(/listening on http:\/\/\S+/, 120_000);
  } catch (err) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await status;
    throw err;
  }
  const url = listening.match(/listening on (http:\/\/\S+)/)![1];
  let stopping: Promise<number> | undefined;
  return {
    url,
    pid: child.pid,
    logs,
    waitForLog,
    status,
    stop: () =>
      stopping ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* already gone */ }
        }, 10_000);
        const s = await status;
        clearTimeout(timer);
        return s.code;
      })(),
  };
}
