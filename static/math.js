// LaTeX in model text, as a marked extension rendered by KaTeX: $…$ and \(…\) inline,
// $$…$$ and \[…\] displayed.
//
// The delimiters are recognised before markdown's own escapes run; otherwise "\(" would become
// a plain "(" and the formula would be lost (models write \(…\) as often as $…$).
// A lone "$" is money, not math: "$5 and $10" stays text, as in pandoc: the opening "$" must be
// followed by a non-space, the closing one preceded by a non-space and not followed by a digit.

const INLINE_RULES = [
  [/^\$\$([\s\S]+?)\$\$/, true],
  [/^\\\[([\s\S]+?)\\\]/, true],
  [/^\\\(([\s\S]+?)\\\)/, false],
  [/^\$(?![\s$])((?:\\[\s\S]|[^\\$\n])+?)(?<!\s)\$(?!\d)/, false],
];
const BLOCK_RULE = /^ {0,3}(?:\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\])[ \t]*(?:\n+|$)/;
const CACHE_LIMIT = 500;

export function mathExtension(katex) {
  // A growing reply re-renders its last block every frame: typeset each formula once.
  const cache = new Map();
  const typeset = (tex, displayMode) => {
    const key = (displayMode ? "D" : "I") + tex;
    let html = cache.get(key);
    if (html === undefined) {
      // trust: false keeps \href, \url, \htmlClass and friends from producing links or markup.
      html = katex.renderToString(tex, {
        displayMode, throwOnError: false, trust: false, strict: "ignore", output: "htmlAndMathml",
      });
      if (cache.size >= CACHE_LIMIT) cache.clear();
      cache.set(key, html);
    }
    return html;
  };

  return {
    extensions: [
      {
        name: "mathBlock",
        level: "block",
        start: (src) => src.match(/^ {0,3}(?:\$\$|\\\[)/m)?.index,
        tokenizer(src) {
          const match = BLOCK_RULE.exec(src);
          if (match) return { type: "mathBlock", raw: match[0], tex: (match[1] ?? match[2]).trim() };
          return undefined;
        },
        renderer: (token) => `<div class="math-block">${typeset(token.tex, true)}</div>\n`,
      },
      {
        name: "mathInline",
        level: "inline",
        start: (src) => src.match(/\$|\\[([]/)?.index,
        tokenizer(src) {
          for (const [rule, display] of INLINE_RULES) {
            const match = rule.exec(src);
            if (match) return { type: "mathInline", raw: match[0], tex: match[1].trim(), display };
          }
          return undefined;
        },
        renderer: (token) => typeset(token.tex, token.display),
      },
    ],
  };
}
