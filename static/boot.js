// Runs before the page is painted (a classic script in <head>, not a module, so it blocks):
// applies the remembered theme and language so the page never flashes the wrong ones.
// theme.js and i18n.js own these settings afterwards; the keys must match theirs.
(function () {
  var root = document.documentElement;
  try {
    var theme = localStorage.getItem("streamdesk.theme");
    if (theme === "light" || theme === "dark") root.dataset.theme = theme;
    var language = localStorage.getItem("streamdesk.language");
    if (language) root.lang = language;
  } catch (error) {
    // Storage can be off (privacy settings): the system theme and browser language apply.
  }
})();
