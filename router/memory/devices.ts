/**
 * The devices models can use and their memory: GPUs as the engine lists them (`llama-server
 * --list-devices`; no GPU code of our own), and host RAM from /proc/meminfo bounded by the cgroup
 * memory limit, which is what a container actually gets.
 *
 * `--list-devices` prints to stdout (`common_print_available_devices`, common/arg.cpp), skipping CPU
 * devices, then exits 0:
 * ```
 * Available devices:
 *   CUDA0: NVIDIA H200 (143771 MiB, 143000 MiB free)
 * ```
 * and `  (none)` on a CPU-only build (verified on the pinned build).
 */
import { HOST } from "./projection.ts";
import { KiB, MiB } from "./size.ts";

export interface Device {
  /** the engine's name (`CUDA0`, `Vulkan1`, `MTL0`, `RPC0[host:port]`), or `HOST` */
  name: string;
  description: string;
  total: number;
  /** as the backend reports it: device-wide on CUDA, this process only on Metal (always "all free") */
  free: number;
  kind: "gpu" | "host";
}

// "  %s: %s (%zu MiB, %zu MiB free)"; a description may hold parentheses, so the sizes anchor at the end
const DEVICE_RE = /^\s+(\S+): (.*) \((\d+) MiB, (\d+) MiB free\)\s*$/;

/** The GPUs in `--list-devices` output; other lines (backend init chatter, the header) are skipped. */
export function parseListDevices(stdout: string): Device[] {
  const devices: Device[] = [];
  for (const line of stdout.split("\n")) {
    const m = DEVICE_RE.exec(line);
    if (!m) continue;
    devices.push({
      name: m[1],
      description: m[2],
      total: Number(m[3]) * MiB,
      free: Number(m[4]) * MiB,
      kind: "gpu",
    });
  }
  return devices;
}

/** `MemTotal` and `MemAvailable` from /proc/meminfo, in bytes (the file says kB, meaning KiB). */
export function parseMeminfo(text: string): { total: number; available: number } | undefined {
  const field = (name: string): number | undefined => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
    return m ? Number(m[1]) * KiB : undefined;
  };
  const total = field("MemTotal");
  if (total === undefined) return undefined;
  // kernels before 3.14 lack MemAvailable; free is the closest they offer
  return { total, available: field("MemAvailable") ?? field("MemFree") ?? total };
}

/** One cgroup on the way from ours to the root: its limit, usage and reclaimable page cache. */
export interface CgroupLevel {
  limit?: number;
  usage?: number;
  inactiveFile?: number;
}

/** A cgroup memory file: `max` (v2) means no limit; v1's "no limit" is a huge number that never binds. */
export function parseCgroupNumber(text: string | undefined): number | undefined {
  const t = text?.trim();
  if (!t || t === "max" || !/^\d+$/.test(t)) return undefined;
  return Number(t);
}

/** `inactive_file` (v2) or `total_inactive_file` (v1, hierarchical) from memory.stat. */
export function parseInactiveFile(stat: string | undefined): number | undefined {
  if (!stat) return undefined;
  const m = /^total_inactive_file (\d+)$/m.exec(stat) ?? /^inactive_file (\d+)$/m.exec(stat);
  return m ? Number(m[1]) : undefined;
}

/**
 * Host RAM: the smaller of the machine's and every cgroup limit above us. Free is what the kernel
 * calls available, bounded by each limited cgroup's headroom, counting its inactive page cache as
 * reclaimable (as the kernel does before it OOM-kills).
 */
export function hostDevice(
  meminfo: { total: number; available: number },
  levels: readonly CgroupLevel[],
): Device {
  let total = meminfo.total;
  let free = meminfo.available;
  for (const level of levels) {
    if (level.limit === undefined || level.limit >= meminfo.total) continue;
    total = Math.min(total, level.limit);
    const used = Math.max(0, (level.usage ?? 0) - (level.inactiveFile ?? 0));
    free = Math.min(free, level.limit - used);
  }
  return {
    name: HOST,
    description: "host memory",
    total,
    free: Math.max(0, Math.min(free, total)),
    kind: "host",
  };
}

