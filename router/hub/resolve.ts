/**
 * `owner/repo[:tag]` → the exact files (and commit) to download, from the hub's metadata API.
 */
import { HubApiError, listFiles, modelInfo } from "@huggingface/hub";
import {
  HubAuthError,
  HubFileNotFoundError,
  HubUnavailableError,
  InvalidRepoError,
  QuantNotFoundError,
  RepoNotFoundError,
} from "./errors.ts";
import { hubFetch, type HubOptions, resolveUrl, trimEndpoint } from "./options.ts";
import {
  availableQuants,
  ggufSplitInfo,
  type HubSpec,
  isValidRepoId,
  pickMmproj,
  pickPrimary,
  shardsOf,
} from "./quant.ts";

export interface HubFile {
  /** path inside the repo, `/`-separated */
  path: string;
  size: number;
  /** LFS sha256 (64 hex) for LFS files, else the git blob sha1 (40 hex); names the blob in the cache */
  oid: string;
  /** the resolve URL pinned to the commit; also the key of this file in progress reports */
  url: string;
  role: "model" | "mmproj";
}

export interface HubPlan {
  repo: string;
  /** the branch we resolved and whose ref we write: always "main", as llama.cpp prefers */
  revision: string;
  /** 40-hex commit the files are pinned to; the snapshot folder name */
  commit: string;
  /** the tag llama.cpp derives from the file name (cache id `repo:TAG`), e.g. "Q4_K_M" */
  tag: string;
  /** model shards in order, then the mmproj if any */
  files: HubFile[];
  /** first shard: what `--model` points at */
  primary: HubFile;
  mmproj?: HubFile;
}

const REVISION = "main";

interface ListedFile {
  path: string;
  size: number;
  oid: string;
}

/**
 * @example
 * const plan = await resolveHubFiles({ repo: "ggml-org/gemma-3-1b-it-GGUF" }, hubOptionsFromEnv(env, cacheDir));
 * plan.primary.path; // "gemma-3-1b-it-Q4_K_M.gguf"
 */
export async function resolveHubFiles(
  spec: HubSpec,
  opts: HubOptions & { signal?: AbortSignal },
): Promise<HubPlan> {
  const { repo, tag } = spec;
  if (!isValidRepoId(repo)) throw new InvalidRepoError(tag ? `${repo}:${tag}` : repo);
  const { commit, gated, listing } = await listRepo(repo, opts);
  const primary = spec.file ? listing.find((l) => l.path === spec.file) : pickPrimary(listing, tag);
  if (!primary && spec.file) throw new HubFileNotFoundError(repo, spec.file);
  if (!primary) throw new QuantNotFoundError(repo, tag, availableQuants(listing.map((l) => l.path)));
  const toFile = (l: ListedFile, role: HubFile["role"]): HubFile => ({
    ...l,
    url: resolveUrl(opts, repo, commit, l.path),
    role,
  });
  const model = shardsOf(listing, primary).map((l) => toFile(l, "model"));
  const mm = pickMmproj(listing, primary.path);
  const mmproj = mm ? toFile(mm, "mmproj") : undefined;
  const plan: HubPlan = {
    repo,
    revision: REVISION,
    commit,
    tag: ggufSplitInfo(primary.path)?.tag ?? "",
    files: mmproj ? [...model, mmproj] : model,
    primary: model[0],
    ...(mmproj ? { mmproj } : {}),
  };
  // Gated repos list their files to anyone and refuse only the bytes; finding that out now turns
  // a download that would fail later into an immediate, actionable error.
  if (gated) await checkFileAccess(plan.primary.url, repo, opts, hubFetch(opts, opts.signal));
  return plan;
}

async function checkFileAccess(
  url: string,
  repo: string,
  opts: HubOptions & { signal?: AbortSignal },
  f: typeof fetch,
): Promise<void> {
  let res: Response;
  try {
    res = await f(url, { method: "HEAD", redirect: "manual" });
  } catch (err) {
    throw toHubError(err, repo, opts, url);
  }
  await res.body?.cancel();
  if (res.status === 401 || res.status === 403) throw new HubAuthError(repo, res.status, !!opts.token);
  if (res.status >= 400) throw new HubUnavailableError(url, `HEAD answered ${res.status}`);
}

/** The repo's files at the commit `main` points to now (paths, sizes, LFS sha256 or git sha1). */
export async function listRepo(
  repo: string,
  opts: HubOptions & { signal?: AbortSignal },
): Promise<{ commit: string; gated: unknown; listing: ListedFile[] }> {
  const hubUrl = trimEndpoint(opts.endpoint);
  const f = hubFetch(opts, opts.signal);
  return await withHubErrors(repo, opts, hubUrl, async () => {
    const info = await modelInfo({
      name: repo,
      revision: REVISION,
      additionalFields: ["sha"],
      hubUrl,
      fetch: f,
    });
    if (!/^[0-9a-f]{40}$/i.test(info.sha ?? "")) {
      throw new HubUnavailableError(hubUrl, `no commit sha in the model info of '${repo}'`);
    }
    const listing: ListedFile[] = [];
    for await (const e of listFiles({ repo, revision: info.sha, recursive: true, hubUrl, fetch: f })) {
      const oid = e.lfs?.oid ?? e.oid;
      if (e.type === "file" && isSafeRepoPath(e.path) && oid && isValidOid(oid)) {
        listing.push({ path: e.path, size: e.lfs?.size ?? e.size, oid });
      }
    }
    return { commit: info.sha, gated: info.gated, listing };
  });
}

async function withHubErrors<T>(
  repo: string,
  opts: HubOptions & { signal?: AbortSignal },
  url: string,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toHubError(err, repo, opts, url);
  }
}

function toHubError(
  err: unknown,
  repo: string,
  opts: HubOptions & { signal?: AbortSignal },
  url: string,
): unknown {
  if (opts.signal?.aborted) return opts.signal.reason;
  if (err instanceof HubApiError) {
    if (err.statusCode === 401 || err.statusCode === 403) {
      return new HubAuthError(repo, err.statusCode, !!opts.token);
    }
    if (err.statusCode === 404) return new RepoNotFoundError(repo, REVISION);
    return new HubUnavailableError(url, err.message, { cause: err });
  }
  // fetch reports refused connections, DNS and TLS failures as TypeError
  if (err instanceof TypeError) return new HubUnavailableError(url, err.message, { cause: err });
  return err;
}

/** Paths become file names under the snapshot; nothing may climb out of it. */
function isSafeRepoPath(path: string): boolean {
  return path !== "" && !path.startsWith("/") && !path.includes("\\") &&
    path.split("/").every((seg) => seg !== "" && seg !== "." && seg !== "..");
}

function isValidOid(oid: string): boolean {
  return /^([0-9a-f]{40}|[0-9a-f]{64})$/i.test(oid);
}
