// Who may use the chat (docs/helpdesk.md). The page asks GET /api/session before anything else:
// when an access code is required, a dialog asks for it; behind a company's single sign-on
// without a session, it says to come through the portal. Nothing else loads until then.

import { enterAccessCode, getSession } from "./api.js";
import { tr } from "./i18n.js";

/**
 * Resolves with the session ({signed_in, user, system_prompt_locked, admin, ...}) once signed in.
 * `codeText` is the string that asks for the code (the operator page asks for its own).
 */
export async function signIn(dialog, { codeText = "access.codeText" } = {}) {
  let session = await getSession();
  if (session.signed_in) return session;
  const form = dialog.querySelector("form");
  const error = dialog.querySelector(".dialog-error");
  form.hidden = !session.access_code_required;
  tr(dialog.querySelector(".access-text"),
     session.access_code_required ? codeText : "access.ssoText");
  dialog.addEventListener("cancel", (event) => event.preventDefault()); // no way around it
  dialog.showModal();
  if (!session.access_code_required) return new Promise(() => {}); // only the portal can help
  const input = form.elements.code;
  input.focus();
  await new Promise((resolve) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        await enterAccessCode(input.value);
        resolve();
      } catch (failure) {
        error.textContent = failure.message;
        input.select();
      }
    });
  });
  session = await getSession();
  dialog.close();
  return session;
}
