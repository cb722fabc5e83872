// "Your usage" in the settings dialog (GET /api/usage): the tokens the user spent today and this
// month and, for each token budget the operator set (TOKEN_BUDGET), how many are left and when
// the budget resets, in the reader's own time. Asked again each time the dialog opens.

import { getUsage } from "./api.js";
import { formatNumber, formatTime } from "./format.js";
import { onLanguageChange, tr } from "./i18n.js";

export class UsageSummary {
  /** `section` holds .usage-spent (a line) and .usage-budgets (a list). */
  constructor(section) {
    this.spent = section.querySelector(".usage-spent");
    this.budgets = section.querySelector(".usage-budgets");
    this.usage = null; // the last answer
    this.calls = 0; // the latest refresh; an older one's answer is dropped
    onLanguageChange(() => this.render()); // numbers and times are written in the page's language
  }

  async refresh() {
    const call = ++this.calls;
    if (!this.usage) tr(this.spent, "usage.loading");
    try {
      const usage = await getUsage();
      if (call !== this.calls) return;
      this.usage = usage;
      this.render();
    } catch (error) {
      if (call !== this.calls) return;
      this.usage = null;
      tr(this.spent, "usage.failed", { message: error.message });
      this.budgets.replaceChildren();
      this.budgets.hidden = true;
    }
  }

  render() {
    if (!this.usage) return;
    const { spent, budgets } = this.usage;
    tr(this.spent, "usage.spent", { day: formatNumber(spent.day), month: formatNumber(spent.month) });
    this.budgets.replaceChildren(...budgets.map((budget) => {
      const item = document.createElement("li");
      item.dataset.period = budget.period;
      tr(item, `usage.left.${budget.period}`, {
        left: formatNumber(budget.remaining), tokens: formatNumber(budget.tokens),
        time: formatTime(budget.resets_at),
      });
      item.classList.toggle("spent", budget.remaining === 0);
      return item;
    }));
    this.budgets.hidden = budgets.length === 0;
  }
}
