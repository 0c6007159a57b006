// @ts-check
/**
 * A small, safe markdown renderer for chat messages.
 *
 * Safety rule: every piece of source text is HTML-escaped before any markup is added, and the
 * only tags produced are the fixed ones below. Link targets are limited to http(s), mailto and
 * relative URLs; anything else is rendered as plain text.
 *
 * Supported: fenced code blocks (an unclosed fence runs to the end, which suits streaming), inline
 * code, headings, bold, italic, strikethrough, links and bare URLs, nested lists, block quotes,
 * horizontal rules and pipe tables.
 *
 * @example
 * renderMarkdown("**hi** <b>") // => "<p><strong>hi</strong> &lt;b&gt;</p>"
 */

/** @type {Record<string, string>} */
const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/**
 * Escapes text for use in HTML content and quoted attribute values.
 * @param {string} text
 * @returns {string}
 */
export function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?/;
const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/;

/**
 * Renders markdown source to an HTML string that is safe to assign to innerHTML.
 * @param {string} source
 * @returns {string}
 */
export function renderMarkdown(source) {
  return renderBlocks(source.replace(/\r\n?/g, "\n").split("\n"));
}

/**
 * @param {string[]} lines
 * @returns {string}
 */
function renderBlocks(lines) {
  /** @type {string[]} */
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i++;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const marker = fence[1];
      const body = [];
      i++;
      while (i < lines.length && !isClosingFence(lines[i], marker)) body.push(lines[i++]);
      i++; // the closing fence, or past the end when the block is still streaming
      out.push(codeBlock(body.join("\n"), fence[2]));
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      const level = heading[1].length;
      out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
      i++;
      continue;
    }
    if (RULE.test(line)) {
      out.push("<hr>");
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && lines[i].trim() && QUOTE.test(lines[i])) {
        body.push(lines[i++].replace(QUOTE, ""));
      }
      out.push(`<blockquote>${renderBlocks(body)}</blockquote>`);
      continue;
    }
    if (LIST_ITEM.test(line)) {
      const end = listEnd(lines, i);
      out.push(renderList(lines.slice(i, end)));
      i = end;
      continue;
    }
    if (
      line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes("-")
    ) {
      const rows = [];
      let j = i + 2;
      while (j < lines.length && lines[j].trim() && lines[j].includes("|")) rows.push(lines[j++]);
      out.push(renderTable(line, lines[i + 1], rows));
      i = j;
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !startsBlock(lines, i)) para.push(lines[i++].trim());
    if (para.length === 0) para.push(lines[i++].trim()); // a line that looked like a block but is not one
    out.push(`<p>${para.map(inline).join("<br>")}</p>`);
  }
  return out.join("\n");
}

/**
 * @param {string} line
 * @param {string} marker
 */
