// Personal API keys: a dialog, opened from the foot of the sidebar, that lists the user's keys,
// creates one and revokes one. A new key's secret is shown once, right after it is made: the
// server keeps only a hash, and the page forgets it when the dialog closes. Key names are the
// user's own text, so they are set as text, never as HTML.

import * as api from "./api.js";
import { copyText } from "./clipboard.js";
import { currentLanguage, onLanguageChange, t, tr } from "./i18n.js";

const COPIED_MS = 1500;

export class ApiKeysDialog {
  /** `confirm(texts)` asks before revoking ({title, body, confirm}); resolves true to go on. */
  constructor(dialog, opener, confirm) {
    this.dialog = dialog;
    this.opener = opener;
    this.confirm = confirm;
    this.form = dialog.querySelector(".key-create");
    this.name = dialog.querySelector("#key-name");
    this.error = dialog.querySelector(".dialog-error");
    this.secretBox = dialog.querySelector(".key-secret");
    this.secret = dialog.querySelector("#key-secret");
    this.secretLabel = dialog.querySelector(".key-secret-label");
    this.copy = dialog.querySelector(".key-copy");
    this.copyStatus = dialog.querySelector(".key-copy-status");
    this.list = dialog.querySelector(".key-list");
    this.empty = dialog.querySelector(".key-empty");
    this.keys = null; // null until the list has arrived
    this.loaded = Promise.resolve(); // the list being fetched
    dialog.querySelector(".key-base-url").textContent = `${location.origin}/v1`;

    opener.addEventListener("click", () => this.open());
    this.form.addEventListener("submit", (event) => this.create(event));
    this.copy.addEventListener("click", () => this.copySecret());
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action=revoke]");
      if (button) this.revoke(button.closest("li").dataset.id);
    });
    dialog.querySelector("[data-dismiss]").addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => this.closed());
    onLanguageChange(() => this.render()); // dates are written in the page's language
  }

  /** The operator may turn API keys off (API_KEYS=off): then nothing of them is on the page. */
  enable(enabled) {
    if (enabled) {
      this.opener.hidden = false;
    } else {
      this.opener.remove();
      this.dialog.remove();
    }
  }

  open() {
    this.error.textContent = "";
    this.hideSecret();
    this.dialog.showModal();
    this.name.focus();
    this.loaded = this.load();
  }

  async load() {
    try {
      this.keys = (await api.listKeys()).keys;
    } catch (error) {
      this.error.textContent = error.message;
    }
    this.render();
  }

  closed() {
    this.hideSecret(); // shown once: gone from the page once the dialog closes
    this.opener.focus();
  }

  async create(event) {
    event.preventDefault();
    if (!this.form.reportValidity()) return;
    this.error.textContent = "";
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    let created;
    try {
      created = await api.createKey(this.name.value.trim());
    } catch (error) {
      this.error.textContent = error.message;
      this.name.focus();
      return;
    } finally {
      button.disabled = false;
    }
    const { key, ...listed } = created;
    await this.loaded; // a list asked for before the key was made must not hide it
    const others = (this.keys ?? []).filter((k) => k.id !== listed.id);
    this.keys = [{ last_used_at: null, ...listed }, ...others];
    this.render();
    this.name.value = "";
    // Closed meanwhile: the key is listed next time, and its secret is never put on the page.
    if (this.dialog.open) this.showSecret(listed, key);
  }

  showSecret({ id, name }, key) {
    this.hideSecret(); // the previous key's, if any, and what was said about copying it
    this.secretBox.dataset.id = id;
    tr(this.secretLabel, "keys.newKey", { name });
    this.secret.value = key;
    this.secretBox.hidden = false;
    this.secret.focus();
    this.secret.select();
  }

  hideSecret() {
    this.secret.value = "";
    this.secretBox.hidden = true;
    delete this.secretBox.dataset.id;
    clearTimeout(this.copiedTimer);
    tr(this.copy.querySelector("[data-i18n]"), "keys.copy");
    for (const element of [this.secretLabel, this.copyStatus]) {
      delete element.dataset.i18n;
      delete element.dataset.i18nArgs;
      element.textContent = "";
    }
  }

  async copySecret() {
    const copied = await copyText(this.secret.value);
    tr(this.copyStatus, copied ? "status.copied" : "status.copyFailed");
    if (!copied) {
      this.secret.select();
      return;
    }
    const label = this.copy.querySelector("[data-i18n]");
    tr(label, "action.copied");
    clearTimeout(this.copiedTimer);
    this.copiedTimer = setTimeout(() => tr(label, "keys.copy"), COPIED_MS);
  }

  async revoke(id) {
    const key = this.keys?.find((k) => k.id === id);
    if (!key) return;
    const confirmed = await this.confirm({
      title: t("keys.revokeTitle"),
      body: t("keys.revokeBody", { name: key.name }),
      confirm: t("keys.revoke"),
    });
    const index = this.keys.indexOf(key);
    if (!confirmed) {
      this.focusItem(index);
      return;
    }
    this.error.textContent = "";
    try {
      await api.deleteKey(id);
    } catch (error) {
      if (error.status !== 404) { // 404: already gone (revoked in another tab)
        this.error.textContent = error.message;
        this.focusItem(index);
        return;
      }
    }
    this.keys = this.keys.filter((k) => k.id !== id);
    if (this.secretBox.dataset.id === id) this.hideSecret();
    this.render();
    this.focusItem(Math.min(index, this.keys.length - 1));
  }

  /** Focus the Revoke button of the key at `index`, or the name field when there is none. */
  focusItem(index) {
    const button = this.list.children[index]?.querySelector("button[data-action=revoke]");
    (button ?? this.name).focus();
  }

  render() {
    if (!this.keys || !this.dialog.isConnected) return;
    this.list.replaceChildren(...this.keys.map((key) => this.item(key)));
    this.empty.hidden = this.keys.length > 0;
  }

  item({ id, name, created_at: created, last_used_at: lastUsed }) {
    const item = document.createElement("li");
    item.dataset.id = id;
    const text = document.createElement("div");
    text.className = "key-text";
    const title = document.createElement("span");
    title.className = "key-name";
    title.textContent = name;
    const dates = document.createElement("span");
    dates.className = "key-dates";
    const made = document.createElement("span");
    tr(made, "keys.created", { date: formatDate(created) });
    const used = document.createElement("span");
    if (lastUsed) tr(used, "keys.lastUsed", { date: formatDate(lastUsed) });
    else tr(used, "keys.neverUsed");
    dates.append(made, used);
    text.append(title, dates);
    const revoke = document.createElement("button");
    revoke.type = "button";
    revoke.className = "key-revoke";
    revoke.dataset.action = "revoke";
    tr(revoke, "keys.revoke");
    tr(revoke, "keys.revokeLabel", { name }, "aria-label");
    item.append(text, revoke);
    return item;
  }
}

function formatDate(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso ?? "";
  return date.toLocaleString(currentLanguage(), { dateStyle: "medium", timeStyle: "short" });
}
