// The chat page's wiring: which conversation is open, sending and stopping a reply, and what
// each button does. Messages, markdown, the list, the dialogs and the preferences live in their
// own modules; this one holds the state and connects them.

import { signIn } from "./access.js";
import * as api from "./api.js";
import { streamReply } from "./chat.js";
import { copyText } from "./clipboard.js";
import { exportConversation } from "./export.js";
import { LANGUAGES, currentLanguage, setLanguage, t, tr, translatePage } from "./i18n.js";
import { addIcons } from "./icons.js";
import { sendsOnEnter } from "./keys.js";
import { AssistantMessage, UserMessage, openEditor, viewOf } from "./messages.js";
import { loadRenderer } from "./render.js";
import { AutoScroll } from "./scroll.js";
import { EMPTY_SETTINGS, SettingsDialog, fillModelPicker, hasModel, showCustomised } from "./settings.js";
import { Sidebar, confirmDialog, deleteTexts } from "./sidebar.js";
import { initTheme } from "./theme.js";

const $ = (id) => document.getElementById(id);
const ui = {
  messages: $("messages"), empty: $("empty"), jump: $("jump"), title: $("title"),
  model: $("model"), form: $("composer"), input: $("input"), send: $("send"), stop: $("stop"),
  status: $("status"), newChat: $("new-chat"), settings: $("open-settings"),
  exportMenu: $("export"), language: $("language"), theme: $("theme"),
};
const SETTLE_POLL_MS = 1000;
const COPIED_MS = 1500;

const state = {
  conversation: null, // {id, title, settings} of the open conversation; null: a new chat
  draft: { ...EMPTY_SETTINGS }, // settings chosen for a new chat, sent with its first message
  controller: null, // the AbortController of the reply being written
};
const busy = () => state.controller !== null;

translatePage();
addIcons();
initTheme(ui.theme);
const scroller = new AutoScroll(ui.messages, ui.jump);
const follow = () => scroller.follow();
const sidebar = new Sidebar({
  aside: $("sidebar"), list: $("conversations"), search: $("search"), empty: $("no-conversations"),
  toggle: $("open-sidebar"), close: $("close-sidebar"), scrim: $("scrim"),
}, { open: openConversation, rename: renameConversation, remove: deleteConversation });
const settingsDialog = new SettingsDialog($("settings-dialog"), saveSettings);

/** The status line under the composer (a polite live region). */
function say(key, args = null) {
  if (key) {
    tr(ui.status, key, args);
  } else {
    delete ui.status.dataset.i18n;
    ui.status.textContent = "";
  }
}

function sayText(text) {
  delete ui.status.dataset.i18n;
  ui.status.textContent = text;
}

// Conversations -------------------------------------------------------------------------------

const summary = ({ id, title, settings }) => ({ id, title, settings: { ...EMPTY_SETTINGS, ...settings } });

async function refreshList() {
  const { conversations } = await api.listConversations();
  sidebar.setConversations(conversations);
}

function showHeader() {
  if (state.conversation) {
    delete ui.title.dataset.i18n;
    ui.title.textContent = state.conversation.title;
  } else {
    tr(ui.title, "chat.untitled");
  }
  ui.exportMenu.hidden = !state.conversation;
  showCustomised(ui.settings, state.conversation ? state.conversation.settings : state.draft);
  ui.empty.hidden = ui.messages.childElementCount > 0;
  sidebar.setCurrent(state.conversation?.id ?? null);
  // The open conversation is in the address, so a reload comes back to it.
  const hash = state.conversation ? `#${encodeURIComponent(state.conversation.id)}` : "";
  if (location.hash !== hash) history.replaceState(null, "", hash || location.pathname);
}

function renderMessages(messages) {
  ui.messages.replaceChildren();
  for (const message of messages) {
    if (message.role === "user") new UserMessage(ui.messages, message);
    else AssistantMessage.fromSaved(ui.messages, message, { onRender: follow });
  }
}

