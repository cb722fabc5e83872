// Small line icons, drawn as SVG elements (no icon font, no inline markup from strings).
// Every icon is decorative: the button carrying it has its own accessible name.

const PATHS = {
  menu: "M4 6h16M4 12h16M4 18h16",
  plus: "M12 5v14M5 12h14",
  close: "M6 6l12 12M18 6L6 18",
  copy: "M9 9h10v10H9zM5 15V5h10",
  edit: "M4 20h4L19 9l-4-4L4 16zM13 7l4 4",
  trash: "M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3",
  regenerate: "M20 11a8 8 0 1 0-2.3 5.7M20 5v6h-6",
  settings: "M4 7h10M18 7h2M4 17h2M10 17h10M14 5v4M10 15v4",
  download: "M12 4v11M7 10l5 5 5-5M5 20h14",
  down: "M12 5v14M6 13l6 6 6-6",
  send: "M12 19V5M6 11l6-6 6 6",
  stop: "M7 7h10v10H7z",
  check: "M5 12l5 5 9-10",
  thumbUp: "M7 10v11H4a1 1 0 0 1-1-1v-9a1 1 0 0 1 1-1h3l4-7a2 2 0 0 1 3.4 1.8L13.5 10H19a2 2 0 0 1 2 2.4l-1.4 7A2 2 0 0 1 17.6 21H7",
  thumbDown: "M7 14V3H4a1 1 0 0 0-1 1v9a1 1 0 0 0 1 1h3l4 7a2 2 0 0 0 3.4-1.8L13.5 14H19a2 2 0 0 0 2-2.4l-1.4-7A2 2 0 0 0 17.6 3H7",
  chart: "M5 20V11M12 20V4M19 20v-6M3 20h18",
  key: "M21 2l-9.6 9.6M15.5 7.5l2.3 2.3a1 1 0 0 0 1.4 0l2.1-2.1a1 1 0 0 0 0-1.4L19 4M13 15.5a5.5 5.5 0 1 1-11 0a5.5 5.5 0 1 1 11 0z",
};
const SVG = "http://www.w3.org/2000/svg";

export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("icon");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", PATHS[name]);
  svg.append(path);
  return svg;
}

/** Give every element with data-icon="name" under `root` its icon, once. */
export function addIcons(root = document) {
  for (const element of root.querySelectorAll("[data-icon]:not([data-icon-done])")) {
    element.prepend(icon(element.dataset.icon));
    element.dataset.iconDone = "";
  }
}
