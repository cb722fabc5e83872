// The chat page's wiring: which conversation is open, sending, following and stopping a reply,
// and what each button does. Messages, markdown, the list, the dialogs and the preferences live in their
// own modules; this one holds the state and connects them.

import { signIn } from "./access.js";
import * as api from "./api.js";
import { ApiKeysDialog } from "./apikeys.js";
import { streamReply } from "./chat.js";
import { copyText } from "./clipboard.js";
import { closeMenu, initExportMenu, initLanguageSwitch } from "./controls.js";
import { initEmbed } from "./embed.js";
import { rate } from "./feedback.js";
import { t, tr, translatePage } from "./i18n.js";
import { addIcons } from "./icons.js";
import { sendsOnEnter } from "./keys.js";
import { AssistantMessage, UserMessage, adoptIds, openEditor, viewOf } from "./messages.js";
import { loadRenderer } from "./render.js";
import { AutoScroll } from "./scroll.js";
import { EMPTY_SETTINGS, SettingsDialog, fillModelPicker, hasModel, showCustomised } from "./settings.js";
import { Sidebar, confirmDialog, deleteTexts } from "./sidebar.js";
import { STATUS } from "./status.js";
import { StatusLine } from "./statusline.js";
import { initTheme } from "./theme.js";
import { UsageSummary } from "./usage.js";
import { Welcome } from "./welcome.js";

const $ = (id) => document.getElementById(id);
const ui = {
  messages: $("messages"), empty: $("empty"), jump: $("jump"), title: $("title"),
  model: $("model"), form: $("composer"), input: $("input"), send: $("send"), stop: $("stop"),
  status: $("status"), newChat: $("new-chat"), settings: $("open-settings"),
  exportMenu: $("export"), language: $("language"), theme: $("theme"),
};
const COPIED_MS = 1500;
const STOP_WAIT_MS = 2000; // Stop pressed before the reply's id arrived: wait this long for it

const state = {
  conversation: null, // {id, title, settings} of the open conversation; null: a new chat
  draft: { ...EMPTY_SETTINGS }, // settings chosen for a new chat, sent with its first message
  live: null, // the reply being written, sent or followed: {controller, messageId, stopping}
  syncing: Promise.resolve(), // learning the last turn's ids when its stream never announced them
};
const busy = () => state.live !== null;

translatePage();
addIcons();
initTheme(ui.theme);
const embed = initEmbed(ui.input); // the widget's panel (/widget); null on the full page
const BUSY = embed ? "status.busyEmbed" : "status.busy"; // Esc closes the panel there
const scroller = new AutoScroll(ui.messages, ui.jump);
const follow = () => scroller.follow();
const sidebar = new Sidebar({
  aside: $("sidebar"), list: $("conversations"), search: $("search"), empty: $("no-conversations"),
  toggle: $("open-sidebar"), close: $("close-sidebar"), scrim: $("scrim"),
}, { open: openConversation, rename: renameConversation, remove: deleteConversation });
const settingsDialog = new SettingsDialog($("settings-dialog"), saveSettings);
const usage = new UsageSummary($("usage"));
const keysDialog = new ApiKeysDialog($("keys-dialog"), $("open-keys"),
  (texts) => confirmDialog($("confirm-dialog"), texts));

const status = new StatusLine(ui.status);
const say = (key, args) => status.say(key, args);
const sayText = (text) => status.text(text);
// An empty chat greets with the model's greeting; a starter is sent as if typed.
const welcome = new Welcome(ui.empty, ui.model, (text) => {
  if (busy()) return;
  ui.input.focus(); // the starter's button goes with the empty chat: focus goes where one types
  submit(text);
});

// Conversations -------------------------------------------------------------------------------

const summary = ({ id, title, settings }) => ({ id, title, settings: { ...EMPTY_SETTINGS, ...settings } });

/** Reload the conversation list; the open conversation's title comes from it too. */
async function refreshList() {
  const { conversations } = await api.listConversations();
  sidebar.setConversations(conversations);
  const open = state.conversation && conversations.find((c) => c.id === state.conversation.id);
  if (open && open.title !== state.conversation.title) {
    state.conversation.title = open.title;
    showHeader();
  }
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
  if (!ui.empty.hidden) welcome.show();
  sidebar.setCurrent(state.conversation?.id ?? null);
  embed?.remember(state.conversation?.id ?? null);
  // The open conversation is in the address, so a reload comes back to it.
  const hash = state.conversation ? `#${encodeURIComponent(state.conversation.id)}` : "";
  if (location.hash !== hash) {
    history.replaceState(null, "", hash || location.pathname + location.search);
  }
}

