// Feedback on a reply: 👍 and 👎 toggle buttons under every finished reply that has text, and
// after 👎 an optional comment. Saved with PUT /api/messages/<id>/feedback; the buttons show
// what the server answered, never what was hoped for. A click on a pressed button clears the
// rating. Clicks reach rate() through the page's click handler (app.js), like the other actions.

import { putFeedback } from "./api.js";
import { icon } from "./icons.js";
import { tr } from "./i18n.js";
import { sendsOnEnter } from "./keys.js";

export const COMMENT_MAX_CHARS = 1000;
const RATINGS = { up: ["feedback.up", "thumbUp"], down: ["feedback.down", "thumbDown"] };
let fields = 0; // unique ids for the comment fields' labels

/** The two toggle buttons, a group named "Rate this reply"; `feedback` as saved, or null. */
export function feedbackButtons(feedback = null) {
  const group = document.createElement("span");
  group.className = "feedback";
  group.setAttribute("role", "group");
  tr(group, "feedback.label", null, "aria-label");
  for (const [rating, [key, iconName]] of Object.entries(RATINGS)) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `icon-button rate rate-${rating}`;
    button.dataset.action = "rate";
    button.dataset.rating = rating;
    button.append(icon(iconName));
    tr(button, key, null, "aria-label");
    tr(button, key, null, "title");
    group.append(button);
  }
  showRating(group, feedback?.rating ?? null);
  return group;
}

function showRating(group, rating) {
  for (const button of group.querySelectorAll("button[data-rating]")) {
    button.setAttribute("aria-pressed", String(button.dataset.rating === rating));
  }
}

/**
 * Save `feedback` for the reply `group` belongs to: {rating, comment} as the server saved them
 * (it answers null for a cleared rating), or null when it was not saved (the user is told why).
 */
async function save(group, feedback, sayText) {
  const id = group.closest("article.message")?.dataset.id;
  if (!id || group.dataset.saving) return null;
  group.dataset.saving = "true";
  try {
    const answer = await putFeedback(id, feedback);
    const saved = { rating: answer?.rating ?? null, comment: answer?.comment ?? null };
    showRating(group, saved.rating);
    return saved;
  } catch (error) {
    sayText(error.message);
    return null;
  } finally {
    delete group.dataset.saving;
  }
}

/** A click on 👍 or 👎: press it (👎 then offers the comment field), or clear it if pressed. */
export async function rate(button, { say, sayText }) {
  const group = button.closest(".feedback");
  const article = button.closest("article.message");
  if (group.dataset.saving) return; // the previous click is still being saved
  const pressed = button.getAttribute("aria-pressed") === "true";
  closeComment(article);
  const saved = await save(group, { rating: pressed ? null : button.dataset.rating }, sayText);
  if (!saved) return;
  say(saved.rating ? "feedback.thanks" : "feedback.cleared");
  if (saved.rating === "down") openComment(article, group, { say, sayText });
}

function closeComment(article, focus = null) {
  article.querySelector(".feedback-comment")?.remove();
  focus?.focus();
}

/** The optional comment after 👎, under the reply: Enter sends, Esc closes. */
function openComment(article, group, { say, sayText }) {
  const down = group.querySelector(".rate-down");
  const id = `feedback-comment-${++fields}`;
  const form = document.createElement("form");
  form.className = "feedback-comment";
  const label = document.createElement("label");
  label.htmlFor = id;
  tr(label, "feedback.commentLabel");
  const area = document.createElement("textarea");
  area.id = id;
  area.name = "comment";
  area.rows = 2;
  area.maxLength = COMMENT_MAX_CHARS;
  area.setAttribute("aria-describedby", `${id}-hint`);
  const hint = document.createElement("p");
  hint.id = `${id}-hint`;
  hint.className = "hint";
  tr(hint, "feedback.commentHint", { n: COMMENT_MAX_CHARS });
  const cancel = document.createElement("button");
  cancel.type = "button";
  tr(cancel, "feedback.cancel");
  const send = document.createElement("button");
  send.type = "submit";
  send.className = "primary";
  tr(send, "feedback.send");
  const buttons = document.createElement("div");
  buttons.className = "feedback-buttons";
  buttons.append(cancel, send);
  form.append(label, area, hint, buttons);
  article.append(form);
  area.focus();

  cancel.addEventListener("click", () => closeComment(article, down));
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.isComposing) {
      event.stopPropagation(); // closes the field only; never stops a reply being written
      closeComment(article, down);
    } else if (sendsOnEnter(event)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const comment = area.value.trim();
    if (!comment) return closeComment(article, down); // nothing to add: the 👎 is saved
    const saved = await save(group, { rating: "down", comment }, sayText);
    if (!saved) return undefined;
    closeComment(article, group.querySelector(".rate-down"));
    return say("feedback.thanksComment");
  });
}
