// The empty chat: the selected model's greeting and starter questions when the operator gave
// them (GET /api/models: `greeting`, `starters`), else the page's own "Start a conversation".
// The greeting is operator text, shown as text (never HTML); CSS keeps its line breaks. A click
// on a starter sends it as the user's message. The page hides all of it once the chat has one.

export class Welcome {
  /** `element` is #empty; `picker` the model <select>; `start(text)` sends a starter. */
  constructor(element, picker, start) {
    this.element = element;
    this.picker = picker;
    this.start = start;
    this.models = new Map();
    this.shown = undefined; // the model whose welcome is shown
    this.standard = element.querySelectorAll(".empty-standard");
    this.greeting = element.querySelector(".greeting");
    this.starters = element.querySelector(".starters");
    picker.addEventListener("change", () => this.show());
  }

  /** The models of GET /api/models; shows the selected one's welcome. */
  setModels(models) {
    this.models = new Map(models.map((model) => [model.id, model]));
    this.shown = undefined;
    this.show();
  }

  /** Show the welcome of the model now selected (nothing changes when it already is). */
  show() {
    const model = this.models.get(this.picker.value);
    if (model === this.shown) return;
    this.shown = model;
    const greeting = typeof model?.greeting === "string" && model.greeting.trim() ? model.greeting : "";
    const starters = (Array.isArray(model?.starters) ? model.starters : [])
      .filter((text) => typeof text === "string" && text.trim());
    this.greeting.textContent = greeting;
    this.greeting.hidden = !greeting;
    for (const element of this.standard) element.hidden = Boolean(greeting);
    this.starters.replaceChildren(...starters.map((text) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "starter";
      button.textContent = text;
      button.addEventListener("click", () => this.start(text));
      return button;
    }));
    this.starters.hidden = starters.length === 0;
    this.element.classList.toggle("welcome", Boolean(greeting) || starters.length > 0);
  }
}
