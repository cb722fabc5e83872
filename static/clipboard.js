// Copying text. navigator.clipboard exists only in secure contexts (HTTPS or localhost), and
// StreamDesk often runs on a plain-HTTP intranet address (field notes 11): there, copy through
// a hidden textarea and the older execCommand("copy"), which works inside a click handler.

export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Permission refused or document not focused: try the fallback below.
    }
  }
  return copyWithTextarea(text);
}

function copyWithTextarea(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "clipboard-buffer";
  const focused = document.activeElement;
  document.body.append(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  } finally {
    area.remove();
    focused?.focus?.({ preventScroll: true });
  }
  return copied;
}
