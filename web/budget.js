// The demo page's budget meter: GET /api/usage/budget (the signed-in user's tenant: its
// limits, what it spent today and this month, and whether it is over), drawn as one <meter>
// per limit, and the sentence a refusal deserves ("Used 40 of 40 requests today; resets at
// 00:00 UTC") instead of a retry loop. DOM writes use textContent and attributes only.

const LINES = [
  // [limit key, spent key, what, period]
  ['daily_requests', 'day_requests', 'requests', 'today'],
  ['daily_read_bytes', 'day_read_bytes', 'bytes read', 'today'],
  ['monthly_requests', 'month_requests', 'requests', 'this month'],
  ['monthly_read_bytes', 'month_read_bytes', 'bytes read', 'this month'],
];

const el = (tag, props = {}, text) => {
  const e = document.createElement(tag);
  Object.assign(e, props);
  if (text !== undefined) e.textContent = text;
  return e;
};
const int = (v) => Number(v).toLocaleString('en-US', { maximumFractionDigits: 0 });

/** `00:00 UTC` (and the date when it is not the next midnight), from Unix seconds. */
export function resetText(unix, nowMs = Date.now()) {
  const at = new Date(unix * 1000);
  const hhmm = at.toISOString().slice(11, 16);
  const hours = (unix * 1000 - nowMs) / 3_600_000;
  const day = hours > 24 ? ` on ${at.toISOString().slice(0, 10)}` : '';
  return `${hhmm} UTC${day}`;
}

function untilText(unix, nowMs = Date.now()) {
  const minutes = Math.max(0, Math.round((unix * 1000 - nowMs) / 60_000));
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** Next 00:00 UTC, and the 1st of next month, as Unix seconds. */
function resets(nowMs = Date.now()) {
  const now = new Date(nowMs);
  const day = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) / 1000;
  const month = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) / 1000;
  return { today: day, 'this month': month };
}

/**
 * The refusal sentence for a tenant over budget, or null when it is not.
 * @param {{tenant: string, budget: object|null}} view the answer of /api/usage/budget
 */
export function refusalText(view, nowMs = Date.now()) {
  const line = view?.budget?.standing?.state === 'over' ? view.budget.standing.line : null;
  if (!line) return null;
  const [, , what, period] = LINES.find(([key]) => key === line.budget) ?? [null, null, line.budget, ''];
  return `Used ${int(line.spent)} of ${int(line.limit)} ${what} ${period}: tenant ${view.tenant}'s budget is spent. `
    + `It resets at ${resetText(line.resets_at, nowMs)} (in ${untilText(line.resets_at, nowMs)}); until then the BFF refuses new tokens and proxy calls.`;
}

/**
 * Wires the meter in `root` to `fetchJson` and returns its controls.
 * @param {HTMLElement} root the meter's container
 * @param {{fetchJson: (path: string) => Promise<any>, onView?: (view: any) => void}} deps
 */
export function createBudgetMeter(root, { fetchJson, onView }) {
  let last = null;
  const state = document.querySelector('[data-testid=budget-state]');

  function render(view) {
    const budget = view?.budget;
    root.replaceChildren();
    root.dataset.state = budget?.standing?.state ?? 'none';
    state.textContent = budget ? budget.standing.state : 'no budget';
    state.dataset.state = root.dataset.state;
    if (!budget) {
      root.append(el('p', { className: 'small' }, `Tenant ${view?.tenant ?? '–'} has no budget here: its requests are counted, not capped.`));
      root.append(el('p', { className: 'small muted' }, 'In this demo only initech (carol) has one: 40 requests a day.'));
      return;
    }
    const at = resets();
    for (const [key, spentKey, what, period] of LINES) {
      const limit = budget.limits[key];
      if (limit == null) continue;
      const spent = budget.spent[spentKey] ?? 0;
      const row = el('div', { className: 'budget-row' });
      row.dataset.budget = key;
      const label = el('span', { className: 'budget-label' }, `${int(spent)} of ${int(limit)} ${what} ${period}`);
      label.dataset.testid = `budget-${key}`;
      const meter = el('meter', { min: 0, max: limit, value: Math.min(spent, limit), low: limit * 0.8, high: limit * 0.99, optimum: 0 });
      meter.setAttribute('aria-label', `${what} ${period}`);
      row.append(label, meter, el('span', { className: 'small muted' }, `resets at ${resetText(at[period])}`));
      root.append(row);
    }
  }

  return {
    /** Reads the budget again and redraws; resolves to the view (null when unreadable). */
    async refresh() {
      try {
        last = await fetchJson('/api/usage/budget');
      } catch {
        return last;
      }
      render(last);
      onView?.(last);
      return last;
    },
    last: () => last,
    reset() {
      last = null;
      root.replaceChildren(el('p', { className: 'small muted' }, '–'));
      delete root.dataset.state;
      state.textContent = '';
    },
  };
}