async function openConversation(id) {
  await ready;
  if (busy()) return say("status.busy");
  let conversation;
  try {
    conversation = await api.getConversation(id);
  } catch (error) {
    sayText(t("status.loadFailed", { message: error.message }));
    showHeader();
    return refreshList();
  }
  state.conversation = summary(conversation);
  renderMessages(conversation.messages);
  if (hasModel(ui.model, conversation.model)) ui.model.value = conversation.model;
  say(null);
  showHeader();
  scroller.toBottom();
  // A reply still being written (in another tab, or stopped and not yet saved as such):
  // look again until it settles.
  if (conversation.messages.some((m) => m.status === "streaming")) {
    setTimeout(() => {
      if (state.conversation?.id === id && !busy()) openConversation(id);
    }, SETTLE_POLL_MS);
  }
}

function newChat() {
  if (busy()) return say("status.busy");
  state.conversation = null;
  state.draft = { ...EMPTY_SETTINGS };
  ui.messages.replaceChildren();
  say(null);
  showHeader();
  ui.input.focus();
}

async function renameConversation(id, title) {
  try {
    const updated = await api.updateConversation(id, { title });
    if (state.conversation?.id === id) state.conversation.title = updated.title;
    showHeader();
  } catch (error) {
    sayText(error.message);
  }
  await refreshList();
}

async function deleteConversation(id, title) {
  if (!(await confirmDialog($("confirm-dialog"), deleteTexts(title)))) return;
  if (busy() && state.conversation?.id === id) return say("status.busy");
  try {
    await api.deleteConversation(id);
  } catch (error) {
    sayText(error.message);
  }
  if (state.conversation?.id === id) newChat();
  await refreshList();
  ui.newChat.focus();
}

async function saveSettings(settings) {
  if (state.conversation) {
    const updated = await api.updateConversation(state.conversation.id, { settings });
    state.conversation.settings = { ...EMPTY_SETTINGS, ...(updated.settings ?? settings) };
  } else {
    state.draft = { ...EMPTY_SETTINGS, ...settings };
  }
  showHeader();
  say("settings.saved");
}

// Sending -------------------------------------------------------------------------------------

/** Send `text` as a new turn; with `editId`, that user message and all after it are replaced. */
async function send(text, { editId = null } = {}) {
  await ready;
  if (busy()) {
    say("status.busy");
    return false;
  }
  if (editId) removeFrom(editId);
  const user = new UserMessage(ui.messages, { content: text });
  const reply = new AssistantMessage(ui.messages, {}, { onRender: follow });
  ui.empty.hidden = true;
  scroller.toBottom();

  const payload = { message: text, model: ui.model.value };
  if (state.conversation) payload.conversation_id = state.conversation.id;
  else for (const [name, value] of Object.entries(state.draft)) if (value !== null) payload[name] = value;
  if (editId) payload.edit_message_id = editId;

  state.controller = new AbortController();
  setBusy(true);
  try {
    const status = await streamReply({
      payload, reply, signal: state.controller.signal,
      onMeta: (meta) => {
        reply.element.dataset.id = meta.message_id;
        if (!state.conversation) {
          state.conversation = { id: meta.conversation_id, title: text.slice(0, 60), settings: state.draft };
          showHeader();
          refreshList();
        }
      },
    });
    say(status === "complete" ? "status.done" : null);
  } catch (error) {
    // Refused before streaming (a check or a limit): nothing was saved, so nothing is shown.
    user.element.remove();
    reply.element.remove();
    showHeader();
    sayText(error.message);
    if (editId && state.conversation) await reopenAfterRefusal();
    return false;
  } finally {
    state.controller = null;
    setBusy(false);
  }
  await syncWithServer();
  return true;
}

async function reopenAfterRefusal() {
  const message = ui.status.textContent;
  await openConversation(state.conversation.id);
  sayText(message);
}

function removeFrom(id) {
  let element = ui.messages.querySelector(`article[data-id="${CSS.escape(id)}"]`);
  while (element) {
    const next = element.nextElementSibling;
    element.remove();
    element = next;
  }
}

/** After a turn: learn the new messages' ids (edit and regenerate need them) and the title. */
async function syncWithServer() {
  if (!state.conversation) return;
  try {
    const conversation = await api.getConversation(state.conversation.id);
    if (busy() || state.conversation?.id !== conversation.id) return; // moved on meanwhile
    state.conversation = summary(conversation);
    const articles = [...ui.messages.querySelectorAll(":scope > article.message")];
    const same = articles.length === conversation.messages.length
      && articles.every((article, i) => article.dataset.role === conversation.messages[i].role);
    if (same) {
      articles.forEach((article, i) => {
        if (article.dataset.id !== conversation.messages[i].id) article.dataset.id = conversation.messages[i].id;
      });
    } else {
      renderMessages(conversation.messages);
    }
    showHeader();
    await refreshList();
  } catch (error) {
    sayText(error.message);
  }
}

