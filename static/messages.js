// The DOM of one message: the user's text, or a reply with its reasoning, status note, numbers
// and action buttons. Clicks are handled by the page (app.js) through data-action; this module
// only builds and updates elements. User text is shown as typed; model text goes through
// LiveMarkdown (and so through the sanitizer) only.

import { feedbackButtons } from "./feedback.js";
import { icon } from "./icons.js";
import { tr } from "./i18n.js";
import { sendsOnEnter } from "./keys.js";
import { LiveMarkdown } from "./live.js";
import { STATUS } from "./status.js";

const views = new WeakMap(); // article element -> its UserMessage or AssistantMessage

export const viewOf = (element) => views.get(element);

function actionButton(action, key, iconName) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `icon-button action-${action}`;
  button.dataset.action = action;
  button.append(icon(iconName));
  tr(button, key, null, "aria-label");
  tr(button, key, null, "title");
  return button;
}

function article(role, id) {
  const element = document.createElement("article");
  element.className = `message ${role}`;
  element.dataset.role = role;
  if (id) element.dataset.id = id;
  const who = document.createElement("h2");
  who.className = "visually-hidden";
  tr(who, role === "user" ? "message.you" : "message.assistant");
  const body = document.createElement("div");
  body.className = "body";
  element.append(who, body);
  return { element, body };
}

export class UserMessage {
  constructor(container, { id, content }) {
    const { element, body } = article("user", id);
    this.element = element;
    this.text = content;
    body.textContent = content;
    const footer = document.createElement("footer");
    footer.className = "meta";
    const actions = document.createElement("span");
    actions.className = "actions";
    actions.append(actionButton("copy", "action.copy", "copy"), actionButton("edit", "action.edit", "edit"));
    footer.append(actions);
    element.append(footer);
    container.append(element);
    views.set(element, this);
  }
}

export class AssistantMessage {
  constructor(container, { id, feedback = null } = {}, { onRender } = {}) {
    const { element, body } = article("assistant", id);
    this.element = element;
    this.onRender = onRender;
    this.reasoningText = "";
    this.markdown = new LiveMarkdown(body, { onRender });
    this.footer = document.createElement("footer");
    this.footer.className = "meta";
    this.stats = document.createElement("span");
    this.stats.className = "stats";
    const actions = document.createElement("span");
    actions.className = "actions";
    // 👍 and 👎 (feedback.js): shown once the reply is finished and has text.
    this.feedback = feedbackButtons(feedback);
    this.feedback.hidden = true;
    actions.append(actionButton("copy", "action.copy", "copy"),
                   actionButton("regenerate", "action.regenerate", "regenerate"), this.feedback);
    this.footer.append(this.stats, actions);
    element.append(this.footer);
    container.append(element);
    views.set(element, this);
    this.setStatus(STATUS.STREAMING);
  }

  /** A saved message, rendered once. */
  static fromSaved(container, message, options = {}) {
    const view = new AssistantMessage(container, { id: message.id, feedback: message.feedback },
                                      options);
    if (message.reasoning) view.appendReasoning(message.reasoning);
    view.markdown.text = message.content || "";
    if (message.status === STATUS.STREAMING) {
      // Still being written, and not followed (the page follows only the last reply): what was
      // saved so far, with a note.
      view.markdown.finish();
      view.showNote(STATUS.STREAMING, null, null);
    } else {
      view.setStatus(message.status, { error: message.error, finishReason: message.finish_reason });
    }
    if (message.usage?.completion_tokens) view.setStats({ tokens: message.usage.completion_tokens });
    return view;
  }

  /** A saved reply still being written, about to be followed: what was saved so far, live. */
  static following(container, message, options = {}) {
    const view = new AssistantMessage(container, { id: message.id }, options);
    if (message.reasoning) view.appendReasoning(message.reasoning);
    if (message.content) view.appendText(message.content);
    return view;
  }

  get text() {
    return this.markdown.text;
  }

  /** Start over, empty and being written: a stream that replays the reply from its start. */
  restart() {
    this.reasoning?.remove();
    this.reasoning = null;
    this.reasoningText = "";
    for (const row of this.element.querySelectorAll(".note-row")) row.remove();
    this.markdown = new LiveMarkdown(this.element.querySelector(".body"), { onRender: this.onRender });
    this.setStatus(STATUS.STREAMING);
  }

  appendText(text) {
    this.markdown.append(text);
  }

  appendReasoning(text) {
    if (!this.reasoning) {
      this.reasoning = document.createElement("details");
      this.reasoning.className = "reasoning";
      const summary = document.createElement("summary");
      tr(summary, "message.reasoning");
      this.reasoningBody = document.createElement("div");
      this.reasoningBody.className = "reasoning-text";
      this.reasoning.append(summary, this.reasoningBody);
      this.element.querySelector(".body").before(this.reasoning);
    }
    this.reasoningText += text;
    this.reasoningBody.textContent = this.reasoningText;
  }

