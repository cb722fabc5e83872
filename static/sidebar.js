// The conversation list: newest first (the server's order), search by title, rename in place,
// delete after a confirmation. On a phone the list is a drawer that folds away.

import { icon } from "./icons.js";
import { t, tr } from "./i18n.js";

const PHONE = window.matchMedia("(max-width: 760px)");

export class Sidebar {
  /**
   * elements: {aside, list, search, empty, toggle, close, scrim}
   * handlers: {open(id), rename(id, title), remove(id, title)} (async)
   */
  constructor(elements, handlers) {
    Object.assign(this, elements);
    this.handlers = handlers;
    this.conversations = [];
    this.current = null;
    this.search.addEventListener("input", () => this.filter());
    this.list.addEventListener("click", (event) => this.onClick(event));
    this.toggle.addEventListener("click", () => (this.isOpen() ? this.hide() : this.show()));
    this.close.addEventListener("click", () => this.hide());
    this.scrim.addEventListener("click", () => this.hide());
    this.aside.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.isOpen() && !event.target.closest(".rename-input")) {
        event.stopPropagation();
        this.hide();
      }
    });
    PHONE.addEventListener("change", () => this.hide(false));
  }

  setConversations(conversations) {
    this.conversations = conversations;
    this.render();
  }

  setCurrent(id) {
    this.current = id;
    for (const item of this.list.children) {
      const open = item.querySelector(".conversation-open");
      if (item.dataset.id === id) open.setAttribute("aria-current", "page");
      else open.removeAttribute("aria-current");
    }
  }

  render() {
    this.list.replaceChildren(...this.conversations.map((c) => this.item(c)));
    this.filter();
  }

  item({ id, title }) {
    const item = document.createElement("li");
    item.dataset.id = id;
    const open = document.createElement("button");
    open.type = "button";
    open.className = "conversation-open";
    open.textContent = title;
    open.title = title;
    if (id === this.current) open.setAttribute("aria-current", "page");
    const rename = this.iconButton("rename", "edit", "sidebar.rename", title);
    const remove = this.iconButton("delete", "trash", "sidebar.delete", title);
    item.append(open, rename, remove);
    return item;
  }

  iconButton(action, iconName, key, title) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `icon-button conversation-${action}`;
    button.dataset.action = action;
    button.append(icon(iconName));
    tr(button, key, { title }, "aria-label");
    tr(button, key, { title }, "title");
    return button;
  }

  /** Show only conversations whose title contains the search text (case-insensitive). */
  filter() {
    const query = this.search.value.trim().toLocaleLowerCase();
    let shown = 0;
    for (const item of this.list.children) {
      const title = item.querySelector(".conversation-open")?.textContent ?? "";
      const match = !query || title.toLocaleLowerCase().includes(query);
      item.hidden = !match;
      shown += match;
    }
    this.empty.hidden = shown > 0;
    tr(this.empty, this.conversations.length ? "sidebar.noMatch" : "sidebar.empty");
  }

  onClick(event) {
    const button = event.target.closest("button");
    const item = button?.closest("li");
    if (!item) return;
    const conversation = this.conversations.find((c) => c.id === item.dataset.id);
    if (!conversation) return;
    if (button.classList.contains("conversation-open")) {
      this.handlers.open(conversation.id);
      if (PHONE.matches) this.hide(false);
    } else if (button.dataset.action === "rename") {
      this.startRename(item, conversation);
    } else if (button.dataset.action === "delete") {
      this.handlers.remove(conversation.id, conversation.title);
    }
  }

  startRename(item, conversation) {
    const open = item.querySelector(".conversation-open");
    const input = document.createElement("input");
    input.type = "text";
    input.className = "rename-input";
    input.value = conversation.title;
    input.maxLength = 200;
    tr(input, "sidebar.renameInput", { title: conversation.title }, "aria-label");
    open.replaceWith(input);
    input.focus();
    input.select();
    let finished = false;
    const finish = async (save) => {
      if (finished) return;
      finished = true;
      const title = input.value.trim();
      input.replaceWith(open);
      open.focus();
      if (save && title && title !== conversation.title) await this.handlers.rename(conversation.id, title);
    };
    input.addEventListener("keydown", (event) => {
      if (event.isComposing || event.keyCode === 229) return;
      if (event.key === "Enter") {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }

  isOpen() {
    return this.aside.classList.contains("open");
  }

  /** The drawer, on a phone. */
  show() {
    this.aside.classList.add("open");
    this.scrim.hidden = false;
    this.toggle.setAttribute("aria-expanded", "true");
    this.search.focus();
  }

  hide(returnFocus = true) {
    const wasOpen = this.isOpen();
    this.aside.classList.remove("open");
    this.scrim.hidden = true;
    this.toggle.setAttribute("aria-expanded", "false");
    if (wasOpen && returnFocus && PHONE.matches) this.toggle.focus();
  }
}

/** Ask before something that cannot be undone. Resolves true when confirmed. */
export function confirmDialog(dialog, { title, body, confirm }) {
  dialog.querySelector(".dialog-title").textContent = title;
  dialog.querySelector(".dialog-body").textContent = body;
  dialog.querySelector("[value=confirm]").textContent = confirm;
  dialog.returnValue = "";
  dialog.showModal();
  dialog.querySelector("[value=cancel]").focus(); // the safe choice is the default
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
  });
}

export const deleteTexts = (title) => ({
  title: t("confirm.deleteTitle"),
  body: t("confirm.deleteBody", { title }),
  confirm: t("confirm.delete"),
});