/** Our cgroup paths from /proc/self/cgroup: the v2 one (`0::/path`) and the v1 memory controller's. */
export function parseProcCgroup(text: string): { v2?: string; v1?: string } {
  const out: { v2?: string; v1?: string } = {};
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === "0" && m[2] === "") out.v2 = m[3];
    else if (m[2].split(",").includes("memory")) out.v1 = m[3];
  }
  return out;
}

/** `/a/b` → `["/a/b", "/a", ""]`: a cgroup and its ancestors, the root last. */
export function cgroupAncestry(path: string): string[] {
  const parts = path.split("/").filter(Boolean);
  return Array.from({ length: parts.length + 1 }, (_, i) => parts.length - i)
    .map((n) => (n === 0 ? "" : "/" + parts.slice(0, n).join("/")));
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

/**
 * The memory levels of our cgroup and its ancestors, for v2 and v1 alike. In a container with its own
 * cgroup namespace our path is `/` and the limit sits at the mount's root, which the walk reaches.
 */
export async function readCgroupLevels(
  root = "/sys/fs/cgroup",
  procCgroup = "/proc/self/cgroup",
): Promise<CgroupLevel[]> {
  const paths = parseProcCgroup(await readText(procCgroup) ?? "");
  const levels: CgroupLevel[] = [];
  if (paths.v2 !== undefined) {
    for (const dir of cgroupAncestry(paths.v2).map((p) => root + p)) {
      levels.push({
        limit: parseCgroupNumber(await readText(`${dir}/memory.max`)),
        usage: parseCgroupNumber(await readText(`${dir}/memory.current`)),
        inactiveFile: parseInactiveFile(await readText(`${dir}/memory.stat`)),
      });
    }
  }
  if (paths.v1 !== undefined) {
    for (const dir of cgroupAncestry(paths.v1).map((p) => `${root}/memory${p}`)) {
      levels.push({
        limit: parseCgroupNumber(await readText(`${dir}/memory.limit_in_bytes`)),
        usage: parseCgroupNumber(await readText(`${dir}/memory.usage_in_bytes`)),
        inactiveFile: parseInactiveFile(await readText(`${dir}/memory.stat`)),
      });
    }
  }
  return levels;
}

/** Host RAM now, or undefined where /proc/meminfo is missing (not Linux). */
export async function detectHost(): Promise<Device | undefined> {
  const meminfo = parseMeminfo(await readText("/proc/meminfo") ?? "");
  return meminfo ? hostDevice(meminfo, await readCgroupLevels()) : undefined;
}

export interface DetectOptions {
  /** the engine child's environment, so the same GPUs are visible */
  env?: Record<string, string>;
  /** default 30 s: backend init on a wedged driver can hang */
  timeoutMs?: number;
}

/** The engine's GPUs, or why it could not be asked (a message, never a throw). */
export async function listGpus(engineBin: string, opts: DetectOptions = {}): Promise<Device[] | string> {
  try {
    const out = await new Deno.Command(engineBin, {
      args: ["--list-devices"],
      env: opts.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    if (!out.success || !stdout.includes("Available devices:")) {
      return `${engineBin} --list-devices failed (${out.signal ?? `exit ${out.code}`}): ` +
        new TextDecoder().decode(out.stderr).trim().split("\n").slice(-2).join(" | ");
    }
    return parseListDevices(stdout);
  } catch (e) {
    return `${engineBin} --list-devices: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/** Every device: the engine's GPUs, then the host. Problems are reported, never thrown. */
export async function detectDevices(
  engineBin: string,
  opts: DetectOptions = {},
): Promise<{ devices: Device[]; warnings: string[] }> {
  const [gpus, host] = await Promise.all([listGpus(engineBin, opts), detectHost()]);
  const warnings: string[] = [];
  const devices: Device[] = [];
  if (typeof gpus === "string") warnings.push(gpus);
  else devices.push(...gpus);
  if (host) devices.push(host);
  else warnings.push("host memory is unknown: /proc/meminfo cannot be read");
  return { devices, warnings };
}
