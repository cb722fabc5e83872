// The operator page's tables and its chart, drawn from the JSON of /api/admin/... Every value
// is set as text: user ids, model names, comments, questions and replies are the users' and
// the models' own words, never HTML. Numbers, days and times are written in the page's language.

import {
  formatDay, formatMilliseconds, formatNumber, formatPercent, formatTime,
} from "./format.js";
import { t, tr } from "./i18n.js";
import { icon } from "./icons.js";

const SVG = "http://www.w3.org/2000/svg";

const usageColumns = (key, format) => [
  { field: "key", label: key, format, rowHeader: true },
  { field: "replies", label: "admin.col.replies", format: "number", total: true },
  { field: "prompt_tokens", label: "admin.col.prompt", format: "number", total: true },
  { field: "completion_tokens", label: "admin.col.completion", format: "number", total: true },
  { field: "total_tokens", label: "admin.col.total", format: "number", total: true },
  { field: "estimated_replies", label: "admin.col.estimated", format: "number", total: true },
  { field: "failed_replies", label: "admin.col.failed", format: "number", total: true },
];

/** Each table of the page: its element's id, the JSON it shows, and its columns. */
export const TABLES = {
  "by-user": { source: "usage", params: { by: "user" }, columns: usageColumns("admin.col.user", "code") },
  "by-model": { source: "usage", params: { by: "model" }, columns: usageColumns("admin.col.model", "text") },
  "by-day": { source: "usage", params: { by: "day" }, columns: usageColumns("admin.col.day", "day") },
  models: {
    source: "models", params: {}, columns: [
      { field: "model", label: "admin.col.model", format: "text", rowHeader: true },
      { field: "replies", label: "admin.col.replies", format: "number" },
      { field: "failed_replies", label: "admin.col.failed", format: "number" },
      { field: "error_rate", label: "admin.col.errorRate", format: "percent" },
      { field: "ttft_median_ms", label: "admin.col.ttftMedian", format: "ms" },
      { field: "ttft_p95_ms", label: "admin.col.ttftP95", format: "ms" },
    ],
  },
  feedback: {
    source: "feedback", params: {}, columns: [
      { field: "time", label: "admin.col.time", format: "time", rowHeader: true },
      { field: "model", label: "admin.col.model", format: "text" },
      { field: "rating", label: "admin.col.rating", format: "rating" },
      { field: "comment", label: "admin.col.comment", format: "long" },
      { field: "question", label: "admin.col.question", format: "long" },
      { field: "reply", label: "admin.col.reply", format: "long" },
      { field: "user", label: "admin.col.user", format: "code" },
    ],
  },
};

const NUMERIC = new Set(["number", "percent", "ms"]);
const RATINGS = { up: ["thumbUp", "feedback.up"], down: ["thumbDown", "feedback.down"] };
// A longer text starts folded: its first lines, and "Show all" (a <details>) for the rest.
const FOLD_CHARS = 280;
const FOLD_LINES = 6;
const PREVIEW_CHARS = 160;
const PREVIEW_LINES = 3;

/** `text` as it is, or folded when it is long. */
function longText(text) {
  const lines = text.split("\n");
  if (text.length <= FOLD_CHARS && lines.length <= FOLD_LINES) return text;
  const details = document.createElement("details");
  details.className = "long-text";
  const summary = document.createElement("summary");
  const preview = document.createElement("span");
  preview.className = "preview";
  preview.textContent = `${lines.slice(0, PREVIEW_LINES).join("\n").slice(0, PREVIEW_CHARS).trimEnd()}…`;
  const more = document.createElement("span");
  more.className = "fold-more";
  more.textContent = t("admin.showAll");
  const less = document.createElement("span");
  less.className = "fold-less";
  less.textContent = t("admin.showLess");
  summary.append(preview, more, less);
  const full = document.createElement("div");
  full.className = "full-text";
  full.textContent = text;
  details.append(summary, full);
  return details;
}

/** The value of one cell, as nodes or text. */
function content(value, format) {
  if (format === "number") return formatNumber(value);
  if (format === "percent") return formatPercent(value);
  if (format === "ms") return formatMilliseconds(value);
  if (format === "day" || format === "time") {
    const time = document.createElement("time");
    time.dateTime = value;
    time.textContent = format === "day" ? formatDay(value) : formatTime(value);
    return time;
  }
  if (format === "rating" && RATINGS[value]) { // 👍 or 👎, drawn as the chat page draws them
    const [name, key] = RATINGS[value];
    const mark = document.createElement("span");
    mark.className = `rating rating-${value}`;
    mark.dataset.rating = value;
    mark.setAttribute("role", "img");
    mark.setAttribute("aria-label", t(key));
    mark.title = t(key);
    mark.append(icon(name));
    return mark;
  }
  if (format === "long" && typeof value === "string") return longText(value);
  return value === null || value === undefined ? "" : String(value);
}

