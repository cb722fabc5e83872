// The operator page (/admin): who may see it, the period picker, and loading the figures.
// An operator (GET /api/session's `admin`: an SSO name in ADMIN_USERS, or a session that entered
// ADMIN_CODE) sees usage by user, model and day, tokens per day as bars, errors and time to first
// token by model, and the feedback, for a period of whole UTC days. Anyone else is told the page
// is for operators, and may enter the operator code there. The tables and the chart are drawn by
// report.js; the theme, the language and the access dialog are the chat page's own modules.

import { signIn } from "./access.js";
import * as api from "./api.js";
import { initLanguageSwitch } from "./controls.js";
import { formatDay } from "./format.js";
import { onLanguageChange, t, tr, translatePage } from "./i18n.js";
import { addIcons } from "./icons.js";
import { TABLES, drawChart, fillTable, labelCsvLink } from "./report.js";
import { StatusLine } from "./statusline.js";
import { initTheme } from "./theme.js";

const $ = (id) => document.getElementById(id);
const DEFAULT_DAYS = 30;
const DAY_MS = 86_400_000;
const ui = {
  notice: $("not-operator"), codeForm: document.querySelector(".operator-code"),
  ssoNote: document.querySelector(".sso-note"), report: $("report"), period: $("period"),
  from: $("period-from"), to: $("period-to"),
  chart: {
    svg: $("chart"), maxLabel: document.querySelector(".chart-max"),
    firstLabel: document.querySelector(".chart-first"), lastLabel: document.querySelector(".chart-last"),
  },
};
const status = new StatusLine($("admin-status"));
const sections = Object.keys(TABLES).map((name) => {
  const section = document.querySelector(`section[data-table="${name}"]`);
  return { name, table: $(`${name}-table`), link: section.querySelector(".csv-link"),
           title: section.querySelector("h2").dataset.i18n };
});
let shown = null; // {from, to, answers}: the figures on the page
let loading = 0; // the latest load; an older one's answers are dropped

translatePage();
addIcons();
initTheme($("theme"));
initLanguageSwitch($("language"));

// Periods ---------------------------------------------------------------------------------------

const utcDay = (time) => new Date(time).toISOString().slice(0, 10);
const isDay = (text) => /^\d{4}-\d{2}-\d{2}$/.test(text ?? "") && !Number.isNaN(Date.parse(text));

/** The last `days` days, today (UTC) included. */
function lastDays(days) {
  const now = Date.now();
  return { from: utcDay(now - (days - 1) * DAY_MS), to: utcDay(now) };
}

/** The period in the address (?from=&to=, so a reload keeps it), else the last 30 days. */
function initialPeriod() {
  const query = new URLSearchParams(location.search);
  const from = query.get("from");
  const to = query.get("to");
  return isDay(from) && isDay(to) && from <= to ? { from, to } : lastDays(DEFAULT_DAYS);
}

function showPeriod({ from, to }) {
  ui.from.value = from;
  ui.to.value = to;
}

// The figures -----------------------------------------------------------------------------------

async function load(period) {
  const call = ++loading;
  showPeriod(period);
  status.say("admin.loading");
  ui.report.setAttribute("aria-busy", "true");
  let answers;
  try {
    answers = await Promise.all(sections.map(({ name }) =>
      api.getAdminTable(TABLES[name].source, { ...period, ...TABLES[name].params })));
  } catch (error) {
    if (call !== loading) return;
    ui.report.removeAttribute("aria-busy");
    if (error.status === 403) return showNotice(await api.getSession()); // no longer an operator
    status.say("admin.loadFailed", { message: error.message });
    return;
  }
  if (call !== loading) return;
  const { from, to } = answers[0]; // as the server read the period
  shown = { from, to, answers };
  history.replaceState(null, "", `?${new URLSearchParams({ from, to })}`);
  render();
  ui.report.removeAttribute("aria-busy");
}

/** Draw what was loaded (again after a language switch: numbers and days follow it). */
function render() {
  if (!shown) return;
  const { from, to, answers } = shown;
  sections.forEach(({ name, table, link, title }, index) => {
    const { columns } = TABLES[name];
    fillTable(table, columns, answers[index].rows, answers[index].totals ?? null);
    link.href = api.adminCsvUrl(TABLES[name].source, { from, to, ...TABLES[name].params });
    labelCsvLink(link, title);
  });
  drawChart(ui.chart, answers[sections.findIndex((s) => s.name === "by-day")].rows, from, to);
  status.say("admin.loaded", { from: formatDay(from), to: formatDay(to) });
}

ui.period.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!ui.period.reportValidity()) return;
  const period = { from: ui.from.value, to: ui.to.value };
  if (period.from > period.to) {
    status.say("admin.periodOrder");
    ui.from.focus();
    return;
  }
  load(period);
});
ui.period.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-days]");
  if (button) load(lastDays(Number(button.dataset.days)));
});
onLanguageChange(render);

// Who sees what ---------------------------------------------------------------------------------

function showReport() {
  ui.notice.hidden = true;
  ui.report.hidden = false;
  load(initialPeriod());
}

/** Not an operator: say so. An SSO user can only be made one by name; others may enter the code. */
function showNotice(session) {
  shown = null;
  ui.report.hidden = true;
  ui.notice.hidden = false;
  const sso = session.user?.kind === "sso";
  ui.codeForm.hidden = sso;
  ui.ssoNote.hidden = !sso;
  if (sso) tr(ui.ssoNote, "admin.ssoText", { name: session.user.name });
}

ui.codeForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = ui.codeForm.elements.code;
  const error = ui.codeForm.querySelector(".dialog-error");
  error.textContent = "";
  try {
    await api.enterAccessCode(input.value);
    if ((await api.getSession()).admin) {
      input.value = "";
      showReport();
      ui.from.focus();
      return;
    }
    error.textContent = t("admin.codeWrong"); // the chat's access code: right, but not this one
  } catch (failure) {
    error.textContent = failure.code === "invalid_access_code" ? t("admin.codeWrong") : failure.message;
  }
  input.select();
});

async function start() {
  const session = await signIn($("access-dialog"), { codeText: "admin.codeText" });
  if (session.admin) showReport();
  else showNotice(session);
}

start().catch((error) => {
  ui.notice.hidden = false;
  status.say("admin.loadFailed", { message: error.message });
});
