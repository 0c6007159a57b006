/** Where the hub is, who we are to it, and where its files land. */

export const DEFAULT_HUB_ENDPOINT = "https://huggingface.co";

export interface HubOptions {
  /** hub base URL, no trailing slash needed; default https://huggingface.co */
  endpoint: string;
  /** sent as `Authorization: Bearer` to the API and on file downloads */
  token?: string;
  /** HF hub cache root (LLAMA_CACHE used as-is, like llama.cpp) */
  cacheDir: string;
  /** for tests and proxies */
  fetch?: typeof fetch;
}

/**
 * Same precedence as llama.cpp (`common_get_model_endpoint`): MODEL_ENDPOINT, then HF_ENDPOINT, so that
 * a mirror configured for llama-server is also the one we download from.
 *
 * @example
 * const opts = hubOptionsFromEnv(Deno.env.toObject(), "/var/cache/hub");
 */
export function hubOptionsFromEnv(env: Record<string, string | undefined>, cacheDir: string): HubOptions {
  const endpoint = env.MODEL_ENDPOINT || env.HF_ENDPOINT || DEFAULT_HUB_ENDPOINT;
  const token = env.HF_TOKEN || undefined;
  return { endpoint: trimEndpoint(endpoint), token, cacheDir };
}

/** The library and our URLs both append `/api/...` or `/<repo>/...`; a trailing slash would double it. */
export function trimEndpoint(endpoint: string): string {
  return endpoint.replace(/\/+$/, "");
}

/** The URL llama.cpp records for a file (its progress key and what `-hf` fetches). */
export function resolveUrl(
  opts: Pick<HubOptions, "endpoint">,
  repo: string,
  commit: string,
  path: string,
): string {
  const encoded = path.split("/").map(encodeURIComponent).join("/");
  return `${trimEndpoint(opts.endpoint)}/${repo}/resolve/${commit}/${encoded}`;
}

/**
 * A fetch that carries the token. We add the header ourselves rather than pass `accessToken` to
 * @huggingface/hub because the library throws on tokens without the `hf_` prefix, which mirrors and
 * enterprise proxies behind HF_ENDPOINT do not always use.
 */
export function hubFetch(opts: Pick<HubOptions, "token" | "fetch">, signal?: AbortSignal): typeof fetch {
  const base = opts.fetch ?? fetch;
  return (input, init) => {
    const headers = new Headers(init?.headers);
    if (opts.token && !headers.has("Authorization")) headers.set("Authorization", `Bearer ${opts.token}`);
    return base(input, { ...init, headers, signal: init?.signal ?? signal });
  };
}
