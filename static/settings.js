// The model picker (grouped by provider) and the per-conversation settings dialog: system
// prompt, temperature, max tokens. An empty field means "the model's default" (null).

/** Fill `select` from GET /api/models, one <optgroup> per provider, in the server's order. */
export function fillModelPicker(select, { models, default: fallback }) {
  const groups = new Map();
  for (const model of models) {
    if (!groups.has(model.provider)) {
      const group = document.createElement("optgroup");
      group.label = model.provider;
      groups.set(model.provider, group);
    }
    groups.get(model.provider).append(new Option(model.label, model.id, false, model.id === fallback));
  }
  select.replaceChildren(...groups.values());
}

export const hasModel = (select, id) => [...select.options].some((option) => option.value === id);

export const EMPTY_SETTINGS = Object.freeze({ system: null, temperature: null, max_tokens: null });

export const isCustomised = (settings) =>
  Object.values(settings || {}).some((value) => value !== null && value !== "");

export class SettingsDialog {
  /** `save(settings)` is async; an error it throws is shown in the dialog, which stays open. */
  constructor(dialog, save) {
    this.dialog = dialog;
    this.save = save;
    this.form = dialog.querySelector("form");
    this.fields = {
      system: this.form.elements.system,
      temperature: this.form.elements.temperature,
      max_tokens: this.form.elements.max_tokens,
    };
    this.error = dialog.querySelector(".dialog-error");
    this.locked = false;
    this.note = dialog.querySelector(".settings-new-chat");
    this.form.addEventListener("submit", (event) => this.submit(event));
    dialog.querySelector("[data-dismiss]").addEventListener("click", () => dialog.close());
  }

  /** The operator locked the system prompt: the field is hidden and never sent. */
  lockSystemPrompt() {
    this.locked = true;
    this.dialog.querySelector(".system-setting").hidden = true;
    this.dialog.querySelector(".settings-locked").hidden = false;
  }

  open(settings, { newChat }) {
    const { system, temperature, max_tokens: maxTokens } = { ...EMPTY_SETTINGS, ...settings };
    this.fields.system.value = system ?? "";
    this.fields.temperature.value = temperature ?? "";
    this.fields.max_tokens.value = maxTokens ?? "";
    this.note.hidden = !newChat;
    this.error.textContent = "";
    this.dialog.showModal();
    (this.locked ? this.fields.temperature : this.fields.system).focus();
  }

  read() {
    const number = (field, parse) => (field.value.trim() === "" ? null : parse(field.value));
    const settings = {
      temperature: number(this.fields.temperature, Number.parseFloat),
      max_tokens: number(this.fields.max_tokens, (v) => Number.parseInt(v, 10)),
    };
    if (!this.locked) settings.system = this.fields.system.value.trim() ? this.fields.system.value : null;
    return settings;
  }

  async submit(event) {
    event.preventDefault();
    if (!this.form.reportValidity()) return;
    try {
      await this.save(this.read());
      this.dialog.close();
    } catch (error) {
      this.error.textContent = error.message;
    }
  }
}

/** Mark the settings button while the conversation has settings of its own. */
export function showCustomised(button, settings) {
  button.classList.toggle("customised", isCustomised(settings));
}