function setBusy(isBusy) {
  const stopHadFocus = document.activeElement === ui.stop;
  document.body.classList.toggle("busy", isBusy);
  ui.send.hidden = isBusy;
  ui.stop.hidden = !isBusy;
  if (isBusy) say("status.writing");
  if (!isBusy && (stopHadFocus || document.activeElement === document.body)) ui.input.focus();
}

const stop = () => state.controller?.abort();

// Message actions -----------------------------------------------------------------------------

async function copyFrom(button, text) {
  const copied = await copyText(text);
  say(copied ? "status.copied" : "status.copyFailed");
  if (!copied) return;
  button.classList.add("copied");
  setTimeout(() => button.classList.remove("copied"), COPIED_MS);
}

function regenerate(article) {
  const question = article.previousElementSibling;
  if (!question?.dataset.id || question.dataset.role !== "user") return;
  send(viewOf(question).text, { editId: question.dataset.id });
}

ui.messages.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  const article = button?.closest("article.message");
  if (!article) return;
  const { action } = button.dataset;
  if (action === "copy-code") copyFrom(button, button.closest(".codeblock").querySelector("code").textContent);
  else if (action === "copy") copyFrom(button, viewOf(article).text);
  else if (busy()) say("status.busy");
  else if (action === "edit" && article.dataset.id && !article.querySelector(".edit-form")) {
    openEditor(article, (text) => send(text, { editId: article.dataset.id }));
  } else if (action === "regenerate" || action === "retry") regenerate(article);
});

// Composer and keyboard -----------------------------------------------------------------------

ui.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = ui.input.value;
  if (!text.trim() || busy()) return;
  ui.input.value = "";
  const sent = await send(text);
  if (!sent && !ui.input.value) ui.input.value = text; // refused: give the text back
});

ui.input.addEventListener("keydown", (event) => {
  if (!sendsOnEnter(event)) return;
  event.preventDefault();
  ui.form.requestSubmit();
});

ui.stop.addEventListener("click", stop);
document.addEventListener("keydown", (event) => {
  // Esc stops the reply, unless it is closing something else first (a dialog, a menu, an edit).
  if (event.key !== "Escape" || event.defaultPrevented || document.querySelector("dialog[open]")) return;
  if (ui.exportMenu.open) {
    ui.exportMenu.open = false;
    ui.exportMenu.querySelector("summary").focus();
  } else if (busy()) {
    event.preventDefault();
    stop();
  }
});

// Header and preferences ----------------------------------------------------------------------

ui.newChat.addEventListener("click", newChat);
ui.settings.addEventListener("click", () => settingsDialog.open(
  state.conversation ? state.conversation.settings : state.draft, { newChat: !state.conversation }));

ui.exportMenu.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-format]");
  if (!button || !state.conversation) return;
  ui.exportMenu.open = false;
  try {
    exportConversation(await api.getConversation(state.conversation.id), button.dataset.format);
  } catch (error) {
    sayText(error.message);
  }
});
document.addEventListener("click", (event) => {
  if (ui.exportMenu.open && !ui.exportMenu.contains(event.target)) ui.exportMenu.open = false;
});

ui.language.replaceChildren(...Object.entries(LANGUAGES).map(([code, name]) => {
  const option = new Option(name, code, false, code === currentLanguage());
  option.lang = code;
  return option;
}));
ui.language.addEventListener("change", () => setLanguage(ui.language.value));

// Start ---------------------------------------------------------------------------------------

async function start() {
  const session = await signIn($("access-dialog"));
  if (session.system_prompt_locked) settingsDialog.lockSystemPrompt();
  const [models, formatted] = await Promise.all([api.listModels(), loadRenderer()]);
  fillModelPicker(ui.model, models);
  if (!formatted) say("status.plain");
  await refreshList();
}

const linked = decodeURIComponent(location.hash.slice(1));
const ready = start().catch((error) => sayText(t("status.loadFailed", { message: error.message })));
if (linked) ready.then(() => openConversation(linked));
else showHeader();