/** Show saved messages; a last reply still being written is returned, to be followed. */
function renderMessages(messages) {
  ui.messages.replaceChildren();
  const lastMessage = messages.at(-1);
  let writing = null;
  for (const message of messages) {
    if (message.role === "user") new UserMessage(ui.messages, message);
    else if (message === lastMessage && message.status === STATUS.STREAMING) {
      writing = AssistantMessage.following(ui.messages, message, { onRender: follow });
    } else AssistantMessage.fromSaved(ui.messages, message, { onRender: follow });
  }
  return writing;
}

let opening = 0; // the latest openConversation call; an older one's answer is dropped

/** Show conversation `id`; `refresh` reloads it even when it is the one already shown. */
async function openConversation(id, { refresh = false } = {}) {
  await ready;
  if (busy()) return say(BUSY);
  if (state.conversation?.id === id && !refresh) return undefined;
  const call = ++opening;
  let conversation;
  try {
    conversation = await api.getConversation(id);
    if (call !== opening) return undefined;
  } catch (error) {
    sayText(t("status.loadFailed", { message: error.message }));
    showHeader();
    return refreshList();
  }
  state.conversation = summary(conversation);
  const writing = renderMessages(conversation.messages);
  if (hasModel(ui.model, conversation.model)) ui.model.value = conversation.model;
  say(null);
  showHeader();
  scroller.toBottom();
  // A reply still being written (before a reload, in another tab or on another device): follow
  // it live, exactly like one sent from here.
  if (writing) watch(writing);
  return undefined;
}

function newChat() {
  if (busy()) return say(BUSY);
  opening += 1; // a conversation still loading is not shown any more
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
  if (busy() && state.conversation?.id === id) return say(BUSY);
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
    say(BUSY);
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

  let announced = false; // meta gave both messages their ids
  let stopped;
  try {
    ({ stopped } = await write(reply, {
      payload,
      onMeta: (meta) => {
        // The ids the server saved this turn under: edit and regenerate need them.
        if (meta.user_message_id) user.element.dataset.id = meta.user_message_id;
        reply.element.dataset.id = meta.message_id;
        announced = Boolean(meta.user_message_id && meta.message_id);
        if (!state.conversation) {
          state.conversation = { id: meta.conversation_id, title: text.slice(0, 60), settings: state.draft };
          showHeader();
          refreshList();
        }
      },
    }));
  } catch (error) {
    // Refused before streaming (a check or a limit): nothing was saved, so nothing is shown.
    user.element.remove();
    reply.element.remove();
    showHeader();
    sayText(error.message);
    // E.g. an edit refused because a reply is still being written (elsewhere): show (and
    // follow) the conversation as it is.
    if (editId && state.conversation) await reopenAfterRefusal();
    return false;
  }
  if (announced) {
    await refreshAfterReply();
  } else {
    // The stream broke before meta (e.g. stopped at once): ask the server what it kept.
    state.syncing = syncWithServer({ stop: stopped });
    await state.syncing;
  }
  return true;
}

/** Follow `reply`, a reply being written that was not sent from here (its element has its id). */
async function watch(reply) {
  try {
    await write(reply);
  } catch (error) {
    sayText(error.message);
    return;
  }
  await refreshAfterReply();
}

async function refreshAfterReply() {
  try {
    await refreshList(); // the list's order and the title; the messages are already right
  } catch (error) {
    sayText(error.message);
  }
}

/**
 * Write `reply` while the page is busy: the answer to `payload`, or without one the reply its
 * element names, followed. Resolves with {status, stopped}; throws when `payload` was refused.
 */
async function write(reply, { payload = null, onMeta = () => {} } = {}) {
  const live = {
    controller: new AbortController(),
    messageId: payload ? null : reply.element.dataset.id, // known at once when following
    stopping: false, // Stop was pressed
  };
  state.live = live;
  setBusy(true);
  try {
    const status = await streamReply({
      payload, messageId: live.messageId, reply, signal: live.controller.signal,
      onMeta: (meta) => {
        live.messageId = meta.message_id;
        onMeta(meta);
        if (live.stopping) requestStop(live); // Stop was pressed before the id was known
      },
      onResuming: () => say("status.reconnecting"),
      onResumed: () => say("status.writing"),
    });
    say(status === STATUS.COMPLETE ? "status.done" : null);
    return { status, stopped: live.stopping };
  } finally {
    state.live = null;
    setBusy(false);
  }
}

