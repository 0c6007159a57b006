/**
 * The preset INI dialect of llama.cpp (`common/preset.cpp`, a PEG grammar), parsed by hand: npm's
 * `ini` nests dotted section names (`[org/x-1.5B]`) and accepts indented keys.
 *
 * - a line is `[name]`, `key = value`, a comment (`;` or `#` after optional blanks) or blank;
 *   CRLF, LF and CR all end lines;
 * - keys and headers start at column 0; a key matches `[A-Za-z_][A-Za-z0-9_.-]*`;
 * - a value runs to the first `;` or `#` (an inline comment) or the line end, trailing blanks
 *   trimmed; quotes are kept; it may be empty;
 * - a repeated key in a section: the last one wins; `version` is reserved and skipped;
 * - keys before any header belong to section `default`.
 *
 * Deviations: a repeated section header is an error (llama.cpp silently restarts the section),
 * trailing blanks inside `[name ]` are trimmed (llama.cpp keeps them in the name), a leading UTF-8
 * BOM is ignored, and every error names the file and line.
 */
import { SourceError } from "./types.ts";

export interface IniEntry {
  value: string;
  /** 1-based line of the (last) occurrence */
  line: number;
}

export interface IniSection {
  name: string;
  /** 1-based line of the header; 0 for the implicit `default` section */
  line: number;
  entries: Map<string, IniEntry>;
}

/** The default section name for keys before any header. */
export const DEFAULT_SECTION = "default";

const HEADER_RE = /^\[[ \t]*([^\]]+)\][ \t]*(?:[;#].*)?$/;
const KEY_RE = /^([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*([^;#]*)(?:[;#].*)?$/;
const SKIP_RE = /^[ \t]*(?:[;#].*)?$/;

/**
 * Parses preset INI text into sections in file order. The implicit `default` section is included
 * only when it holds a key.
 *
 * @example
 * parseIni("[*]\nctx-size = 4096 ; all models\n", "my.ini")[0].entries.get("ctx-size"); // { value: "4096", line: 2 }
 */
export function parseIni(text: string, file: string): IniSection[] {
  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\n|\r/);
  const implicit: IniSection = { name: DEFAULT_SECTION, line: 0, entries: new Map() };
  const sections: IniSection[] = [implicit];
  const seen = new Map<string, number>();
  let current = implicit;
  let implicitFirst: number | undefined;

  lines.forEach((raw, i) => {
    const line = i + 1;
    if (SKIP_RE.test(raw)) return;
    const header = HEADER_RE.exec(raw);
    if (header) {
      const name = header[1].replace(/[ \t]+$/, "");
      if (!name) throw new SourceError(`${file}:${line}: empty section name`, file, line);
      const first = seen.get(name) ?? (name === DEFAULT_SECTION ? implicitFirst : undefined);
      if (first !== undefined) {
        throw new SourceError(
          `${file}:${line}: duplicate section [${name}] (first at line ${first})`,
          file,
          line,
        );
      }
      seen.set(name, line);
      current = { name, line, entries: new Map() };
      sections.push(current);
      return;
    }
    const kv = KEY_RE.exec(raw);
    if (kv) {
      if (kv[1] === "version") return;
      if (current === implicit) implicitFirst ??= line;
      current.entries.set(kv[1], { value: kv[2].replace(/[ \t]+$/, ""), line });
      return;
    }
    throw new SourceError(`${file}:${line}: ${describe(raw)}`, file, line);
  });

  return implicit.entries.size ? sections : sections.slice(1);
}

function describe(raw: string): string {
  if (/^[ \t]/.test(raw)) {
    return "keys and section headers must start at column 0 (only comments and blank lines may be indented)";
  }
  if (raw.startsWith("[")) return `bad section header '${raw}' (expected [name])`;
  return `expected 'key = value', '[section]' or a comment, got '${raw}'`;
}
