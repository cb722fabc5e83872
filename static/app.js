// The chat page: conversations in the sidebar, the open conversation, the composer.
// Model text only ever enters the page as text nodes, never as HTML.
import * as api from "./api.js";

const $ = (id) => document.getElementById(id);
const ui = {
  conversations: $("conversations"), messages: $("messages"), model: $("model"),
  form: $("composer"), input: $("input"), send: $("send"), stop: $("stop"),
  status: $("status"), newChat: $("new-chat"),
};

const STATUS_NOTES = {
  cancelled: "Stopped.",
  interrupted: "The reply was interrupted.",
  error: "The reply failed.",
  streaming: "Still being written…",
};

let conversationId = null;
let controller = null; // the AbortController of the reply being streamed

function messageElement(role) {
  const element = document.createElement("article");
  element.className = `message ${role}`;
  element.dataset.role = role;
  const body = document.createElement("div");
  body.className = "body";
  body.append(document.createTextNode(""));
  element.append(body);
  ui.messages.append(element);
  return element;
}

function setNote(element, text, status) {
  let note = element.querySelector(".note");
  if (!note) {
    note = document.createElement("small");
    note.className = "note";
    element.append(note);
  }
  note.textContent = text;
  if (status) element.classList.add(status);
}

function renderMessage({ role, content, status, error }) {
  const element = messageElement(role);
  element.querySelector(".body").firstChild.data = content;
  if (role === "assistant" && status !== "complete") {
    setNote(element, error ? error.message : STATUS_NOTES[status] || status, status);
  }
}

async function loadModels() {
  const { models, default: fallback } = await api.listModels();
  ui.model.replaceChildren(...models.map((m) => new Option(m.label, m.id, false, m.id === fallback)));
}

async function refreshConversations() {
  const { conversations } = await api.listConversations();
  ui.conversations.replaceChildren(...conversations.map((c) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = c.title;
    button.dataset.id = c.id;
    button.setAttribute("aria-current", String(c.id === conversationId));
    button.addEventListener("click", () => openConversation(c.id));
    item.append(button);
    return item;
  }));
}

const SETTLE_POLL_MS = 1000;

async function openConversation(id) {
  if (controller) return; // finish or stop the current reply first
  const conversation = await api.getConversation(id);
  conversationId = id;
  ui.messages.replaceChildren();
  conversation.messages.forEach(renderMessage);
  if ([...ui.model.options].some((o) => o.value === conversation.model)) ui.model.value = conversation.model;
  ui.status.textContent = "";
  await refreshConversations();
  // A reply still being written (in another tab, or just stopped and not yet saved as such):
  // look again until it settles.
  if (conversation.messages.some((m) => m.status === "streaming")) {
    setTimeout(() => { if (conversationId === id && !controller) openConversation(id); }, SETTLE_POLL_MS);
  }
}

function newChat() {
  if (controller) return;
  conversationId = null;
  ui.messages.replaceChildren();
  ui.status.textContent = "";
  refreshConversations();
  ui.input.focus();
}

async function send(text) {
  messageElement("user").querySelector(".body").firstChild.data = text;
  const reply = messageElement("assistant");
  const textNode = reply.querySelector(".body").firstChild;
  controller = new AbortController();
  setBusy(true);
  let finish = null;
  try {
    const payload = { message: text, model: ui.model.value };
    if (conversationId) payload.conversation_id = conversationId;
    for await (const { event, data } of api.streamChat(payload, controller.signal)) {
      if (event === "delta" && data.text) textNode.appendData(data.text);
      else if (event === "meta") conversationId = data.conversation_id;
      else if (event === "usage") reply.dataset.tokens = data.completion_tokens;
      else if (event === "error") setNote(reply, data.message, "error");
      else if (event === "done") finish = data.finish_reason;
      if (event === "delta") ui.messages.scrollTop = ui.messages.scrollHeight;
    }
    if (finish === null) setNote(reply, STATUS_NOTES.interrupted, "interrupted");
  } catch (error) {
    if (error.name === "AbortError") setNote(reply, STATUS_NOTES.cancelled, "cancelled");
    else setNote(reply, error.message, "error");
  } finally {
    controller = null;
    setBusy(false);
    refreshConversations();
  }
}

function setBusy(busy) {
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  ui.status.textContent = busy ? "Writing…" : "";
  if (!busy) ui.input.focus();
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.input.value;
  if (!text.trim() || controller) return;
  ui.input.value = "";
  send(text);
});

ui.input.addEventListener("keydown", (event) => {
  // While an IME is composing (Chinese, Japanese…), Enter picks a candidate: never send then.
  if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
  event.preventDefault();
  ui.form.requestSubmit();
});

ui.stop.addEventListener("click", () => controller?.abort());
ui.newChat.addEventListener("click", newChat);

loadModels().catch((error) => { ui.status.textContent = error.message; });
refreshConversations().catch((error) => { ui.status.textContent = error.message; });
