/**
 * Ties a child process's life to its parent's. On Linux `setpriv --pdeathsig KILL` sets the
 * parent-death signal and then execs the real program (same pid), so the kernel SIGKILLs the child
 * the moment its parent dies, even when the parent was SIGKILLed and could run no cleanup. Pipes
 * closing (stdin EOF) is the second line of defence, for systems without setpriv.
 */

const SETPRIV = "/usr/bin/setpriv";

let setprivPresent: boolean | undefined;

/** Whether children can be tied to their parent with setpriv on this machine. */
export function canTieToParent(): boolean {
  if (setprivPresent === undefined) {
    try {
      setprivPresent = Deno.build.os === "linux" && Deno.statSync(SETPRIV).isFile;
    } catch {
      setprivPresent = false;
    }
  }
  return setprivPresent;
}

/** A program and its argv, as `Deno.Command` takes them. */
export interface CommandLine {
  cmd: string;
  args: string[];
}

/**
 * `cmd args` wrapped so that the process dies with the calling process. The death signal follows
 * the thread that spawns, so spawn from the main thread (Deno does), not from a Worker that may end.
 */
export function tiedToParent(cmd: string, args: string[]): CommandLine {
  if (!canTieToParent()) return { cmd, args };
  return { cmd: SETPRIV, args: ["--pdeathsig", "KILL", "--", cmd, ...args] };
}

/** True when `pid` names a process that has not exited (a zombie counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The state letter follows the parenthesised command name, which may itself contain ") ".
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}
