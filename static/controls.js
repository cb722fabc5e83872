// Small controls of the page's frame: the export menu and the language switch.

import { getConversation } from "./api.js";
import { exportConversation } from "./export.js";
import { LANGUAGES, currentLanguage, setLanguage } from "./i18n.js";

/** The export menu (a <details>): exports the conversation `currentId()` names. */
export function initExportMenu(menu, currentId, onError) {
  menu.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-format]");
    const id = currentId();
    if (!button || !id) return;
    menu.open = false;
    try {
      exportConversation(await getConversation(id), button.dataset.format);
    } catch (error) {
      onError(error);
    }
  });
  // A menu closes when the reader clicks elsewhere, or presses Esc (see closeMenu).
  document.addEventListener("click", (event) => {
    if (menu.open && !menu.contains(event.target)) menu.open = false;
  });
}

/** Close the menu if open (Esc); true when it was. */
export function closeMenu(menu) {
  if (!menu.open) return false;
  menu.open = false;
  menu.querySelector("summary").focus();
  return true;
}

export function initLanguageSwitch(select) {
  select.replaceChildren(...Object.entries(LANGUAGES).map(([code, name]) => {
    const option = new Option(name, code, false, code === currentLanguage());
    option.lang = code;
    return option;
  }));
  select.addEventListener("change", () => setLanguage(select.value));
}