function cell(tag, value, column) {
  const element = document.createElement(tag);
  if (tag === "th") element.scope = "row";
  element.className = `cell-${column.format}${NUMERIC.has(column.format) ? " num" : ""}`;
  element.dataset.field = column.field;
  element.append(content(value, column.format));
  return element;
}

/** Fill `table` with `rows` under `columns`; with `totals`, a last row adds them up. */
export function fillTable(table, columns, rows, totals = null) {
  const head = document.createElement("thead");
  const headRow = head.insertRow();
  for (const column of columns) {
    const th = document.createElement("th");
    th.scope = "col";
    if (NUMERIC.has(column.format)) th.className = "num";
    th.textContent = t(column.label);
    headRow.append(th);
  }
  const body = document.createElement("tbody");
  for (const row of rows) {
    const tr_ = body.insertRow();
    for (const column of columns) tr_.append(cell(column.rowHeader ? "th" : "td", row[column.field], column));
  }
  if (rows.length === 0) {
    const empty = body.insertRow().insertCell();
    empty.colSpan = columns.length;
    empty.className = "empty-row";
    empty.textContent = t("admin.empty");
  }
  table.replaceChildren(head, body);
  if (totals && rows.length) {
    const foot = document.createElement("tfoot");
    const row = foot.insertRow();
    const label = document.createElement("th");
    label.scope = "row";
    label.textContent = t("admin.totals");
    row.append(label);
    for (const column of columns.slice(1)) {
      row.append(column.total ? cell("td", totals[column.field], column) : document.createElement("td"));
    }
    table.append(foot);
  }
}

/** The UTC days from `from` to `to` (YYYY-MM-DD), both included. */
export function daysBetween(from, to) {
  const days = [];
  const last = Date.parse(`${to}T00:00:00Z`);
  for (let time = Date.parse(`${from}T00:00:00Z`); time <= last && days.length <= 366; time += 86_400_000) {
    days.push(new Date(time).toISOString().slice(0, 10));
  }
  return days;
}

/**
 * Tokens per day as bars in `svg`: one slot per day of the period, a bar for each day with
 * replies (the by-day rows). The svg's label says the same in words; `maxLabel`, `firstLabel`
 * and `lastLabel` mark the scale and the period's ends for the eye.
 */
export function drawChart({ svg, maxLabel, firstLabel, lastLabel }, rows, from, to) {
  const days = daysBetween(from, to);
  const slot = 10;
  const height = 100;
  const max = Math.max(0, ...rows.map((row) => row.total_tokens));
  svg.setAttribute("viewBox", `0 0 ${Math.max(1, days.length) * slot} ${height}`);
  const baseline = document.createElementNS(SVG, "line");
  baseline.classList.add("chart-baseline");
  for (const [name, value] of [["x1", 0], ["x2", days.length * slot], ["y1", height], ["y2", height]]) {
    baseline.setAttribute(name, value);
  }
  const bars = [];
  const tokens = new Map(rows.map((row) => [row.key, row.total_tokens]));
  days.forEach((day, index) => {
    if (!tokens.has(day)) return;
    const value = tokens.get(day);
    const barHeight = Math.max(1, max ? (value / max) * (height - 4) : 0);
    const bar = document.createElementNS(SVG, "rect");
    bar.classList.add("bar");
    bar.dataset.day = day;
    bar.dataset.tokens = value;
    bar.setAttribute("x", index * slot + 1.5);
    bar.setAttribute("width", slot - 3);
    bar.setAttribute("y", height - barHeight);
    bar.setAttribute("height", barHeight);
    const title = document.createElementNS(SVG, "title");
    title.textContent = t("admin.barTitle", { day: formatDay(day), n: formatNumber(value) });
    bar.append(title);
    bars.push(bar);
  });
  svg.replaceChildren(baseline, ...bars);

  const period = { from: formatDay(from), to: formatDay(to) };
  const total = rows.reduce((sum, row) => sum + row.total_tokens, 0);
  const top = rows.reduce((best, row) => (row.total_tokens > (best?.total_tokens ?? -1) ? row : best), null);
  svg.setAttribute("aria-label", rows.length ? t("admin.chartSummary", {
    ...period, total: formatNumber(total), days: formatNumber(rows.length),
    top: formatDay(top.key), max: formatNumber(top.total_tokens),
  }) : t("admin.chartEmpty", period));
  maxLabel.textContent = rows.length ? t("admin.chartMax", { n: formatNumber(max) }) : "";
  firstLabel.textContent = period.from;
  lastLabel.textContent = period.to;
}

/** Name the CSV link of table `name`'s section (its aria-label says which table). */
export function labelCsvLink(link, title) {
  tr(link, "admin.csvLabel", { table: t(title) }, "aria-label");
}
