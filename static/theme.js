// Light and dark themes. By default the page follows the system (prefers-color-scheme, in
// style.css); the switch pins one, remembered in localStorage. boot.js applies the remembered
// choice before the first paint; the key must match.

const STORAGE_KEY = "streamdesk.theme";
const CHOICES = ["system", "light", "dark"];

function remembered() {
  try {
    const value = localStorage.getItem(STORAGE_KEY);
    return CHOICES.includes(value) ? value : "system";
  } catch {
    return "system";
  }
}

/** Show theme `choice` (system, light or dark) without remembering it. */
export function applyTheme(choice) {
  if (choice === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = choice;
}

/** Wire the theme <select> (options system / light / dark). */
export function initTheme(select) {
  select.value = remembered();
  applyTheme(select.value);
  select.addEventListener("change", () => {
    applyTheme(select.value);
    try {
      if (select.value === "system") localStorage.removeItem(STORAGE_KEY);
      else localStorage.setItem(STORAGE_KEY, select.value);
    } catch {
      // Not remembered, but switched for this visit.
    }
  });
}
