/**
 * Memory: every process of the three systems, its RSS, PSS and private memory from /proc/PID/smaps_rollup,
 * idle (the model loaded, warmed up, nothing in flight) and at its peak under load (`/tokenize` at 16
 * connections, one system at a time, sampled every `everyMs`). RSS counts the pages a process shares (the
 * Deno binary's, shared by the gateway and its runners; the model file's, shared by the engines that map
 * it) in full; PSS splits them among the processes mapping them; private memory is what exiting frees.
 */
import { type Footprint, footprint } from "./procs.ts";
import type { Key, MemoryResults } from "./results.ts";
import { log, type Procs } from "./systems.ts";
import { loadOnce, type LoadPlan } from "./throughput.ts";

const LOAD_CONNECTIONS = 16;

/** A process whose memory is reported, by system and role. */
export interface Member {
  system: Key;
  role: string;
  pid: number;
}

export function membersOf(procs: Procs): Member[] {
  return [
    { system: "direct", role: "engine", pid: procs.direct.engine },
    { system: "switchyard", role: "gateway", pid: procs.switchyard.gateway },
    { system: "switchyard", role: "runner", pid: procs.switchyard.runner },
    ...procs.switchyard.spares.map((pid) => ({ system: "switchyard" as const, role: "spare runner", pid })),
    { system: "switchyard", role: "engine", pid: procs.switchyard.engine },
    { system: "router", role: "router", pid: procs.router.router },
    { system: "router", role: "engine", pid: procs.router.engine },
  ];
}

/** The footprint of a process that is gone: NaN figures, which `peakOf` gives way on. */
export const GONE: Footprint = { rssKiB: NaN, pssKiB: NaN, privateKiB: NaN };

/** Each member's footprint now (NaN figures for one that is gone). */
export function snapshot(members: Member[]): Footprint[] {
  return members.map((m) => footprint(m.pid) ?? GONE);
}

/** The larger of each figure; a NaN (a sample of a gone process) gives way to a number. */
export function peakOf(a: Footprint, b: Footprint): Footprint {
  const max = (x: number, y: number) => Number.isNaN(x) ? y : Number.isNaN(y) ? x : Math.max(x, y);
  return {
    rssKiB: max(a.rssKiB, b.rssKiB),
    pssKiB: max(a.pssKiB, b.pssKiB),
    privateKiB: max(a.privateKiB, b.privateKiB),
  };
}

/**
 * Runs `load` while sampling the footprints of `pids` every `everyMs`; each sample raises `peaks` (one per
 * pid, in their order) where it is higher.
 */
export async function raisingPeaks<T>(
  pids: readonly number[],
  peaks: Footprint[],
  everyMs: number,
  load: () => Promise<T>,
): Promise<T> {
  const timer = setInterval(() => {
    pids.forEach((pid, j) => peaks[j] = peakOf(peaks[j], footprint(pid) ?? GONE));
  }, everyMs);
  try {
    return await load();
  } finally {
    clearInterval(timer);
  }
}

/**
 * Loads each system in turn and keeps its members' peak footprints; `idle` is the snapshot taken before
 * any load of the run.
 */
export async function measureMemory(
  { systems, roles, client, enginePort, samples }: LoadPlan,
  members: Member[],
  idle: Footprint[],
): Promise<MemoryResults<number>> {
  const load: Footprint[] = members.map(() => GONE);
  for (const sys of systems) {
    const mine = members.flatMap((m, i) => m.system === sys.key ? [i] : []);
    const peaks = mine.map((i) => load[i]);
    await raisingPeaks(
      mine.map((i) => members[i].pid),
      peaks,
      samples.memoryEveryMs,
      () =>
        loadOnce(sys, roles[sys.key], LOAD_CONNECTIONS, client, enginePort[sys.key], samples.memoryLoadMs),
    );
    mine.forEach((i, j) => load[i] = peaks[j]);
  }
  const mib = (kib: number) => (kib / 1024).toFixed(1);
  for (const [i, m] of members.entries()) {
    log(
      `  ${m.system} ${m.role}: RSS ${mib(idle[i].rssKiB)} → ${mib(load[i].rssKiB)} MiB, ` +
        `PSS ${mib(idle[i].pssKiB)} → ${mib(load[i].pssKiB)}, private ${mib(idle[i].privateKiB)} → ` +
        `${mib(load[i].privateKiB)} (idle → under load)`,
    );
  }
  return {
    connections: LOAD_CONNECTIONS,
    loadMs: samples.memoryLoadMs,
    everyMs: samples.memoryEveryMs,
    processes: members.map((m, i) => ({
      system: m.system,
      role: m.role,
      idle: idle[i],
      load: load[i],
    })),
  };
}
