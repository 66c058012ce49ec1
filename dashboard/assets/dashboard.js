// The dashboard's only script: polls /api/dashboard every second and redraws
// each panel in place (no reload, no library; the chart is plain SVG).
// body[data-refreshes] counts successful refreshes (the browser test reads it).
'use strict';

const REFRESH_MS = 1000;
const SVG = 'http://www.w3.org/2000/svg';
let refreshes = 0;
let firstRender = true;
const seen = { alerts: new Set(), carts: new Set(), incomplete: new Set() };

const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const node = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.setAttribute('class', v); else if (k === 'text') node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
const int = (n) => (n == null ? '–' : Math.round(n).toLocaleString('en-US'));
const money = (n) => (n == null ? '–' : '$' + n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
const moneyShort = (n) => (n >= 1e6 ? '$' + (n / 1e6).toFixed(2) + 'M' : n >= 1e4 ? '$' + (n / 1e3).toFixed(1) + 'k' : money(n));
const users = (n) => `${int(n)} user${n === 1 ? '' : 's'}`;
const pct = (x) => (x == null ? '–' : (100 * x).toFixed(1) + '%');
function ago(iso, now) {
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  return s < 60 ? Math.round(s) + 's ago' : s < 3600 ? Math.round(s / 60) + 'm ago' : Math.round(s / 3600) + 'h ago';
}
// The smallest 1, 2 or 5 times a power of ten at or above v (axis maxima).
function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
function ms(v) { return v == null ? '–' : v < 1000 ? v + ' ms' : (v / 1000).toFixed(1) + ' s'; }
function fill(tbody, rows, make, emptyText, cols) {
  tbody.replaceChildren(...(rows.length ? rows.map(make) : [el('tr', {}, el('td', { class: 'empty', colspan: cols, text: emptyText }))]));
}

function renderKpis(d) {
  const s = d.orders_per_minute.summary;
  $('kpi-revenue').textContent = moneyShort(s.revenue);
  $('kpi-orders').textContent = int(s.orders);
  $('kpi-items').textContent = int(s.items_sold);
  $('kpi-pageviews').textContent = int(s.pageviews);
  const ages = d.freshness.rows.map((r) => r.age_ms).filter((a) => a != null);
  $('kpi-freshness').textContent = ages.length ? ms(Math.max(...ages)) : '–';
}

function renderChart(rows) {
  const svg = $('chart');
  const W = Math.max(300, svg.clientWidth || 900), H = 230;
  const pad = { l: 44, r: 64, t: 12, b: 24 };
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.dataset.points = rows.length;
  const parts = [];
  if (!rows.length) {
    parts.push(el('svg:text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', text: 'waiting for orders…' }));
    svg.replaceChildren(...parts);
    return;
  }
  const maxO = niceCeil(Math.max(...rows.map((r) => r.orders))), maxR = niceCeil(Math.max(...rows.map((r) => r.revenue)));
  const iw = W - pad.l - pad.r, ih = H - pad.t - pad.b, slot = iw / rows.length;
  const barW = Math.min(slot * 0.7, 44);
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + ih - (ih * i) / 4;
    parts.push(el('svg:line', { class: 'grid-line', x1: pad.l, x2: W - pad.r, y1: y, y2: y }));
    parts.push(el('svg:text', { x: pad.l - 6, y: y + 4, 'text-anchor': 'end', text: int((maxO * i) / 4) }));
    parts.push(el('svg:text', { x: W - pad.r + 6, y: y + 4, text: moneyShort((maxR * i) / 4) }));
  }
  const pts = [];
  rows.forEach((r, i) => {
    const x = pad.l + i * slot, h = (ih * r.orders) / maxO;
    const bar = el('svg:rect', { class: 'bar', x: x + (slot - barW) / 2, y: pad.t + ih - h, width: barW, height: h, rx: 2 });
    bar.append(el('svg:title', { text: `${r.minute.slice(11, 16)} UTC: ${r.orders} orders, ${money(r.revenue)}` }));
    parts.push(bar);
    pts.push([x + slot / 2, pad.t + ih - (ih * r.revenue) / maxR]);
    if (i % Math.ceil(rows.length / 8) === 0 || i === rows.length - 1) {
      const t = new Date(r.minute);
      const label = t.toISOString().slice(11, 16);
      parts.push(el('svg:text', { x: x + slot / 2, y: H - 6, 'text-anchor': 'middle', text: label }));
    }
  });
  parts.push(el('svg:path', { class: 'rev', d: 'M' + pts.map((p) => p.map((v) => v.toFixed(1)).join(',')).join('L') }));
  for (const [x, y] of pts) parts.push(el('svg:circle', { class: 'rev-dot', cx: x, cy: y, r: 2.5 }));
  svg.replaceChildren(...parts);
}

function renderTopItems(rows) {
  fill($('top-items').tBodies[0], rows, (r) => el('tr', { 'data-item': r.item_id },
    el('td', { title: r.item_category || '' }, r.item_name || `item ${r.item_id}`, ' ', el('span', { class: 'sub dim', text: r.item_category || '' })),
    el('td', { class: 'num', text: int(r.items_sold) }),
    el('td', { class: 'num', text: money(r.revenue) }),
    el('td', { class: 'num', text: int(r.pageviews) }),
    el('td', { class: 'num', text: int(r.remaining_stock) })), 'no sales yet', 5);
}

