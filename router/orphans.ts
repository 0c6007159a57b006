/**
 * Engines left behind by an earlier gateway that died (possible only where `setpriv` is missing, so
 * nothing tied the engines' lives to it). Every engine carries its gateway's pid in its environment;
 * at start-up, engines whose gateway is gone are stopped.
 */
export const GATEWAY_PID_ENV = "SWITCHYARD_GATEWAY_PID";

/** Kills orphaned engines; returns their pids. Linux only (reads /proc); elsewhere does nothing. */
export async function killOrphanEngines(): Promise<number[]> {
  if (Deno.build.os !== "linux") return [];
  const killed: number[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync("/proc")];
  } catch {
    return [];
  }
  for (const entry of entries) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid) || pid === Deno.pid) continue;
    const owner = await gatewayOf(pid);
    if (owner === undefined || owner === Deno.pid || alive(owner)) continue;
    try {
      Deno.kill(pid, "SIGKILL");
      killed.push(pid);
    } catch { /* gone already, or not ours to kill */ }
  }
  return killed;
}

async function gatewayOf(pid: number): Promise<number | undefined> {
  try {
    const environ = await Deno.readTextFile(`/proc/${pid}/environ`);
    const found = environ.split("\0").find((v) => v.startsWith(`${GATEWAY_PID_ENV}=`));
    return found ? Number(found.slice(GATEWAY_PID_ENV.length + 1)) : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT" as Deno.Signal);
    return true;
  } catch {
    return false;
  }
}
