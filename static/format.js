// Numbers, days and times written in the page's language (Intl), for the usage figures of the
// settings dialog and the operator page.

import { currentLanguage } from "./i18n.js";

/** 1234 -> "1,234"; null (nothing measured) -> "—". */
export function formatNumber(value, options = {}) {
  if (value === null || value === undefined) return "—";
  return new Intl.NumberFormat(currentLanguage(), options).format(value);
}

/** A share, 0.125 -> "12.5%". */
export const formatPercent = (value) =>
  formatNumber(value, { style: "percent", maximumFractionDigits: 1 });

/** Milliseconds, 1234 -> "1,234 ms" ("1,234毫秒"); null -> "—". */
export const formatMilliseconds = (value) =>
  formatNumber(value, { style: "unit", unit: "millisecond", unitDisplay: "short" });

/** A UTC day, "2026-11-27" -> "Nov 27, 2026" ("2026年11月27日"). */
export function formatDay(day) {
  const date = new Date(`${day}T00:00:00Z`);
  if (Number.isNaN(date.getTime())) return day;
  return date.toLocaleDateString(currentLanguage(), { timeZone: "UTC", dateStyle: "medium" });
}

/** An instant (ISO 8601) in the reader's own time zone, date and time. */
export function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso ?? "";
  return date.toLocaleString(currentLanguage(), { dateStyle: "medium", timeStyle: "short" });
}
