/**
 * How long Switchyard took to stop an evicted engine, read from the gateway's log: main.ts stamps each of
 * its lines with the UTC time (`HH:MM:SS.mmm`), and it relays the engine's own lines as `[<model>] <line>`,
 * which llama.cpp stamps with the time since the engine started (`m.ss.mmm.uuu`, common/log.cpp). The two
 * clocks are tied by the engine's one answer: it logs "stop processing" as it sends it, and the bench saw
 * the answer arrive just after (a relay of well under a millisecond, so the engine's times come out that
 * much late at most, and the intervals to the gateway's line that much short).
 */

const GATEWAY_STAMP = /^(\d\d):(\d\d):(\d\d)\.(\d{3}) /;
const ENGINE_LINE = /^(?:\d\d:\d\d:\d\d\.\d{3} )?\[([^\]]+)\] (\d+)\.(\d\d)\.(\d{3})\.(\d{3}) /;
const DAY_MS = 86_400_000;

/**
 * The wall-clock time (epoch ms) of a gateway line, or null for an unstamped one. The stamp has no date:
 * the day is the one that puts it nearest to `nearMs`. The stamp is truncated to the millisecond, so the
 * middle of that millisecond is returned.
 */
export function gatewayTimeMs(line: string, nearMs: number): number | null {
  const m = line.match(GATEWAY_STAMP);
  if (!m) return null;
  const day = Math.floor(nearMs / DAY_MS) * DAY_MS;
  const [h, min, s, ms] = m.slice(1).map(Number);
  const t = day + ((h * 60 + min) * 60 + s) * 1000 + ms + 0.5;
  return t - nearMs > DAY_MS / 2 ? t - DAY_MS : nearMs - t > DAY_MS / 2 ? t + DAY_MS : t;
}

/** The engine's own time (ms since it started) of a relayed line of `model`'s engine, or null. */
export function engineTimeMs(line: string, model: string): number | null {
  const m = line.match(ENGINE_LINE);
  if (!m || m[1] !== model) return null;
  const [min, s, ms, us] = m.slice(2).map(Number);
  return (min * 60 + s) * 1000 + ms + us / 1000;
}

export interface StopTiming {
  /** the gateway's clock alone: its "evicting <model>" → its "<model> stopped"; null if it logged none */
  evictToStoppedMs: number | null;
  /** engine clock: "exit command received" → the engine's last line */
  engineExitMs: number;
  /** the engine's last line → the gateway's "<model> stopped" */
  reportedMs: number;
  /** "exit command received" → "<model> stopped" */
  exitCommandToStoppedMs: number;
}

/**
 * One engine's stop. `lines`: the gateway's log from before that engine was loaded; `answeredAtMs`: when
 * (epoch ms) the bench received the one answer that engine gave. Null when a line it needs is missing (a
 * stop by signal logs no exit command; a log that drops engine lines).
 */
export function stopTiming(lines: readonly string[], model: string, answeredAtMs: number): StopTiming | null {
  let answeredE: number | null = null;
  let exitE: number | null = null;
  let lastE: number | null = null;
  let stoppedAt: number | null = null;
  let evictingAt: number | null = null;
  const stamped = (what: string) => new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} ${what}`);
  const stopped = stamped(`${escape(model)} stopped \\(`);
  const evicting = stamped(`evicting ${escape(model)} \\(`);
  for (const line of lines) {
    if (stopped.test(line)) {
      stoppedAt = gatewayTimeMs(line, answeredAtMs);
      break;
    }
    if (answeredE !== null && evicting.test(line)) evictingAt = gatewayTimeMs(line, answeredAtMs);
    const e = engineTimeMs(line, model);
    if (e === null) continue;
    lastE = e;
    if (exitE === null && /stop processing/.test(line)) answeredE = e;
    if (exitE === null && /exit command received/.test(line)) exitE = e;
  }
  if (answeredE === null || exitE === null || lastE === null || stoppedAt === null) return null;
  const wall = (engineMs: number) => answeredAtMs + (engineMs - answeredE!);
  return {
    evictToStoppedMs: evictingAt === null ? null : stoppedAt - evictingAt,
    engineExitMs: lastE - exitE,
    reportedMs: stoppedAt - wall(lastE),
    exitCommandToStoppedMs: stoppedAt - wall(exitE),
  };
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
