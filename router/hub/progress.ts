/**
 * Download progress in the shape llama.cpp's router puts in its `download_progress` SSE event:
 * cumulative bytes per file URL.
 */

export interface DownloadProgress {
  files: Record<string, { done: number; total: number }>;
}

const INTERVAL_MS = 100;

/**
 * Coalesces byte counts into at most one report per 100 ms (llama.cpp throttles the same way); the
 * last change inside a window is delivered at the window's end, and `close()` flushes at once so the
 * final numbers are never lost.
 */
export class ProgressReporter {
  readonly #files: DownloadProgress["files"] = {};
  readonly #emit?: (p: DownloadProgress) => void;
  #last = -Infinity;
  #timer?: ReturnType<typeof setTimeout>;
  #dirty = false;

  constructor(emit?: (p: DownloadProgress) => void) {
    this.#emit = emit;
  }

  set(url: string, done: number, total: number): void {
    this.#files[url] = { done, total };
    this.#dirty = true;
    const wait = this.#last + INTERVAL_MS - Date.now();
    if (wait <= 0) this.#flush();
    else this.#timer ??= setTimeout(() => this.#flush(), wait);
  }

  snapshot(): DownloadProgress {
    return { files: structuredClone(this.#files) };
  }

  close(): void {
    if (this.#dirty) this.#flush();
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#dirty = false;
    this.#last = Date.now();
    this.#emit?.(this.snapshot());
  }
}
