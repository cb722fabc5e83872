// StreamDesk's widget, as a portal page loads it with one tag:
//   <script src="https://chat.example.com/widget.js" async data-model="ernie/completions_pro"
//           data-title="IT help" data-lang="zh"></script>
// It adds a launcher button in the corner and, when opened, a panel framing the chat
// (/widget). Launcher and panel live in a closed Shadow DOM, so no CSS crosses between the
// portal and the widget either way; the chat itself runs in the frame, on the chat's own
// origin, with its own session. The portal's scripts are never waited for: the tag is async
// and nothing here blocks. Messages with the frame are checked both ways: its origin and its
// window.
//
// On a phone the open panel fills the screen and is a modal dialog (aria-modal): the keyboard
// stays in it, and assistive technology leaves the covered page alone. The portal's own DOM is
// never touched for that (no `inert` on its elements): two focus guards around the frame send
// focus that leaves it by Tab or Shift+Tab back in at the other end. On a desktop the panel
// sits beside the portal's page, which stays usable.
(() => {
  const script = document.currentScript;
  if (!script || window.__streamdeskWidget) return; // one widget per page
  window.__streamdeskWidget = true;

  const chatOrigin = new URL(script.src).origin;
  const data = script.dataset;
  // data-lang="zh", "zh-CN", "zh-Hans"… or, without it, the reader's browser language.
  const lang = /^zh\b/i.test(data.lang || navigator.language || "") ? "zh" : "en";
  const words = {
    en: { open: "Open the chat", close: "Close the chat", panel: "Chat" },
    zh: { open: "打开对话", close: "关闭对话", panel: "对话" },
  }[lang];
  const title = data.title || words.panel;
  // Where the panel fills the screen (the style sheet below) and so becomes modal.
  const FULL_SCREEN = "(max-width: 640px)";
  const fullScreen = matchMedia(FULL_SCREEN);
  // The panel stays open across the portal's pages: a new page reopens it (and the chat
  // resumes a reply still being written).
  const OPEN_KEY = "streamdesk.widget.open";
  const remember = (isOpen) => {
    try {
      if (isOpen) sessionStorage.setItem(OPEN_KEY, "1");
      else sessionStorage.removeItem(OPEN_KEY);
    } catch {
      // Storage is off on the portal: the panel just does not reopen by itself.
    }
  };
  const remembered = () => {
    try {
      return sessionStorage.getItem(OPEN_KEY) === "1";
    } catch {
      return false;
    }
  };
  // The message box is focused when the reader opened the panel, never when a new page
  // reopened it (that would take focus from the portal's page).
  let focusWhenReady = false;
  // The chat in the frame has said "ready": messages can reach it (before, the frame holds
  // about:blank, of the portal's origin, and a message would only log an error).
  let frameReady = false;

  const host = document.createElement("div");
  host.setAttribute("data-streamdesk-widget", "");
  // The portal's rules still reach the host element itself (`div { display: none }`, `*
  // { color: red !important }`, inherited fonts): an important inline declaration beats them.
  host.style.setProperty("all", "initial", "important");
  const root = host.attachShadow({ mode: "closed" });
  const style = new CSSStyleSheet();
  style.replaceSync(`
    :host { all: initial; }
    .launcher {
      position: fixed; right: 20px; bottom: 20px; z-index: 2147483646;
      width: 56px; height: 56px; border-radius: 50%; border: none; cursor: pointer;
      background: #1d4ed8; color: #fff; box-shadow: 0 4px 14px rgba(0, 0, 0, .25);
      display: grid; place-items: center;
    }
    .launcher:focus-visible { outline: 3px solid #f59e0b; outline-offset: 3px; }
    .launcher svg { width: 26px; height: 26px; }
    .panel {
      position: fixed; right: 20px; bottom: 88px; z-index: 2147483647;
      width: min(400px, calc(100vw - 40px)); height: min(640px, calc(100vh - 108px));
      border-radius: 12px; overflow: hidden; background: #fff;
      box-shadow: 0 12px 40px rgba(0, 0, 0, .3);
    }
    .panel.dark { background: #16181d; }
    .panel[hidden] { display: none; }
    iframe { width: 100%; height: 100%; border: 0; display: block; }
    .guard { position: absolute; width: 1px; height: 1px; overflow: hidden; outline: none; }
    @media ${FULL_SCREEN} {
      .panel { inset: 0; width: 100vw; height: 100dvh; border-radius: 0; }
      .panel:not([hidden]) + .launcher { display: none; }
    }
  `);
  root.adoptedStyleSheets = [style];

  const panel = document.createElement("div");
  panel.className = "panel";
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", title);
  const frame = document.createElement("iframe");
  frame.title = title;
  frame.setAttribute("allow", "clipboard-write");
  // The focus trap of the modal panel. The frame's content is on another origin: its keys
  // never reach this script, so the way out is watched where focus goes next. Tab past the
  // frame's last control lands on the guard after it, Shift+Tab before its first on the one
  // before it; each hands focus back to the frame's control at the other end.
  const guard = (edge) => {
    const element = document.createElement("span");
    element.className = "guard";
    element.tabIndex = 0;
    element.hidden = true; // only while the panel is modal
    element.addEventListener("focus", () => enterFrame(edge));
    return element;
  };
  const guards = [guard("last"), guard("first")];
  panel.append(guards[0], frame, guards[1]);

  const launcher = document.createElement("button");
  launcher.type = "button";
  launcher.className = "launcher";
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-label", words.open);
  launcher.title = title;
  launcher.innerHTML = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" '
    + 'stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">'
    + '<path d="M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"/></svg>';
  root.append(panel, launcher);

  function theme() {
    const html = document.documentElement;
    const scheme = getComputedStyle(html).colorScheme || "";
    if (html.classList.contains("dark") || html.dataset.theme === "dark"
        || document.body?.classList.contains("dark") || scheme.trim() === "dark") return "dark";
    if (html.classList.contains("light") || html.dataset.theme === "light"
        || scheme.trim() === "light") return "light";
    return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function tell(message) {
    if (frameReady) frame.contentWindow?.postMessage({ streamdesk: message }, chatOrigin);
  }

  /** Focus into the frame: its first or last control (`edge`), or just the frame. */
  function enterFrame(edge) {
    frame.focus({ preventScroll: true });
    if (edge) tell({ type: "focus", edge });
  }

  const isModal = () => !panel.hidden && fullScreen.matches;
  /** Make the panel modal or not, as it is open and the screen is narrow; the focus goes in
   * when it becomes modal with the focus on the covered page. */
  function setModal() {
    const modal = isModal();
    if (modal) panel.setAttribute("aria-modal", "true");
    else panel.removeAttribute("aria-modal");
    for (const element of guards) element.hidden = !modal;
    // The page behind is covered: focus left there would be invisible. The frame itself, not
    // the message box: a phone's keyboard only opens when the reader asks for the box.
    if (modal && document.activeElement !== host) enterFrame(null);
  }

  function open(focus) {
    if (!frame.src) {
      const query = new URLSearchParams({ lang, theme: theme(), host: location.origin });
      if (data.model) query.set("model", data.model);
      if (data.title) query.set("title", data.title);
      frame.src = `${chatOrigin}/widget?${query}`;
    }
    panel.hidden = false;
    panel.classList.toggle("dark", theme() === "dark");
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", words.close);
    remember(true);
    if (focus) {
      focusWhenReady = true; // the frame may still be loading: it says "ready" once it has
      frame.focus();
      tell({ type: "focus" });
    }
    setModal();
  }

  function close() {
    focusWhenReady = false;
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", words.open);
    remember(false);
    setModal();
    launcher.focus();
  }

  launcher.addEventListener("click", () => (panel.hidden ? open(true) : close()));
  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) close();
  });
  window.addEventListener("message", (event) => {
    if (event.origin !== chatOrigin || event.source !== frame.contentWindow) return;
    const message = event.data?.streamdesk;
    if (message?.type === "close") close();
    if (message?.type === "ready") {
      frameReady = true;
      tell({ type: "theme", theme: theme() }); // it may have changed while the frame loaded
      if (focusWhenReady && !panel.hidden) tell({ type: "focus" });
    }
  });

  // The portal's dark mode, followed as it changes.
  const followTheme = () => {
    panel.classList.toggle("dark", theme() === "dark");
    tell({ type: "theme", theme: theme() });
  };
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", followTheme);
  new MutationObserver(followTheme).observe(document.documentElement,
    { attributes: true, attributeFilter: ["class", "data-theme", "style"] });

  // The modal panel: as the screen changes (a phone turned, a window made narrow), and
  // against focus that reaches the covered page all the same (Tab from the browser's toolbar,
  // a script of the portal's), which is sent back into the panel.
  fullScreen.addEventListener("change", setModal);
  document.addEventListener("focusin", (event) => {
    if (isModal() && event.target !== host) enterFrame("first");
  });

  const mount = () => {
    document.body.append(host);
    if (remembered()) open(false);
  };
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
