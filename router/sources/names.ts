/** Model names end up in URLs, logs and, through other modules, file paths: keep them tame. */

/**
 * Whether a model name or alias is safe to accept: non-empty, no NUL or other control character,
 * not an absolute path (`/x`, `\x`, `C:\x`), no `..` path segment.
 *
 * @example
 * isSafeModelName("ggml-org/gemma-3-4b-it-GGUF:Q4_K_M"); // true
 * isSafeModelName("../../etc/passwd"); // false
 */
export function isSafeModelName(name: string): boolean {
  if (!name || [...name].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) return false;
  if (/^[/\\]/.test(name) || /^[A-Za-z]:[/\\]/.test(name)) return false;
  return !name.split(/[/\\]/).includes("..");
}
