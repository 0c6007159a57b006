/**
 * One file from the hub into one blob: streamed to a temp file, resumed with `Range` after a dropped
 * connection, hashed on the way, renamed into place only once size and hash match what the hub listed.
 */
import { createHash, type Hash } from "node:crypto";
import { sleep } from "../abort.ts";
import {
  ChecksumMismatchError,
  DiskFullError,
  HubAuthError,
  HubFileError,
  HubUnavailableError,
} from "./errors.ts";
import { hubFetch, type HubOptions } from "./options.ts";

export interface BlobSource {
  repo: string;
  path: string;
  url: string;
  size: number;
  /** sha256 (64 hex, LFS) or git blob sha1 (40 hex) */
  oid: string;
}

export interface TransferOptions extends Pick<HubOptions, "token" | "fetch"> {
  signal?: AbortSignal;
  /** further attempts after a dropped connection or a 5xx */
  retries: number;
  /** first backoff, doubled on each retry */
  retryDelayMs: number;
  /** bytes of this file on disk so far, after every chunk */
  onBytes: (done: number) => void;
}

/** The connection ended before the body did, or the hub asked us to come back later. */
class RetryableError extends Error {}

/**
 * Downloads `src` to `dest`, via `temp`. A temp file left by a process that died is resumed (its bytes
 * are re-hashed first); any failure removes the temp file, so only a retry in progress keeps one.
 */
export async function transferBlob(
  src: BlobSource,
  temp: string,
  dest: string,
  opts: TransferOptions,
): Promise<void> {
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(temp, { read: true, write: true, create: true });
    const sink = await BlobSink.resume(file, src);
    opts.onBytes(sink.written);
    for (let attempt = 0;; attempt++) {
      try {
        await pull(src, sink, opts);
        break;
      } catch (err) {
        opts.signal?.throwIfAborted();
        if (!isRetryable(err)) throw err;
        if (attempt >= opts.retries) {
          const why = `download failed after ${attempt + 1} attempts: ${(err as Error).message}`;
          throw new HubUnavailableError(src.url, why, { cause: err });
        }
        await sleep(opts.retryDelayMs * 2 ** attempt, opts.signal);
      }
    }
    sink.verify();
    await file.syncData();
    file.close();
    file = undefined;
    await Deno.rename(temp, dest);
  } catch (err) {
    file?.close();
    await Deno.remove(temp).catch(() => {});
    if ((err as { code?: string }).code === "ENOSPC") throw new DiskFullError(dest, { cause: err });
    throw err;
  }
}

async function pull(src: BlobSource, sink: BlobSink, opts: TransferOptions): Promise<void> {
  if (sink.written >= src.size) return;
  const headers: HeadersInit = sink.written > 0 ? { Range: `bytes=${sink.written}-` } : {};
  const res = await hubFetch(opts, opts.signal)(src.url, { headers });
  if (!res.ok) {
    await res.body?.cancel();
    throw statusError(src, res.status, !!opts.token);
  }
  if (sink.written > 0 && res.status === 200) {
    // the server ignored the Range: its body starts at byte 0, so the file must too
    await sink.restart();
  } else if (sink.written > 0 && rangeStart(res) !== sink.written) {
    await res.body?.cancel();
    await sink.restart();
    throw new RetryableError("the server resumed at another offset");
  }
  if (!res.body) throw new RetryableError("empty body");
  for await (const chunk of res.body) {
    await sink.append(chunk);
    opts.onBytes(sink.written);
  }
  if (sink.written < src.size) {
    throw new RetryableError(`connection closed at ${sink.written}/${src.size} bytes`);
  }
}

function rangeStart(res: Response): number | undefined {
  const m = /^bytes (\d+)-/.exec(res.headers.get("Content-Range") ?? "");
  return m ? Number(m[1]) : undefined;
}

function statusError(src: BlobSource, status: number, hadToken: boolean): Error {
  if (status === 401 || status === 403) return new HubAuthError(src.repo, status, hadToken);
  if (status === 408 || status === 429 || status >= 500) return new RetryableError(`hub answered ${status}`);
  return new HubFileError(src.url, status);
}

function isRetryable(err: unknown): boolean {
  // fetch and body reads report resets and refused connections as TypeError
  return err instanceof RetryableError || err instanceof TypeError ||
    err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.ConnectionAborted ||
    err instanceof Deno.errors.UnexpectedEof || err instanceof Deno.errors.TimedOut ||
    err instanceof Deno.errors.Interrupted;
}

/** The temp file and the running hash of exactly the bytes in it. */
class BlobSink {
  #hash!: Hash;
  written = 0;

  private constructor(private readonly file: Deno.FsFile, private readonly src: BlobSource) {
    this.#reset();
  }

  static async resume(file: Deno.FsFile, src: BlobSource): Promise<BlobSink> {
    const sink = new BlobSink(file, src);
    const size = (await file.stat()).size;
    if (size > src.size) await sink.restart();
    else if (size > 0) {
      const buf = new Uint8Array(1 << 20);
      for (let n = await file.read(buf); n !== null; n = await file.read(buf)) {
        sink.#hash.update(buf.subarray(0, n));
        sink.written += n;
      }
    }
    return sink;
  }

  async append(chunk: Uint8Array): Promise<void> {
    if (this.written + chunk.length > this.src.size) {
      throw new ChecksumMismatchError(this.src.path, `${this.src.size} bytes`, `more than ${this.src.size}`);
    }
    for (let n = 0; n < chunk.length;) n += await this.file.write(chunk.subarray(n));
    this.#hash.update(chunk);
    this.written += chunk.length;
  }

  async restart(): Promise<void> {
    await this.file.truncate(0);
    await this.file.seek(0, Deno.SeekMode.Start);
    this.#reset();
  }

  verify(): void {
    if (this.written !== this.src.size) {
      throw new ChecksumMismatchError(this.src.path, `${this.src.size} bytes`, `${this.written} bytes`);
    }
    const actual = this.#hash.digest("hex");
    if (actual !== this.src.oid.toLowerCase()) {
      throw new ChecksumMismatchError(this.src.path, this.src.oid, actual);
    }
  }

  #reset(): void {
    this.written = 0;
    // Small files are plain git objects named by their git oid: sha1 over "blob <size>\0" + content.
    this.#hash = this.src.oid.length === 40
      ? createHash("sha1").update(`blob ${this.src.size}\0`)
      : createHash("sha256");
  }
}
