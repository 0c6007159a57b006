/**
 * Processes as Linux /proc shows them, for tests that check what a gateway or a runner started and
 * that nothing is left behind: engines (by the `SWITCHYARD_GATEWAY_PID` they carry), runners, and any
 * process by its command line. Zombies count as gone (see `isAlive`).
 */
import { assertEquals } from "./assert.ts";
import { isAlive } from "../../runners/lifeline.ts";

/** The text of `/proc/<pid>/<file>`, or "" when the process is gone or the file cannot be read. */
export function readProc(pid: number, file: string): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/${file}`);
  } catch {
    return "";
  }
}

/** The command line, its arguments joined by spaces ("" when the process is gone). */
export function cmdlineOf(pid: number): string {
  return readProc(pid, "cmdline").replaceAll("\0", " ");
}

/** Every process but this test's own. */
export function allPids(): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (Number.isInteger(pid) && pid !== Deno.pid) pids.push(pid);
  }
  return pids;
}

export function ppidOf(pid: number): number {
  const stat = readProc(pid, "stat");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/**
 * Live processes whose command line contains `marker` (a model path, or `<models dir>/`: the
 * gateway's own command line names the dir itself, never a path under it).
 */
export function processesWith(marker: string): number[] {
  return allPids().filter((pid) => cmdlineOf(pid).includes(marker)).filter(isAlive);
}

/** Live engines started by this gateway: they carry `SWITCHYARD_GATEWAY_PID=<pid>`. */
export function enginesOf(gatewayPid: number): number[] {
  const tag = `SWITCHYARD_GATEWAY_PID=${gatewayPid}`;
  return allPids().filter((pid) => readProc(pid, "environ").split("\0").includes(tag)).filter(isAlive);
}

/** Live runners of this gateway (its children running runner.ts). */
export function runnersOf(gatewayPid: number): number[] {
  return allPids().filter((pid) => ppidOf(pid) === gatewayPid).filter((pid) => {
    const cmd = readProc(pid, "cmdline");
    return cmd.includes("runners/runner.ts") || cmd.includes("--switchyard-runner");
  }).filter(isAlive);
}

function theOne(pids: number[], modelPath: string): number {
  assertEquals(pids.length, 1, `one engine for ${modelPath}, found ${pids.join(",")}`);
  return pids[0];
}

/**
 * Live engines whose command line contains `marker` (a model's path, a folder): not the memory
 * projection's `llama-fit-params`, which names the model too but only reads its metadata.
 */
export function enginesWith(marker: string): number[] {
  return processesWith(marker).filter((pid) => !cmdlineOf(pid).includes("llama-fit-params"));
}

/** The one live engine whose command line contains `modelPath`. */
export function engineOf(modelPath: string): number {
  return theOne(enginesWith(modelPath), modelPath);
}

/** The one live engine of this gateway that has `modelPath` as an argument. */
export function gatewayEngineOf(gatewayPid: number, modelPath: string): number {
  return theOne(
    enginesOf(gatewayPid).filter((pid) => readProc(pid, "cmdline").split("\0").includes(modelPath)),
    modelPath,
  );
}

/** A `/proc/<pid>/status` size field (`VmRSS`, `RssAnon`...) in KiB; throws when the process is gone. */
export function statusKiB(pid: number, key: string): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
}
