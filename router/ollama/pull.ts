/**
 * `/api/pull` from the gateway's own downloader (router/hub/): Ollama's progress lines, from the
 * download's own events (`download_progress` on the event bus, per file, at most every 100 ms):
 * `pulling manifest`, then `pulling <file>` with `total` and `completed` bytes, then `verifying
 * sha256 digest` (every file is checked against the Hub's sha256 before it appears) and `success`.
 * A client that leaves stops reading the progress; the download itself goes on, as a download
 * started by `POST /models` does, since other requests may be waiting for it.
 */
import type { Context } from "hono";
import { requireModelAllowed } from "../auth.ts";
import type { GatewayDeps } from "../deps.ts";
import { badRequest } from "../errors.ts";
import { DownloadManager } from "../hub/download.ts";
import { parseHubSpec } from "../hub/quant.ts";
import { ndjsonLine, ndjsonResponse } from "./ndjson.ts";

/** `hf.co/owner/repo:Q4_K_M` (Ollama's spelling of a Hub model) as the hub spec `owner/repo:Q4_K_M`. */
export function hubNameOf(name: string): string {
  return name.replace(/^(?:https?:\/\/)?(?:hf\.co|huggingface\.co)\//i, "").replace(/:latest$/i, "");
}

/** A download's file, from the URL its progress is keyed by (`.../resolve/<commit>/<path>`). */
export function fileOfUrl(url: string): string {
  const path = /\/resolve\/[^/]+\/(.+)$/.exec(url)?.[1];
  return path ? decodeURIComponent(path) : url;
}

/** Ollama's progress lines for one `download_progress` event: a line for each file. */
export function progressLines(progress: unknown): Record<string, unknown>[] {
  if (!progress || typeof progress !== "object") return [];
  return Object.entries(progress as Record<string, { done?: number; total?: number }>).map(([url, p]) => {
    const file = fileOfUrl(url);
    return { status: `pulling ${file}`, digest: file, total: p.total ?? 0, completed: p.done ?? 0 };
  });
}

const FINISHED = [{ status: "verifying sha256 digest" }, { status: "success" }];

/** Pulls `name` into the cache and answers with its progress (streamed) or with the outcome. */
export async function pullProgress(
  c: Context,
  deps: GatewayDeps,
  name: string,
  stream: boolean,
): Promise<Response> {
  const wanted = hubNameOf(name);
  requireModelAllowed(c, [wanted]);
  const known = deps.scheduler.find(wanted);
  const present = known !== undefined && known.state !== "downloading" && known.state !== "downloaded";
  if (!present && !deps.config.offline && !deps.puller.canPull(wanted)) {
    throw badRequest(
      `model '${name}' cannot be pulled: Switchyard pulls GGUF models from the Hugging Face Hub, ` +
        `named owner/repo[:quant] or hf.co/owner/repo[:quant]`,
    );
  }
  if (!stream) {
    if (!present) await deps.puller.pull(wanted);
    return c.json({ status: "success" });
  }
  // the downloader reports under its own key (the quant as it parsed it), the table under the name asked for
  const keys = new Set([wanted]);
  let open = true;
  let unsubscribe = () => {};
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  // start() runs at once: the controller is there before the first line
  const body = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
    cancel() {
      open = false;
      unsubscribe();
    },
  });
  const send = (lines: unknown[]) => {
    if (open) { for (const line of lines) controller.enqueue(ndjsonLine(line)); }
  };
  const end = () => {
    unsubscribe();
    if (open) controller.close();
    open = false;
  };
  send([{ status: "pulling manifest" }]);
  if (present) {
    send(FINISHED);
    end();
    return ndjsonResponse(body);
  }
  unsubscribe = deps.events.subscribe((event) => {
    if (event.event === "download_progress" && keys.has(event.model)) {
      send(progressLines(event.data?.progress));
    }
  });
  let done: Promise<string>;
  try {
    done = deps.puller.pull(wanted);
    const spec = parseHubSpec(wanted);
    keys.add(DownloadManager.key(spec.repo, spec.tag));
  } catch (err) {
    // refused before anything was downloaded: an error answer, not a stream
    unsubscribe();
    throw err;
  }
  done.then(() => send(FINISHED), (err: Error) => send([{ error: err.message }])).finally(end);
  return ndjsonResponse(body);
}
