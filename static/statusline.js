// The status line under the composer: a polite live region for what just happened
// ("Writing…", "Copied", why a message was refused). Translated strings follow a language switch.

import { tr } from "./i18n.js";

export class StatusLine {
  constructor(element) {
    this.element = element;
  }

  /** Show string `key` (with `args`); no key clears the line. */
  say(key, args = null) {
    if (key) {
      tr(this.element, key, args);
    } else {
      this.text("");
    }
  }

  /** Show text as it is (a message from the server). */
  text(text) {
    delete this.element.dataset.i18n;
    delete this.element.dataset.i18nArgs;
    this.element.textContent = text;
  }
}