  /** Streaming while being written; then complete, cancelled, error or interrupted. */
  setStatus(status, { error = null, finishReason = null } = {}) {
    this.status = status;
    this.element.dataset.status = status;
    // Screen readers hold back a live region's changes while it is busy, then read the reply
    // once, instead of announcing every fragment. It stays busy until all of it is rendered.
    if (status === STATUS.STREAMING) {
      this.element.setAttribute("aria-busy", "true");
      this.feedback.hidden = true;
      return;
    }
    // Any finished reply can be rated, a stopped or failed one too, if it has something to rate.
    this.feedback.hidden = !this.text.trim();
    this.markdown.finish().then(() => this.element.setAttribute("aria-busy", "false"));
    if (status === STATUS.COMPLETE && finishReason !== "length") return;
    this.showNote(status, error, finishReason);
  }

  /** Still being written, but not followed here (`error` says why): the text so far, with a
   * note, and no Retry (the reply is not over). */
  notFollowed(error) {
    this.markdown.finish().then(() => this.element.setAttribute("aria-busy", "false"));
    this.showNote(STATUS.STREAMING, error, null);
  }

  showNote(status, error, finishReason) {
    const row = document.createElement("div");
    row.className = "note-row";
    const note = document.createElement("small");
    note.className = "note";
    if (error || status === STATUS.ERROR) {
      const code = error?.code || "internal";
      const reason = document.createElement("span");
      tr(reason, `reason.${code}`, null, "textContent", "reason.internal");
      note.append(reason);
      if (error?.message) {
        const detail = document.createElement("span");
        detail.className = "detail";
        detail.textContent = ` (${error.message})`;
        note.append(detail);
      }
    } else {
      tr(note, finishReason === "length" ? "status.length" : `status.${status}`);
    }
    row.append(note);
    if (status !== STATUS.COMPLETE && status !== STATUS.STREAMING) {
      const retry = document.createElement("button");
      retry.type = "button";
      retry.className = "retry";
      retry.dataset.action = "retry";
      retry.append(icon("regenerate"));
      const label = document.createElement("span");
      tr(label, "action.retry");
      retry.append(label);
      row.append(retry);
    }
    this.footer.before(row);
  }

  /** tokens (from usage, or estimated), seconds to the first token, tokens per second. */
  setStats({ tokens, estimated = false, firstTokenSeconds = null, tokensPerSecond = null, omitted = 0 }) {
    const parts = [];
    if (tokens) parts.push([estimated ? "stats.tokensEstimated" : "stats.tokens", { n: tokens }]);
    if (firstTokenSeconds !== null) parts.push(["stats.firstToken", { s: firstTokenSeconds.toFixed(2) }]);
    if (tokensPerSecond !== null) parts.push(["stats.speed", { n: tokensPerSecond.toFixed(1) }]);
    if (omitted) parts.push(["stats.omitted", { n: omitted }]);
    this.stats.replaceChildren(...parts.map(([key, args]) => {
      const part = document.createElement("span");
      part.className = key.replace(".", "-");
      tr(part, key, args);
      return part;
    }));
  }
}

/**
 * After a turn, give the page's messages the ids the server saved them under (edit and
 * regenerate need them). False when the page and the server disagree on the messages.
 */
export function adoptIds(container, messages) {
  const articles = [...container.querySelectorAll(":scope > article.message")];
  const same = articles.length === messages.length
    && articles.every((article, i) => article.dataset.role === messages[i].role);
  if (!same) return false;
  articles.forEach((article, i) => {
    // Only when it changed: a finished message's element is never touched again.
    if (article.dataset.id !== messages[i].id) article.dataset.id = messages[i].id;
  });
  return true;
}

/** Edit a user message in place; `send(text)` resends it (and replaces the turns after it). */
export function openEditor(article, send) {
  const view = views.get(article);
  const form = document.createElement("form");
  form.className = "edit-form";
  const area = document.createElement("textarea");
  area.name = "message";
  area.value = view.text;
  area.rows = Math.min(12, view.text.split("\n").length + 1);
  tr(area, "edit.label", null, "aria-label");
  const save = document.createElement("button");
  save.type = "submit";
  save.className = "primary";
  tr(save, "edit.send");
  const cancel = document.createElement("button");
  cancel.type = "button";
  tr(cancel, "edit.cancel");
  const buttons = document.createElement("div");
  buttons.className = "edit-buttons";
  buttons.append(cancel, save);
  form.append(area, buttons);
  article.classList.add("editing");
  article.querySelector(".body").after(form);
  area.focus();

  const close = () => {
    form.remove();
    article.classList.remove("editing");
    article.querySelector(".action-edit").focus();
  };
  cancel.addEventListener("click", close);
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      close();
    } else if (sendsOnEnter(event)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (area.value.trim()) send(area.value);
  });
}

/** The rough token count the server uses when a provider reports no usage. */
export function estimateTokens(text) {
  let wide = 0;
  for (const ch of text) if (ch.codePointAt(0) >= 0x2e80) wide += 1;
  return wide + Math.ceil((text.length - wide) / 4);
}
