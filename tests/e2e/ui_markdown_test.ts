/**
 * The web UI's markdown renderer (ui/markdown.js): structure and, above all, safety. It runs without a
 * browser because the renderer returns an HTML string.
 */
import { assert, assertEquals, assertIncludes } from "./ui_assert.ts";
import { escapeHtml, renderMarkdown } from "../../ui/markdown.js";

Deno.test("markdown: HTML in the source is escaped, never interpreted", () => {
  const html = renderMarkdown("<script>alert(1)</script> <img src=x onerror=\"x()\"> & 'q'");
  assertEquals(
    html,
    "<p>&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=&quot;x()&quot;&gt; &amp; &#39;q&#39;</p>",
  );
  assertEquals(escapeHtml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
});

Deno.test("markdown: links are limited to safe schemes and open with rel=noopener", () => {
  const ok = renderMarkdown("[docs](https://example.com/a?b=1&c=2)");
  assertEquals(
    ok,
    '<p><a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">docs</a></p>',
  );
  assertEquals(renderMarkdown("[x](javascript:alert(1))"), "<p>x</p>");
  assertEquals(renderMarkdown("[x](//evil.example)"), "<p>x</p>");
  const quoteBreak = renderMarkdown('[x](https://a.example/"onmouseover="alert(1))');
  assert(!quoteBreak.includes('"onmouseover'), quoteBreak);
  const bare = renderMarkdown("see https://example.com/x.");
  assertIncludes(bare, '<a href="https://example.com/x" target="_blank" rel="noopener noreferrer">');
  assertIncludes(bare, "</a>.</p>");
});

Deno.test("markdown: inline code, bold, italic, strikethrough", () => {
  assertEquals(
    renderMarkdown("**bold** *it* _it2_ ~~gone~~ `a <b> **c**`"),
    "<p><strong>bold</strong> <em>it</em> <em>it2</em> <del>gone</del> <code>a &lt;b&gt; **c**</code></p>",
  );
  assertEquals(renderMarkdown("2*3*4 and snake_case_name"), "<p>2*3*4 and snake_case_name</p>");
  assertEquals(renderMarkdown("*a*"), "<p><em>a</em></p>");
});

Deno.test("markdown: fenced code blocks, closed and still streaming", () => {
  const closed = renderMarkdown("Intro\n```js\nconst a = 1 < 2;\n```\nAfter");
  assertIncludes(closed, '<pre><code class="language-js">const a = 1 &lt; 2;</code></pre>');
  assertIncludes(closed, "<p>After</p>");
  const open = renderMarkdown("```\nline 1\n**not bold**");
  assertIncludes(open, "<pre><code>line 1\n**not bold**</code></pre>");
  assert(!open.includes("<strong>"));
  const lang = renderMarkdown('```"><img>\nx\n```');
  assert(!lang.includes("<img>"), lang);
});

Deno.test("markdown: lists, nested lists, headings, quotes, rules, tables", () => {
  assertEquals(
    renderMarkdown("- a\n- b\n  - c\n  - d\n- e"),
    "<ul><li>a</li><li>b\n<ul><li>c</li><li>d</li></ul></li><li>e</li></ul>",
  );
  assertEquals(renderMarkdown("3. x\n4. y"), '<ol start="3"><li>x</li><li>y</li></ol>');
  assertEquals(renderMarkdown("1. x\n   - y"), "<ol><li>x\n<ul><li>y</li></ul></li></ol>");
  assertEquals(renderMarkdown("## Title **b**"), "<h2>Title <strong>b</strong></h2>");
  assertEquals(renderMarkdown("> quoted\n> more"), "<blockquote><p>quoted<br>more</p></blockquote>");
  assertEquals(renderMarkdown("a\n\n---\n\nb"), "<p>a</p>\n<hr>\n<p>b</p>");
  const table = renderMarkdown("| a | b |\n|:--|--:|\n| 1 | `2` |");
  assertIncludes(table, '<th style="text-align:left">a</th><th style="text-align:right">b</th>');
  assertIncludes(table, '<td style="text-align:right"><code>2</code></td>');
  assertEquals(renderMarkdown("line one\nline two"), "<p>line one<br>line two</p>");
});
