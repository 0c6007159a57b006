/** Waiting that a client who left, a timed-out request or a cancelled download does not sit through. */

/** Settles as `p` does, or rejects with the signal's reason as soon as it aborts, whichever is first. */
export function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Waits `ms`, or rejects with the signal's reason when it aborts first; the timer never outlives it. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = new Promise<void>((r) => timer = setTimeout(r, ms));
  return abortable(done, signal).finally(() => clearTimeout(timer));
}
