/**
 * Process plumbing for the bench: starting llama-server so it cannot outlive the bench, and reading what
 * the bench reports about processes (RSS, CPU time, children, TCP sockets) straight from /proc.
 */
import { tiedToParent } from "../runners/lifeline.ts";
import { forEachLine } from "../runners/lines.ts";
import { pickLoopbackPort } from "../runners/runner.ts";

/** Clock ticks per second for /proc/<pid>/stat times (`getconf CLK_TCK`; 100 on every Linux we run on). */
let clockTicks = 100;
try {
  const out = new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped", stderr: "null" })
    .outputSync();
  const n = Number(new TextDecoder().decode(out.stdout).trim());
  if (n > 0) clockTicks = n;
} catch {
  // no getconf: keep the usual 100
}

/** user + system CPU time of a process (all its threads), in ms; null when it is gone. */
export function cpuMs(pid: number): number | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the parenthesised name (which may contain spaces): state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / clockTicks;
  } catch {
    return null;
  }
}

/** Resident set size in KiB (VmRSS), or null when the process is gone. */
export function rssKiB(pid: number): number | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** What a process holds in memory, in KiB: resident, proportional (shared pages split among their mappers), private. */
export interface Footprint {
  rssKiB: number;
  pssKiB: number;
  /** Private_Clean + Private_Dirty: what exiting would free */
  privateKiB: number;
}

/** `/proc/PID/smaps_rollup`'s text as a footprint; NaN for a field it lacks. */
export function parseSmapsRollup(text: string): Footprint {
  const kib = (field: string) => Number(text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
  return {
    rssKiB: kib("Rss"),
    pssKiB: kib("Pss"),
    privateKiB: kib("Private_Clean") + kib("Private_Dirty"),
  };
}

/** A process's footprint from /proc (runners share the Deno binary's pages, hence PSS); null when it is gone. */
export function footprint(pid: number): Footprint | null {
  try {
    return parseSmapsRollup(Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`));
  } catch {
    return null;
  }
}

/** The command line of a process, arguments joined by spaces; "" when it is gone. */
export function cmdline(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").join(" ").trim();
  } catch {
    return "";
  }
}

/** Direct children of `pid`, from each process's parent pid. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(entry.name));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** Pids whose command line contains `marker` (every user's processes: filter by something unique). */
export function pidsMatching(marker: string): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    if (cmdline(Number(entry.name)).includes(marker)) out.push(Number(entry.name));
  }
  return out;
}

/** Counts of loopback TCP sockets with `port` at either end, by state, from /proc/net/tcp{,6}. */
export function tcpStates(port: number): { established: number; timeWait: number } {
  let established = 0, timeWait = 0;
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      if (!cols[1].endsWith(`:${hex}`) && !cols[2].endsWith(`:${hex}`)) continue;
      if (cols[3] === "01") established++;
      else if (cols[3] === "06") timeWait++;
    }
  }
  return { established, timeWait };
}

/** Binds port 0 and lets it go: the same (racy, loopback-only) way llama.cpp and Switchyard pick ports. */
export const freePort: () => number = pickLoopbackPort;

/** A llama-server the bench started itself. */
export interface Server {
  pid: number;
  port: number;
  url: string;
  /** the last lines it printed */
  logs: string[];
  /** SIGTERM, SIGKILL after `graceMs`; resolves when it has exited */
  stop(graceMs?: number): Promise<void>;
  status: Promise<Deno.CommandStatus>;
}

const LOG_LINES_KEPT = 100;

/**
 * Starts `bin args --host 127.0.0.1 --port P`, tied to this process (setpriv pdeathsig) so that even a killed
 * bench leaves no engine behind. `onLine` sees every output line as it comes (cold-start timing uses it).
 */
export function spawnServer(bin: string, args: string[], onLine?: (line: string) => void): Server {
  const port = freePort();
  const { cmd, args: argv } = tiedToParent(bin, [...args, "--host", "127.0.0.1", "--port", String(port)]);
  const child = new Deno.Command(cmd, { args: argv, stdin: "null", stdout: "piped", stderr: "piped" })
    .spawn();
  const logs: string[] = [];
  const line = (l: string) => {
    logs.push(l);
    if (logs.length > LOG_LINES_KEPT) logs.shift();
    onLine?.(l);
  };
  const drained = Promise.all([forEachLine(child.stdout, line), forEachLine(child.stderr, line)]);
  const status = child.status.then(async (s) => {
    await Promise.race([drained, new Promise((r) => setTimeout(r, 500))]);
    return s;
  });
  let stopping: Promise<void> | undefined;
  return {
    pid: child.pid,
    port,
    url: `http://127.0.0.1:${port}`,
    logs,
    status,
    stop: (graceMs = 5_000) =>
      stopping ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch {
          // already gone
        }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // gone meanwhile
          }
        }, graceMs);
        await status;
        clearTimeout(timer);
      })(),
  };
}

/** Polls `url` until it answers 200, the process exits, or `timeoutMs` passes. */
export async function waitHealthy(url: string, server: { status: Promise<unknown> }, timeoutMs: number) {
  let exited = false;
  server.status.then(() => exited = true);
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline && !exited) {
    try {
      const res = await fetch(url);
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(
    exited ? `${url}: the server exited while starting` : `${url}: not healthy in ${timeoutMs} ms`,
  );
}

/** CPU time used by a set of processes between two points in time. */
export class CpuMeter {
  #before = new Map<number, number>();
  #t0 = 0;
  #result = new Map<number, number>();
  #seconds = 0;

  constructor(readonly pids: number[]) {}

  start(): void {
    this.#t0 = performance.now();
    for (const pid of this.pids) this.#before.set(pid, cpuMs(pid) ?? NaN);
  }

  end(): void {
    this.#seconds = (performance.now() - this.#t0) / 1000;
    for (const pid of this.pids) this.#result.set(pid, (cpuMs(pid) ?? NaN) - (this.#before.get(pid) ?? NaN));
  }

  /** CPU used by `pid` over the window, in percent of one core. */
  percent(pid: number): number {
    return (this.#result.get(pid) ?? NaN) / 10 / this.#seconds;
  }

  /** CPU ms used by `pid` over the window. */
  ms(pid: number): number {
    return this.#result.get(pid) ?? NaN;
  }
}

/** The machine, as the results describe it. */
export interface MachineInfo {
  nproc: number;
  cpu: string;
  memGiB: number;
  deno: string;
  v8: string;
  os: string;
  loadavg: string;
}

export function machineInfo(): MachineInfo {
  const cpuinfo = readOr("/proc/cpuinfo");
  const meminfo = readOr("/proc/meminfo");
  const memKiB = Number(meminfo.match(/^MemTotal:\s+(\d+)/m)?.[1] ?? NaN);
  return {
    nproc: navigator.hardwareConcurrency,
    cpu: cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? "unknown",
    memGiB: Math.round((memKiB / 1024 / 1024) * 10) / 10,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    loadavg: loadavg(),
  };
}

/** The 1, 5 and 15 minute load averages: other work on the machine skews every number here. */
export function loadavg(): string {
  return readOr("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

function readOr(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}
