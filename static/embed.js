// The chat page as the widget's panel: /widget, framed by static/widget.js in a portal page
// (docs/helpdesk.md, "The widget on your portal"). The page and its script are the same as the
// full page's; this module holds what differs:
//
// - the language and theme the portal asks for (?lang, ?theme, then "theme" messages), shown
//   on this page only: the full page's remembered choices are left alone;
// - the model the portal names (?model), when it is one of the page's models;
// - the conversation, remembered so that the panel on the portal's next page reopens it, and
//   follows a reply still being written (the reply outlives the page that asked for it);
// - the messages with the portal. `host` (the portal's origin, from the loader) must be one of
//   the operator's WIDGET_ORIGINS (data-widget-origins, on <body>), else nothing is ever
//   posted; messages go to window.parent with exactly that target origin, and are accepted
//   only from window.parent with that origin. Out: "ready" once loaded, "close" (the Close
//   button, Esc). In: "focus" (the message box; with `edge`, "first" or "last", the page's first
//   or last control: the portal's focus trap, when the panel fills a phone's screen), "theme"
//   (light or dark).

import { setLanguage } from "./i18n.js";
import { hasModel } from "./settings.js";
import { applyTheme } from "./theme.js";

const CONVERSATION_KEY = "streamdesk.widget.conversation";
const THEMES = ["light", "dark"];

// What Tab stops at, in document order (the page sets no positive tabindex).
const TABBABLE = "a[href], button, input, select, textarea, summary, [tabindex]";

/** The first or last control that Tab reaches on the page (`edge`), if any. */
function edgeControl(edge) {
  const controls = [...document.querySelectorAll(TABBABLE)].filter((element) =>
    element.tabIndex >= 0 && !element.disabled && element.checkVisibility());
  return edge === "last" ? controls.at(-1) : controls[0];
}

function allowedOrigins() {
  try {
    const origins = JSON.parse(document.body.dataset.widgetOrigins || "[]");
    return Array.isArray(origins) ? origins : [];
  } catch {
    return [];
  }
}

/**
 * In the widget's panel, apply what the portal asked for and listen to it; on the full page,
 * null. `input` is the message box (focused when the portal opens the panel).
 */
export function initEmbed(input) {
  if (!document.documentElement.hasAttribute("data-embed")) return null;
  const query = new URLSearchParams(location.search);
  const host = query.get("host");
  const portal = window.parent !== window && allowedOrigins().includes(host) ? host : null;
  const post = (type) => {
    if (portal) window.parent.postMessage({ streamdesk: { type } }, portal);
  };
  const showTheme = (theme) => applyTheme(THEMES.includes(theme) ? theme : "system");

  const lang = query.get("lang");
  if (lang) setLanguage(/^zh/i.test(lang) ? "zh-CN" : "en", { remember: false });
  showTheme(query.get("theme"));
  window.addEventListener("message", (event) => {
    if (!portal || event.source !== window.parent || event.origin !== portal) return;
    const message = event.data?.streamdesk;
    if (message?.type === "focus") (message.edge ? edgeControl(message.edge) : input)?.focus();
    else if (message?.type === "theme") showTheme(message.theme);
  });
  const close = document.getElementById("close-widget");
  close.hidden = !portal; // nowhere to go back to: the panel is not in a portal's frame
  close.addEventListener("click", () => post("close"));

  return {
    /** Esc: the portal closes the panel (a reply being written goes on). */
    close: () => post("close"),
    /** The page has loaded: the portal may now ask for focus. */
    ready: () => post("ready"),
    /** Select the model the portal named, when the page has it. */
    pickModel(select) {
      const model = query.get("model");
      if (model && hasModel(select, model)) select.value = model;
    },
    /** The conversation the panel showed last, on this or another of the portal's pages. */
    remembered() {
      try {
        return localStorage.getItem(CONVERSATION_KEY) || "";
      } catch {
        return "";
      }
    },
    /** Remember the open conversation (`id`), or that a new chat is open (null). */
    remember(id) {
      try {
        if (id) localStorage.setItem(CONVERSATION_KEY, id);
        else localStorage.removeItem(CONVERSATION_KEY);
      } catch {
        // Storage is off: the panel on the next page starts a new chat.
      }
    },
  };
}
