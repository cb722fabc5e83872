// Model text to safe DOM: markdown (marked), LaTeX (KaTeX), code highlighting (highlight.js),
// and DOMPurify as the one gate every piece of generated HTML passes before it reaches the page.
//
// Model text is hostile (a prompt injection can make a model write anything), so:
// - raw HTML in the markdown is shown as text, except a few harmless formatting tags (<br> in
//   tables is common in model output);
// - markdown images become links: an image loads by itself, and its URL can carry data out;
// - DOMPurify then drops scripts, frames, forms, styles, event handlers and every URL that is
//   not http(s) or mailto, and every link opens in a new tab without an opener.
//
// The libraries are loaded once from the URLs the page gives in data- attributes (served by
// streamdesk/views/vendor.py). If they cannot be loaded, text is shown as plain text.

import { tr } from "./i18n.js";
import { mathExtension } from "./math.js";

const SIMPLE_TAG = /^<\/?(?:br|sup|sub|kbd|b|i|em|strong|u|s|del|ins|mark|small)\s*\/?>$/i;
const FORBID_TAGS = ["script", "iframe", "frame", "frameset", "object", "embed", "form", "style",
  "link", "meta", "base", "input", "button", "textarea", "select", "option", "img", "image",
  "picture", "source", "video", "audio", "track", "use", "foreignObject", "dialog", "template"];
const PURIFY = {
  FORBID_TAGS,
  FORBID_ATTR: ["srcset", "action", "formaction", "ping", "autofocus", "tabindex"],
  ALLOW_DATA_ATTR: false,
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
  ADD_ATTR: ["target"],
  RETURN_DOM_FRAGMENT: true,
};
// Highlighting is the costly part of a render; an unfinished code block longer than this is
// shown plain until it is complete (live.js decides when).
export const HIGHLIGHT_LIVE_LIMIT = 4000;

let engine = null; // {marked, purify, hljs} once loaded; null: plain text

const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Load the libraries; resolves true when markdown rendering is available. */
export async function loadRenderer(urls = document.body.dataset) {
  if (engine) return true;
  try {
    const [markedModule, purifyModule, hljsModule, katexModule] = await Promise.all([
      import(urls.vendorMarked), import(urls.vendorDompurify),
      import(urls.vendorHighlight), import(urls.vendorKatex),
    ]);
    engine = build(markedModule.Marked, purifyModule.default, hljsModule.default,
                   katexModule.default);
    return true;
  } catch (error) {
    console.warn("Markdown libraries unavailable (run `npm ci`); showing plain text.", error);
    return false;
  }
}

function build(Marked, purify, hljs, katex) {
  let highlightCode = true; // per render call, see renderMarkdown
  const marked = new Marked({ gfm: true, breaks: false });
  marked.use({
    renderer: {
      html: ({ text }) => (SIMPLE_TAG.test(text.trim()) ? text : escapeHtml(text)),
      image: ({ href, text }) =>
        `<a class="image-link" href="${escapeHtml(href || "")}">${escapeHtml(text || href || "")}</a>`,
      code({ text, lang }) {
        const language = /^[\w+#.-]+/.exec((lang || "").trim())?.[0].toLowerCase() || "";
        const known = language && hljs.getLanguage(language);
        const body = known && highlightCode
          ? hljs.highlight(text, { language, ignoreIllegals: true }).value
          : escapeHtml(text);
        const name = language ? ` language-${language}` : "";
        return `<pre><code class="hljs${name}">${body}</code></pre>\n`;
      },
    },
  });
  marked.use(mathExtension(katex));

  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      if (node.hasAttribute("href")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      } else {
        node.removeAttribute("target");
      }
    }
  });
  const toFragment = (html) => purify.sanitize(html, PURIFY);
  return {
    sanitize: toFragment,
    render(text, highlight) {
      highlightCode = highlight;
      try {
        return toFragment(marked.parse(text));
      } finally {
        highlightCode = true;
      }
    },
  };
}

/** Markdown text to a sanitized DocumentFragment with its code blocks decorated. */
export function renderMarkdown(text, { highlight = true } = {}) {
  if (!engine) return plainFragment(text);
  const fragment = engine.render(text, highlight);
  for (const pre of fragment.querySelectorAll("pre")) decorateCode(pre);
  return fragment;
}

/** Any HTML to a sanitized DocumentFragment: the gate itself, exported so tests can probe it. */
export function sanitizeHtml(html) {
  if (!engine) throw new Error("the sanitizer is not loaded");
  return engine.sanitize(html);
}

function plainFragment(text) {
  const fragment = document.createDocumentFragment();
  const paragraph = document.createElement("p");
  paragraph.className = "plain";
  paragraph.textContent = text;
  fragment.append(paragraph);
  return fragment;
}

// A header with the language and a copy button, made here: never from model HTML.
function decorateCode(pre) {
  const code = pre.querySelector("code");
  const language = /\blanguage-([\w+#.-]+)/.exec(code?.className || "")?.[1] || "";
  const wrapper = document.createElement("div");
  wrapper.className = "codeblock";
  const header = document.createElement("div");
  header.className = "codeblock-header";
  const label = document.createElement("span");
  label.textContent = language;
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy-code";
  copy.dataset.action = "copy-code";
  tr(copy, "action.copyCode");
  header.append(label, copy);
  pre.replaceWith(wrapper);
  wrapper.append(header, pre);
}
