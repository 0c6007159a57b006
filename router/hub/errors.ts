/**
 * What can go wrong between us and the hub, as small classes the gateway can tell apart: a bad name
 * is the client's fault (400), a missing repo or quant is 404, auth is 401/403, the rest is 5xx.
 */

/** `owner/repo[:tag]` that llama.cpp would refuse too. */
export class InvalidRepoError extends Error {
  constructor(readonly spec: string) {
    super(`invalid HF repo format, expected <user>/<model>[:quant], got '${spec}'`);
    this.name = "InvalidRepoError";
  }
}

/** `--hf-file` names a file the repo does not have. */
export class HubFileNotFoundError extends Error {
  constructor(readonly repo: string, readonly file: string) {
    super(`file '${file}' not found in repository '${repo}' on the hub`);
    this.name = "HubFileNotFoundError";
  }
}

export class RepoNotFoundError extends Error {
  constructor(readonly repo: string, readonly revision = "main") {
    super(`repository '${repo}' (revision '${revision}') not found on the hub`);
    this.name = "RepoNotFoundError";
  }
}

/** The repo exists but has no model file for the tag; `available` lets the user pick another. */
export class QuantNotFoundError extends Error {
  constructor(readonly repo: string, readonly tag: string | undefined, readonly available: string[]) {
    super(
      available.length === 0
        ? `repository '${repo}' has no GGUF model files`
        : `quant '${tag}' not found in '${repo}'; available: ${available.join(", ")}`,
    );
    this.name = "QuantNotFoundError";
  }
}

/** 401/403: the repo is private or gated, or the token is wrong. */
export class HubAuthError extends Error {
  constructor(readonly repo: string, readonly status: number, readonly hadToken: boolean) {
    super(
      !hadToken
        // the hub answers 401, not 404, to anonymous requests for repos that do not exist
        ? `'${repo}' needs authentication or does not exist (private or gated repos need a token): set HF_TOKEN`
        : status === 403
        ? `HF_TOKEN has no access to '${repo}' (gated: accept its conditions on the hub, or use another token)`
        : `the hub rejected HF_TOKEN for '${repo}': set HF_TOKEN to a valid token`,
    );
    this.name = "HubAuthError";
  }
}

/** The hub could not be reached or answered 5xx/429: worth retrying later. */
export class HubUnavailableError extends Error {
  constructor(readonly url: string, detail: string, options?: ErrorOptions) {
    super(`hub unavailable (${url}): ${detail}`, options);
    this.name = "HubUnavailableError";
  }
}

/** A file's bytes do not match the size or hash the hub listed for it. */
export class ChecksumMismatchError extends Error {
  constructor(readonly path: string, readonly expected: string, readonly actual: string) {
    super(`downloaded '${path}' does not verify: expected ${expected}, got ${actual}`);
    this.name = "ChecksumMismatchError";
  }
}

export class DiskFullError extends Error {
  constructor(readonly path: string, options?: ErrorOptions) {
    super(`no space left on device while writing ${path}`, options);
    this.name = "DiskFullError";
  }
}

/** A file request the hub answered with a status we cannot do anything about (e.g. 404 for a file). */
export class HubFileError extends Error {
  constructor(readonly url: string, readonly status: number) {
    super(`hub answered ${status} for ${url}`);
    this.name = "HubFileError";
  }
}

/** The reason a DownloadManager download was cancelled with. */
export class DownloadCancelledError extends Error {
  constructor(readonly key: string) {
    super(`download of '${key}' was cancelled`);
    this.name = "DownloadCancelledError";
  }
}
