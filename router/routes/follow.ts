/**
 * A followed feed as server-sent events (`/models/sse`, `?follow=1` of `/models/logs` and `/activity`): what there
 * is now first, then what comes, each write carrying everything that arrived since the last one. The
 * snapshot is taken in the same turn as the subscription, so nothing falls between them or comes
 * twice. A client that reads slower than items come loses the oldest (and is told how many), instead
 * of the gateway holding them without bound; a keep-alive comment keeps idle proxies from cutting it.
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";

export interface FollowOptions<T> {
  /** the first event's data (what there is now) */
  snapshot(): unknown;
  /** starts delivering new items to `push`; returns the unsubscribe */
  subscribe(push: (item: T) => void): () => void;
  /**
   * The events' data for the items that arrived since the last write (one event for a batch, or one for
   * each); `dropped`: lost to a slow reader
   */
  render(items: T[], dropped: number): unknown[];
  /** items held for a slow reader at most */
  maxPending?: number;
}

const KEEP_ALIVE_MS = 15_000;
const MAX_PENDING = 1000;

export function followSse<T>(c: Context, opts: FollowOptions<T>): Response {
  c.header("X-Accel-Buffering", "no");
  return streamSSE(c, async (stream) => {
    const max = opts.maxPending ?? MAX_PENDING;
    let pending: T[] = [];
    let dropped = 0;
    let wake: (() => void) | undefined;
    const unsubscribe = opts.subscribe((item) => {
      pending.push(item);
      if (pending.length > max) {
        pending.shift();
        dropped++;
      }
      wake?.();
    });
    const first = JSON.stringify(opts.snapshot());
    stream.onAbort(() => wake?.());
    try {
      await stream.writeSSE({ data: first });
      while (!stream.aborted) {
        if (pending.length === 0) {
          const idle = new Promise<void>((resolve) => (wake = resolve));
          const timer = setTimeout(() => wake?.(), KEEP_ALIVE_MS);
          await idle;
          clearTimeout(timer);
          wake = undefined;
          if (pending.length === 0 && !stream.aborted) await stream.write(": ping\n\n");
          continue;
        }
        const items = pending;
        const lost = dropped;
        pending = [];
        dropped = 0;
        for (const data of opts.render(items, lost)) await stream.writeSSE({ data: JSON.stringify(data) });
      }
    } finally {
      unsubscribe();
    }
  });
}