function isClosingFence(line, marker) {
  const t = line.trim();
  return t.length >= marker.length && t[0] === marker[0] && /^(`+|~+)$/.test(t);
}

/**
 * @param {string[]} lines
 * @param {number} i
 */
function startsBlock(lines, i) {
  const line = lines[i];
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
    LIST_ITEM.test(line) ||
    (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) &&
      lines[i + 1].includes("-"));
}

/**
 * @param {string} code
 * @param {string} lang
 */
function codeBlock(code, lang) {
  const label = lang ? escapeHtml(lang) : "text";
  const cls = lang ? ` class="language-${escapeHtml(lang)}"` : "";
  return `<div class="code-block"><div class="code-head"><span>${label}</span>` +
    `<button type="button" class="copy-code" aria-label="Copy code">Copy</button></div>` +
    `<pre><code${cls}>${escapeHtml(code)}</code></pre></div>`;
}

/**
 * Where a list that starts at `start` ends: at a blank line followed by something that is neither a
 * list item nor indented, or at an unindented line that is not a list item.
 * @param {string[]} lines
 * @param {number} start
 */
function listEnd(lines, start) {
  let i = start + 1;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      let j = i + 1;
      while (j < lines.length && !lines[j].trim()) j++;
      if (j < lines.length && (LIST_ITEM.test(lines[j]) || /^\s{2,}\S/.test(lines[j]))) {
        i = j;
        continue;
      }
      return i;
    }
    if (!LIST_ITEM.test(line) && !/^\s/.test(line)) {
      if (startsBlock(lines, i)) return i;
    }
    i++;
  }
  return i;
}

/**
 * @param {string[]} lines the lines of one list, the first being an item
 * @returns {string}
 */
function renderList(lines) {
  const first = /** @type {RegExpExecArray} */ (LIST_ITEM.exec(lines[0]));
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  /** @type {{lines: string[], width: number}[]} */
  const items = [];
  let rest = -1;
  for (let k = 0; k < lines.length; k++) {
    const line = lines[k];
    const m = LIST_ITEM.exec(line);
    if (m && m[1].length <= indent + 1) {
      if (/\d/.test(m[2]) !== ordered) {
        rest = k; // a list of the other kind starts here
        break;
      }
      items.push({ lines: [m[3]], width: m[1].length + m[2].length + 1 });
    } else {
      const item = items[items.length - 1];
      const lead = /^\s*/.exec(line)?.[0].length ?? 0;
      item.lines.push(line.slice(Math.min(lead, item.width)));
    }
  }
  const start = ordered ? parseInt(first[2], 10) : 1;
  const tag = ordered ? "ol" : "ul";
  const attr = ordered && start !== 1 ? ` start="${start}"` : "";
  const body = items.map((item) => {
    let html = renderBlocks(item.lines);
    if (html.startsWith("<p>")) {
      const close = html.indexOf("</p>");
      html = html.slice(3, close) + html.slice(close + 4);
    }
    return `<li>${html}</li>`;
  }).join("");
  const list = `<${tag}${attr}>${body}</${tag}>`;
  return rest >= 0 ? list + "\n" + renderList(lines.slice(rest)) : list;
}

/**
 * @param {string} row
 * @returns {string[]}
 */
function cells(row) {
  let t = row.trim();
  if (t.startsWith("|")) t = t.slice(1);
  if (t.endsWith("|") && !t.endsWith("\\|")) t = t.slice(0, -1);
  return t.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
}

/**
 * @param {string} head
 * @param {string} sep
 * @param {string[]} rows
 */
function renderTable(head, sep, rows) {
  const aligns = cells(sep).map((c) =>
    c.startsWith(":") && c.endsWith(":")
      ? "center"
      : c.endsWith(":")
      ? "right"
      : c.startsWith(":")
      ? "left"
      : ""
  );
  /**
   * @param {string} tag
   * @param {string[]} values
   */
  const row = (tag, values) =>
    "<tr>" + aligns.map((a, k) => {
      const style = a ? ` style="text-align:${a}"` : "";
      return `<${tag}${style}>${inline(values[k] ?? "")}</${tag}>`;
    }).join("") + "</tr>";
  return `<div class="table-wrap"><table><thead>${row("th", cells(head))}</thead>` +
    `<tbody>${rows.map((r) => row("td", cells(r))).join("")}</tbody></table></div>`;
}

/**
 * @param {string} url an already escaped URL
 */
function safeUrl(url) {
  return /^(https?:\/\/|mailto:|\/(?!\/)|#)/i.test(url);
}

/**
 * Renders inline markdown. The text is escaped first; code spans and links are set aside in
 * numbered slots so that later rules cannot reach inside them.
 * @param {string} text
 * @returns {string}
 */
export function inline(text) {
  /** @type {string[]} */
  const slots = [];
  /** @param {string} html */
  const keep = (html) => `\uE000${slots.push(html) - 1}\uE000`;
  let s = escapeHtml(text.replace(/\uE000/g, ""));
  s = s.replace(/(`+)(?!`)([\s\S]*?[^`])\1(?!`)/g, (_, _ticks, code) => keep(`<code>${code.trim()}</code>`));
  s = s.replace(
    /\[([^\]\n]+)\]\(\s*((?:[^()\s]|\([^()\s]*\))+)(?:\s+&quot;[^\n]*?&quot;)?\s*\)/g,
    (_match, label, url) => {
      if (!safeUrl(url)) return label;
      return keep(`<a href="${url}" target="_blank" rel="noopener noreferrer">${emphasis(label)}</a>`);
    },
  );
  s = s.replace(/\bhttps?:\/\/(?:(?!&(?:quot|lt|gt|#39);)[^\s<\uE000])+/g, (url) => {
    const trail = /[.,:;!?)\]]+$/.exec(url)?.[0] ?? "";
    const href = url.slice(0, url.length - trail.length);
    return keep(`<a href="${href}" target="_blank" rel="noopener noreferrer">${href}</a>`) + trail;
  });
  s = emphasis(s);
  return s.replace(/\uE000(\d+)\uE000/g, (_, n) => slots[Number(n)]);
}

/**
 * @param {string} s escaped text
 * @returns {string}
 */
function emphasis(s) {
  return s
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
    .replace(/(^|[^*\w])\*([^\s*](?:[^*]*?[^\s*])?)\*(?!\*)/g, "$1<em>$2</em>")
    .replace(/(^|[^\w])_([^\s_](?:[^_]*?[^\s_])?)_(?!\w)/g, "$1<em>$2</em>")
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>");
}
