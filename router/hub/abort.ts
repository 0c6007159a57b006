/** Waiting that a cancelled download does not sit through. */

/** Settles with `p` (its rejection ignored) or rejects with the signal's reason, whichever is first. */
export function abortable(p: Promise<unknown>, signal?: AbortSignal): Promise<void> {
  if (!signal) return p.then(() => {}, () => {});
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(() => {}, () => {}).then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = new Promise<void>((r) => timer = setTimeout(r, ms));
  return abortable(done, signal).finally(() => clearTimeout(timer));
}