async function reopenAfterRefusal() {
  const message = ui.status.textContent;
  await openConversation(state.conversation.id, { refresh: true });
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

/**
 * After a turn whose stream never said its ids: learn them (edit and regenerate need them). A
 * reply the server is still writing is stopped when the user asked for it, else followed.
 */
async function syncWithServer({ stop: stopIt = false } = {}) {
  if (!state.conversation) return;
  try {
    const id = state.conversation.id;
    let conversation = await api.getConversation(id);
    const writing = conversation.messages.at(-1);
    if (stopIt && writing?.status === STATUS.STREAMING) {
      await api.stopReply(writing.id);
      conversation = await api.getConversation(id);
    }
    if (busy() || state.conversation?.id !== conversation.id) return; // moved on meanwhile
    state.conversation = summary(conversation);
    const stillWriting = conversation.messages.at(-1)?.status === STATUS.STREAMING;
    const followed = stillWriting || !adoptIds(ui.messages, conversation.messages)
      ? renderMessages(conversation.messages) : null;
    showHeader();
    if (followed) watch(followed);
    else await refreshList();
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

/**
 * Stop the reply being written: ask the server, wherever it is being written; every page
 * following it (this one included) then receives `done` with its saved status. Before its id is
 * known, the request waits for meta (at most STOP_WAIT_MS, then this page stops listening).
 */
function stop() {
  const live = state.live;
  if (!live || live.stopping) return;
  live.stopping = true;
  if (live.messageId) requestStop(live);
  else setTimeout(() => { if (!live.messageId) live.controller.abort(); }, STOP_WAIT_MS);
}

async function requestStop(live) {
  try {
    await api.stopReply(live.messageId);
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 429) {
      // Too many stops for now: the reply goes on, shown here as it is, and Stop works again.
      live.stopping = false;
      sayText(error.message);
      return;
    }
    live.controller.abort(); // the server could not be asked: at least stop listening
  }
}

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

ui.messages.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  const article = button?.closest("article.message");
  if (!article) return;
  const { action } = button.dataset;
  if (action === "copy-code") return copyFrom(button, button.closest(".codeblock").querySelector("code").textContent);
  if (action === "copy") return copyFrom(button, viewOf(article).text);
  await state.syncing; // a click right after a reply without meta waits for the messages' ids
  // Rating one reply while another is written is fine: the server refuses only the one written.
  if (action === "rate") return rate(button, { say, sayText });
  if (busy()) say(BUSY);
  else if (action === "edit" && article.dataset.id && !article.querySelector(".edit-form")) {
    openEditor(article, (text) => send(text, { editId: article.dataset.id }));
  } else if (action === "regenerate" || action === "retry") regenerate(article);
});

// Composer and keyboard -----------------------------------------------------------------------

/** Send `text` as the user's message; refused, it goes into the message box. */
async function submit(text) {
  const sent = await send(text);
  if (!sent && !ui.input.value) ui.input.value = text; // refused: give the text back
}

ui.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = ui.input.value;
  if (!text.trim() || busy()) return;
  ui.input.value = "";
  await submit(text);
});

ui.input.addEventListener("keydown", (event) => {
  if (!sendsOnEnter(event)) return;
  event.preventDefault();
  ui.form.requestSubmit();
});

ui.stop.addEventListener("click", stop);
document.addEventListener("keydown", (event) => {
  // Esc stops the reply (in the widget's panel: closes the panel), unless it is closing
  // something else first (a dialog, a menu, an edit, an input method's candidates).
  if (event.key !== "Escape" || event.isComposing || event.defaultPrevented
      || document.querySelector("dialog[open]") || closeMenu(ui.exportMenu)) return;
  if (embed) {
    event.preventDefault();
    embed.close(); // the widget's panel closes; a reply being written goes on
  } else if (busy()) {
    event.preventDefault();
    stop();
  }
});

// Header and preferences ----------------------------------------------------------------------

ui.newChat.addEventListener("click", newChat);
ui.settings.addEventListener("click", () => {
  settingsDialog.open(state.conversation ? state.conversation.settings : state.draft,
    { newChat: !state.conversation });
  usage.refresh(); // what the user spent and has left, as of now
});

initExportMenu(ui.exportMenu, () => state.conversation?.id, (error) => sayText(error.message));
initLanguageSwitch(ui.language);

// Start ---------------------------------------------------------------------------------------

async function start() {
  const session = await signIn($("access-dialog"));
  if (session.system_prompt_locked) settingsDialog.lockSystemPrompt();
  keysDialog.enable(session.api_keys === true);
  const adminLink = $("open-admin"); // the operators' page; not in the widget's panel
  if (adminLink) adminLink.hidden = session.admin !== true;
  const [models, formatted] = await Promise.all([api.listModels(), loadRenderer()]);
  fillModelPicker(ui.model, models);
  embed?.pickModel(ui.model);
  welcome.setModels(models.models);
  if (!formatted) say("status.plain");
  await refreshList();
}

// A link to a conversation (#<id>); a fragment that is not valid percent-encoding links nothing.
// The widget's panel reopens the conversation it showed last (on the portal's previous page).
const linked = (() => {
  try {
    return decodeURIComponent(location.hash.slice(1));
  } catch {
    return "";
  }
})() || embed?.remembered();
const ready = start().catch((error) => sayText(t("status.loadFailed", { message: error.message })));
if (linked) ready.then(() => openConversation(linked));
else showHeader();
ready.then(() => embed?.ready());
