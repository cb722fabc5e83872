// Runs before the page is painted (a classic script in <head>, not a module, so it blocks):
// applies the remembered theme and language so the page never flashes the wrong ones.
// theme.js and i18n.js own these settings afterwards; the keys must match theirs.
// The widget's panel (data-embed, embed.js) shows the ones its portal asked for instead, and
// leaves the remembered ones alone.
(function () {
  var root = document.documentElement;
  if (root.hasAttribute("data-embed")) {
    var query = new URLSearchParams(location.search);
    var asked = query.get("theme");
    if (asked === "light" || asked === "dark") root.dataset.theme = asked;
    if (query.get("lang")) root.lang = /^zh/i.test(query.get("lang")) ? "zh-CN" : "en";
    return;
  }
  try {
    var theme = localStorage.getItem("streamdesk.theme");
    if (theme === "light" || theme === "dark") root.dataset.theme = theme;
    var language = localStorage.getItem("streamdesk.language");
    if (language) root.lang = language;
  } catch (error) {
    // Storage can be off (privacy settings): the system theme and browser language apply.
  }
})();
