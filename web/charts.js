// Charts for the demo page, drawn with the vendored Chart.js UMD build
// (web/vendor/chart.umd.js sets window.Chart). Kept apart from app.js so the
// page logic reads without chart configuration in the way. When Chart.js did
// not load, charts are skipped and the tables still work.

/** Colours of the two paths, shared with style.css (.dot-direct, .dot-proxy). */
export const PATH_COLORS = { direct: '#2563eb', proxy: '#c2410c' };
const GRID = '#e7e9ee';
const INK = '#5b6474';

const charts = new Map();

function chartLib() {
  const Chart = window.Chart;
  if (!Chart) return null;
  if (!chartLib.done) {
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.font.size = 12;
    Chart.defaults.color = INK;
    Chart.defaults.animation = false; // the tests screenshot right after rendering
    chartLib.done = true;
  }
  return Chart;
}

function draw(canvas, config) {
  const Chart = chartLib();
  if (!Chart) {
    canvas.closest('.chart-box')?.classList.add('chart-missing');
    return null;
  }
  charts.get(canvas)?.destroy();
  const chart = new Chart(canvas, config);
  charts.set(canvas, chart);
  canvas.dataset.rendered = 'true';
  return chart;
}

/** Destroys every chart (on logout: the next user must not see the last one's data). */
export function clearCharts() {
  for (const [canvas, chart] of charts) {
    chart.destroy();
    delete canvas.dataset.rendered;
  }
  charts.clear();
}

const axis = (title, extra = {}) => ({
  grid: { color: GRID }, border: { display: false }, title: { display: Boolean(title), text: title }, ...extra,
});

/**
 * Revenue (bars) and orders (line, right axis) per day.
 * @param {HTMLCanvasElement} canvas
 * @param {{day: string, orders: string|number, revenue: string|number}[]} rows
 */
export function renderSalesChart(canvas, rows) {
  const sorted = [...rows].sort((a, b) => String(a.day).localeCompare(String(b.day)));
  draw(canvas, {
    data: {
      labels: sorted.map((r) => String(r.day).slice(5, 10)),
      datasets: [
        { type: 'bar', label: 'Revenue', data: sorted.map((r) => Number(r.revenue)), backgroundColor: '#93c5fd', borderRadius: 3, yAxisID: 'y' },
        { type: 'line', label: 'Orders', data: sorted.map((r) => Number(r.orders)), borderColor: '#0f766e', backgroundColor: '#0f766e', pointRadius: 2, tension: 0.3, yAxisID: 'y1' },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: 'index', intersect: false },
      plugins: { legend: { position: 'top', align: 'end', labels: { boxWidth: 12 } } },
      scales: {
        x: axis('', { grid: { display: false } }),
        y: axis('Revenue', { beginAtZero: true }),
        y1: axis('Orders', { beginAtZero: true, position: 'right', grid: { display: false } }),
      },
    },
  });
}

/**
 * Percentiles (nearest rank) of a list of latencies in ms; null when empty.
 * @param {number[]} xs
 */
export function summarize(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  return {
    n: s.length, min: s[0], p25: q(0.25), p50: q(0.5), p75: q(0.75), p90: q(0.9), p99: q(0.99), max: s.at(-1),
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

/**
 * A side-by-side histogram of both paths' latencies and a box plot
 * (min–max whisker, p25–p75 box, median tick) per path.
 * @param {HTMLCanvasElement} histCanvas
 * @param {HTMLCanvasElement} boxCanvas
 * @param {{direct: number[], proxy: number[]}} samples
 * @param {{direct: object|null, proxy: object|null}} stats from {@link summarize}
 */
export function renderCompareCharts(histCanvas, boxCanvas, samples, stats) {
  const all = [...samples.direct, ...samples.proxy].sort((a, b) => a - b);
  const lo = all.length ? Math.floor(all[0]) : 0;
  const max = all.length ? Math.ceil(all.at(-1)) : 1;
  // One slow outlier (a 429 wait, a GC pause) would squash every other run into the
  // first bin: bin up to the 95th percentile and gather the rest in an overflow bin.
  const p95 = all.length ? all[Math.ceil(0.95 * all.length) - 1] : 1;
  const hi = max <= p95 * 1.25 ? max : Math.ceil(p95);
  const bins = 14;
  const width = Math.max(0.5, (hi - lo) / bins);
  const overflow = max > lo + bins * width;
  const labels = Array.from({ length: bins }, (_, i) => `${(lo + i * width).toFixed(width < 2 ? 1 : 0)}`);
  if (overflow) labels.push(`≥${(lo + bins * width).toFixed(0)}`);
  const count = (xs) => {
    const c = new Array(labels.length).fill(0);
    for (const x of xs) c[Math.min(labels.length - 1, Math.floor((x - lo) / width))] += 1;
    return c;
  };
  draw(histCanvas, {
    type: 'bar',
    data: {
      labels,
      datasets: ['direct', 'proxy'].map((p) => ({
        label: p, data: count(samples[p]), backgroundColor: PATH_COLORS[p], borderRadius: 2, categoryPercentage: 0.85, barPercentage: 0.95,
      })),
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      plugins: {
        legend: { position: 'top', align: 'end', labels: { boxWidth: 12 } },
        title: { display: true, text: 'How often each latency occurred', align: 'start' },
        tooltip: {
          callbacks: {
            title: (items) => (items[0].label.startsWith('≥') ? `${items[0].label} ms` : `${items[0].label}–${(Number(items[0].label) + width).toFixed(1)} ms`),
          },
        },
      },
      scales: { x: axis('latency (ms, bucket start)', { grid: { display: false } }), y: axis('runs', { beginAtZero: true, ticks: { precision: 0 } }) },
    },
  });

  const paths = ['direct', 'proxy'];
  const span = (lowKey, highKey) => paths.map((p) => (stats[p] ? [stats[p][lowKey], stats[p][highKey]] : null));
  
  draw(boxCanvas, {
    type: 'bar',
    data: {
      labels: paths,
      datasets: [
        { label: 'min–max', data: span('min', 'max'), backgroundColor: paths.map((p) => `${PATH_COLORS[p]}40`), barPercentage: 0.12, grouped: false },
        { label: 'p25–p75', data: span('p25', 'p75'), backgroundColor: paths.map((p) => PATH_COLORS[p]), barPercentage: 0.55, grouped: false },
        { label: 'median', data: paths.map((p) => (stats[p] ? [stats[p].p50 * 0.985, stats[p].p50 * 1.015] : null)), backgroundColor: '#111827', barPercentage: 0.7, grouped: false },
      ],
    },
    options: {
      indexAxis: 'y',
      responsive: true,
      maintainAspectRatio: false,
      plugins: {
        legend: { display: false },
        title: { display: true, text: 'Spread: whisker min–max, box p25–p75, tick median', align: 'start' },
        tooltip: {
          callbacks: {
            label: (item) => {
              const s = stats[paths[item.dataIndex]];
              return s ? `${item.dataset.label}: p50 ${s.p50.toFixed(1)} ms, p25–p75 ${s.p25.toFixed(1)}–${s.p75.toFixed(1)} ms` : '';
            },
          },
        },
      },
      // Logarithmic: latencies spread multiplicatively, and a 1 s outlier must not hide a 5 ms box.
      scales: { x: axis('latency (ms, log scale)', { type: 'logarithmic' }), y: axis('', { grid: { display: false } }) },
    },
  });
}
