// The demo page's dashboard cards: one renderer per pipe, each filling its table (and the
// KPIs or the chart) from the rows Tinybird answered. DOM writes use textContent only.
import { renderSalesChart } from './charts.js';

const $ = (id) => document.getElementById(id);
const int = (v) => Number(v).toLocaleString('en-US', { maximumFractionDigits: 0 });
const money = (v) => Number(v).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });

function top(rows) {
  fillTable('top-products', rows, (r) => [r.product_name, int(r.units), money(r.revenue)]);
  $('kpi-top').textContent = rows[0]?.product_name ?? '–';
}

function sales(rows) {
  const revenue = rows.reduce((s, r) => s + Number(r.revenue), 0);
  const orders = rows.reduce((s, r) => s + Number(r.orders), 0);
  $('kpi-revenue').textContent = money(revenue);
  $('kpi-orders').textContent = int(orders);
  renderSalesChart($('sales-chart'), rows);
}

function orders(rows) {
  fillTable('recent-orders', rows, (r) => [r.order_id, r.ts, r.customer, r.product_name, int(r.quantity), money(r.amount), r.org_id]);
}

function orgs(rows) {
  fillTable('orgs-overview', rows, (r) => [r.org_id, r.org_name, int(r.orders), money(r.revenue)]);
}

function fillTable(id, rows, cells) {
  const tbody = $(id).tBodies[0];
  const numeric = [...$(id).tHead.rows[0].cells].map((th) => th.classList.contains('num'));
  tbody.replaceChildren(...rows.map((row) => {
    const tr = document.createElement('tr');
    cells(row).forEach((value, i) => {
      const td = tr.insertCell();
      td.textContent = value ?? '';
      if (numeric[i]) td.className = 'num';
    });
    return tr;
  }));
  if (rows.length === 0) {
    const td = tbody.insertRow().insertCell();
    td.colSpan = numeric.length;
    td.className = 'empty';
    td.textContent = 'No rows';
  }
}

/** The renderer of each dashboard pipe's rows. */
export const RENDERERS = { top_products: top, sales_by_day: sales, recent_orders: orders, orgs_overview: orgs };