function renderFunnel(rows) {
  const box = $('funnel');
  if (!rows.length) { box.replaceChildren(el('div', { class: 'empty', text: 'no pageviews yet' })); return; }
  const max = Math.max(...rows.map((r) => r.visitors), 1);
  box.replaceChildren(...rows.map((r) => el('div', { class: 'ch', 'data-channel': r.channel },
    el('div', { class: 'ch-head' }, el('b', { text: r.channel }), el('span', { text: pct(r.conversion_rate) + ' convert' })),
    el('div', { class: 'bars' },
      el('span', { class: 'b-visitors', style: `width:${(100 * r.visitors) / max}%` }),
      el('span', { class: 'b-viewers', style: `width:${(100 * r.product_viewers) / max}%` }),
      el('span', { class: 'b-buyers', style: `width:${(100 * r.buyers) / max}%` })),
    el('div', { class: 'nums', text: `${int(r.visitors)} visitors → ${int(r.product_viewers)} viewed products → ${int(r.buyers)} bought` }))));
}

function renderLowStock(panel, now) {
  $('low-stock-count').textContent = int(panel.summary.alerts);
  const list = $('low-stock');
  if (!panel.rows.length) { list.replaceChildren(el('li', { class: 'empty', text: 'no item below its threshold' })); return; }
  list.replaceChildren(...panel.rows.map((r) => {
    const key = `${r.item_id}@${r.fired_at}`;
    const li = el('li', { 'data-item': r.item_id, class: !firstRender && !seen.alerts.has(key) ? 'new' : '' },
      el('span', {}, r.item_name || `item ${r.item_id}`, el('div', { class: 'sub dim', text: `fired ${ago(r.fired_at, now)} · threshold ${int(r.threshold)}` })),
      el('span', { class: 'left', text: `${int(r.remaining_stock)} left` }));
    seen.alerts.add(key);
    return li;
  }));
}

function renderAbandoned(panel, now) {
  $('abandoned-count').textContent = int(panel.summary.carts);
  $('abandoned-value').textContent = panel.summary.carts ? `${money(panel.summary.value)} left behind by ${users(panel.summary.users)}` : '';
  fill($('abandoned').tBodies[0], panel.rows, (r) => {
    const tr = el('tr', { 'data-purchase': r.purchase_id, class: !firstRender && !seen.carts.has(r.purchase_id) ? 'new' : '' },
      el('td', { text: r.email || `user ${r.user_id}` }),
      el('td', { text: r.item_name || `item ${r.item_id}` }),
      el('td', { class: 'num', text: money(r.purchase_price) }),
      el('td', { class: 'num', text: ago(r.abandoned_at, now) }));
    seen.carts.add(r.purchase_id);
    return tr;
  }, 'no abandoned cart', 4);
}

function renderIncomplete(panel, now) {
  $('incomplete-count').textContent = int(panel.summary.purchases);
  $('incomplete-value').textContent = panel.summary.purchases ? `${money(panel.summary.value)} · ${users(panel.summary.users)}` : '';
  fill($('incomplete').tBodies[0], panel.rows, (r) => {
    const tr = el('tr', { 'data-purchase': r.purchase_id, class: !firstRender && !seen.incomplete.has(r.purchase_id) ? 'new' : '' },
      el('td', { text: r.email || `user ${r.user_id}` }),
      el('td', { text: r.item_name || `item ${r.item_id}` }),
      el('td', { class: 'num', text: money(r.purchase_price) }),
      el('td', { class: 'num', text: r.created_at ? ago(r.created_at, now) : '–' }));
    seen.incomplete.add(r.purchase_id);
    return tr;
  }, 'no incomplete purchase', 4);
}

function renderHighValue(panel) {
  $('high-value-count').textContent = int(panel.summary.users);
  fill($('high-value').tBodies[0], panel.rows, (r) => el('tr', { 'data-user': r.id },
    el('td', { text: r.email || `user ${r.id}` }),
    el('td', { class: 'num', text: money(r.lifetime_value) }),
    el('td', { class: 'num', text: int(r.purchases) })), 'nobody above $10,000 yet', 3);
}

function renderFreshness(rows) {
  const box = $('freshness');
  if (!rows.length) { box.replaceChildren(el('div', { class: 'empty', text: 'nothing committed yet' })); return; }
  box.replaceChildren(...rows.map((r) => el('div', { class: 'stream', 'data-stream': r.stream },
    el('span', {}, el('b', { text: r.stream }), el('div', { class: 'sub dim', text: `last batch ${int(r.batch_records)} records, committed ${ms(r.since_commit_ms)} ago` })),
    el('span', { class: 'age ' + (r.age_ms < 1000 ? 'ok' : r.age_ms < 5000 ? 'slow' : 'stale'), text: ms(r.age_ms) }))));
}

function render(d) {
  const now = Date.parse(d.orders_per_minute.summary.server_time) || Date.now();
  renderKpis(d);
  renderChart(d.orders_per_minute.rows);
  renderTopItems(d.top_items.rows);
  renderFunnel(d.funnel.rows);
  renderLowStock(d.low_stock, now);
  renderAbandoned(d.abandoned_carts, now);
  renderIncomplete(d.incomplete_purchases, now);
  renderHighValue(d.high_value_users);
  renderFreshness(d.freshness.rows);
  firstRender = false;
}

function status(ok, text) {
  $('status').className = 'status ' + (ok ? 'ok' : 'bad');
  $('status-text').textContent = text;
}

async function tick() {
  try {
    const response = await fetch('/api/dashboard', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
    render(await response.json());
    refreshes += 1;
    document.body.dataset.refreshes = refreshes;
    status(true, 'live · updated ' + new Date().toLocaleTimeString('en-GB'));
  } catch (e) {
    status(false, 'not updating: ' + e.message);
  } finally {
    setTimeout(tick, REFRESH_MS);
  }
}
tick();
