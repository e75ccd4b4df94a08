/* The operations board: fetches /api/board every few seconds with the tab's bearer token and renders it.
   A section whose source did not answer keeps its last figures, marked stale; the banner names the
   sources that are down. Data goes into the page only as text (textContent), never as HTML. */
(function () {
  'use strict';

  const TOKEN_KEY = 'backorder.board.token';
  const body = document.body;
  const refreshSeconds = Number(body.dataset.refreshSeconds) || 5;
  const charts = window.BoardCharts;
  const $ = (selector) => document.querySelector(selector);

  const state = {
    top: 10,
    bucket: 'hour',
    sku: null, // chosen by a click; null: the SKU with the most units waiting
    paused: false,
    timer: null,
    inFlight: false,
    again: false,
    last: {}, // section -> the last figures shown
    staleSince: {}, // section -> when its source stopped answering
    board: null,
  };

  // --- token -------------------------------------------------------------------------------------

  function takeTokenFromFragment() {
    const match = window.location.hash.match(/(?:^#|&)token=([^&]+)/);
    if (!match) return;
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    // The fragment never reaches a server, but it would stay in the address bar and the history.
    history.replaceState(null, '', window.location.pathname + window.location.search);
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function showTokenNeeded(reason) {
    $('#board').hidden = true;
    $('#token-needed').hidden = false;
    $('#banner').hidden = true;
    $('#token-reason').textContent = reason ||
      "The board shows the services' figures to holders of a staff, support or reader token.";
    body.classList.add('locked');
    setLastUpdate('token needed');
  }

  function showBoard() {
    $('#token-needed').hidden = true;
    $('#board').hidden = false;
    body.classList.remove('locked');
  }

  // --- helpers -----------------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') e.className = value;
      else if (key.startsWith('data-')) e.setAttribute(key, String(value));
      else if (key === 'title') e.title = value;
      else if (key === 'vars') {
        // CSSOM, not a style attribute: the page's CSP allows no inline styles.
        for (const [name, v] of Object.entries(value)) e.style.setProperty(name, v);
      }
      else e.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      e.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return e;
  }

  const numberFormat = new Intl.NumberFormat('en-GB');
  const fmtInt = (v) => (v === null || v === undefined ? '–' : numberFormat.format(v));
  const fmtPct = (v) => (v === null || v === undefined ? '–' : `${v.toFixed(1)}%`);

  function fmtDate(iso) {
    if (!iso) return null;
    const d = new Date(`${iso}T00:00:00Z`);
    return d.toLocaleDateString('en-GB', { weekday: 'short', day: 'numeric', month: 'short', timeZone: 'UTC' });
  }

  function daysFromToday(iso) {
    const today = new Date();
    const start = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate());
    return Math.round((Date.parse(`${iso}T00:00:00Z`) - start) / 86400000);
  }

  function fmtWait(days) {
    if (days === null || days === undefined) return '–';
    const hours = days * 24;
    if (hours < 1) return `${Math.max(1, Math.round(hours * 60))} min`;
    if (hours < 48) return `${Math.round(hours)} h`;
    return `${days.toFixed(1)} d`;
  }

  function fmtSince(iso) {
    if (!iso) return '–';
    return fmtWait((Date.now() - Date.parse(iso)) / 86400000);
  }

  function fmtClock(date) {
    return date.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function setLastUpdate(text) {
    $('#last-update').textContent = text;
  }

  /* A key figure; `value` null: its source did not answer, so the last one shown stays, marked stale. */
  function setKpi(id, value, sub, tone) {
    const tile = document.getElementById(id);
    if (value === null) {
      const last = state.last[`kpi:${id}`];
      if (!state.staleSince[`kpi:${id}`]) state.staleSince[`kpi:${id}`] = new Date();
      tile.querySelector('.value').textContent = last ? last.value : '–';
      tile.querySelector('.sub').textContent = last ? `stale since ${fmtClock(state.staleSince[`kpi:${id}`])}` : 'no answer yet';
      tile.dataset.tone = 'stale';
      return;
    }
    delete state.staleSince[`kpi:${id}`];
    state.last[`kpi:${id}`] = { value };
    tile.querySelector('.value').textContent = value;
    tile.querySelector('.sub').textContent = sub || '';
    tile.dataset.tone = tone || '';
  }

  function fillTable(table, rows, emptyNote) {
    table.querySelector('tbody').replaceChildren(...rows);
    const note = table.parentElement.querySelector('.empty');
    if (note) note.hidden = rows.length > 0;
    if (emptyNote !== undefined && note) note.textContent = emptyNote;
  }

  // --- sections ------------------------------------------------------------------------------------

  /* The section's figures this round, or its last ones while its source is down (marked stale). */
  function section(name, value, panelId) {
    const panel = panelId ? document.getElementById(panelId) : null;
    if (value !== null && value !== undefined) {
      state.last[name] = value;
      delete state.staleSince[name];
      if (panel) {
        panel.classList.remove('stale');
        panel.querySelector('.stale-note').textContent = '';
      }
      return value;
    }
    if (!state.staleSince[name]) state.staleSince[name] = new Date();
    if (panel) {
      panel.classList.add('stale');
      const since = state.last[name] ? `stale since ${fmtClock(state.staleSince[name])}` : 'no data yet';
      panel.querySelector('.stale-note').textContent = since;
    }
    return state.last[name] || null;
  }

  function renderSources(sources) {
    const pills = Object.entries(sources).map(([name, s]) =>
      el('li', { class: `pill ${s.ok ? 'ok' : 'down'}`, 'data-source': name, title: s.detail || 'answering' },
        el('span', { class: 'dot' }), name));
    $('#sources').replaceChildren(...pills);
    const down = Object.entries(sources).filter(([, s]) => !s.ok);
    const banner = $('#banner');
    if (down.length === 0) {
      banner.hidden = true;
      banner.replaceChildren();
      return;
    }
    banner.hidden = false;
    banner.replaceChildren(
      el('strong', {}, down.length === 1 ? 'A source is down' : `${down.length} sources are down`),
      ' — figures from it are the last ones received. ',
      ...down.map(([name, s]) => el('span', { class: 'down-source', 'data-source': name }, `${name}: ${s.detail}`)),
    );
  }

  function renderKpis(board) {
    const t = board.totals;
    const known = (v, shown) => (v === null || v === undefined ? null : shown);
    const windowText = board.bucket === 'day' ? 'last 30 days' : 'last 24 h';
    setKpi('kpi-waiting-units', known(t.waiting_units, fmtInt(t.waiting_units)), 'backordered, not filled yet',
      t.waiting_units ? 'warn' : 'ok');
    setKpi('kpi-waiting-lines', known(t.waiting_lines, fmtInt(t.waiting_lines)), 'order lines in queues');
    setKpi('kpi-oldest', known(t.waiting_lines, t.oldest_placed_at ? fmtSince(t.oldest_placed_at) : '–'),
      t.oldest_placed_at ? 'since its order was placed' : 'nothing waits');
    const rate = t.backorder_rate_percent;
    setKpi('kpi-backorder-rate', board.rates ? fmtPct(rate) : null, windowText,
      rate === null ? '' : rate > 20 ? 'bad' : rate > 5 ? 'warn' : 'ok');
    const fill = t.fill_rate_percent;
    setKpi('kpi-fill-rate', board.rates ? fmtPct(fill) : null, windowText,
      fill === null ? '' : fill < 80 ? 'bad' : fill < 95 ? 'warn' : 'ok');
    const units = t.unsourced_units;
    setKpi('kpi-unsourced', known(t.unsourced_skus, fmtInt(t.unsourced_skus)),
      t.unsourced_skus ? `${fmtInt(units)} unit${units === 1 ? '' : 's'} wait with no date` : 'every waiting SKU has one',
      t.unsourced_skus ? 'bad' : 'ok');
    const failures = board.failures;
    setKpi('kpi-failures', known(t.failed_notifications, `${fmtInt(t.failed_notifications)}${failures && failures.more ? '+' : ''}`),
      'given up after retries', t.failed_notifications ? 'bad' : 'ok');
    setKpi('kpi-dead-letters', known(t.dead_letters, fmtInt(t.dead_letters)), 'on the .dlq topics', t.dead_letters ? 'bad' : 'ok');
  }

  function etaCell(eta, missing, tone) {
    if (!eta) return el('td', { 'data-col': 'eta', class: `no-eta ${tone || ''}` }, missing || 'no date');
    const days = daysFromToday(eta);
    return el('td', { 'data-col': 'eta', 'data-eta': eta, title: eta },
      fmtDate(eta), el('span', { class: 'muted' }, days <= 0 ? ' today' : ` +${days}d`));
  }

  function num(col, value, extraClass) {
    return el('td', { 'data-col': col, 'data-value': value, class: `num ${extraClass || ''}` }, fmtInt(value));
  }

  /* A PO id without the "PO-<sku>-" its SKU's rows already say, when it has that form. */
  function shortPo(poId, sku) {
    const prefix = `PO-${sku}-`;
    return poId && poId.startsWith(prefix) ? `…${poId.slice(prefix.length - 1)}` : poId;
  }

  function renderSkus(rows, selected) {
    const table = $('#sku-table');
    const maxWaiting = Math.max(1, ...rows.map((r) => r.waiting_units));
    fillTable(table, rows.map((row) => {
      // Procurement's figures of a row: while it does not answer, the last ones known, marked stale.
      const lastOf = state.last[`row:${row.sku}`];
      const stale = row.on_order === null && lastOf !== undefined;
      const r = stale ? { ...row, on_order: lastOf.on_order, open_purchase_orders: lastOf.open_purchase_orders, next_eta: lastOf.next_eta } : row;
      if (row.on_order !== null) state.last[`row:${row.sku}`] = row;
      const onOrder = el('td', { 'data-col': 'on_order', 'data-value': r.on_order, class: 'num' }, fmtInt(r.on_order));
      if (r.open_purchase_orders) {
        onOrder.append(el('span', { class: 'muted', 'data-col': 'open_purchase_orders', 'data-value': r.open_purchase_orders },
          ` · ${r.open_purchase_orders} PO${r.open_purchase_orders === 1 ? '' : 's'}`));
      }
      const tr = el('tr', { 'data-sku': r.sku, class: r.sku === selected ? 'selected' : '', tabindex: 0 },
        el('td', { 'data-col': 'sku', class: 'sku-name' }, r.sku),
        el('td', { 'data-col': 'waiting_units', 'data-value': r.waiting_units, class: 'num strong' },
          el('span', { class: 'inline-bar', vars: { '--w': `${((r.waiting_units / maxWaiting) * 100).toFixed(1)}%` } }),
          el('span', { class: 'figure' }, fmtInt(r.waiting_units))),
        num('waiting_lines', r.waiting_lines),
        num('available', r.available, r.available === 0 ? 'zero' : ''),
        onOrder,
        r.sourced ? etaCell(r.next_eta, r.on_order === null ? '–' : 'no PO yet') : etaCell(null, 'no supplier', 'bad-text'));
      if (stale) {
        for (const cell of tr.querySelectorAll('[data-col="on_order"], [data-col="eta"]')) {
          cell.classList.add('stale-cell');
          cell.title = 'procurement does not answer: the last figures it gave';
        }
      }
      const choose = () => { state.sku = r.sku; refresh(); };
      tr.addEventListener('click', choose);
      tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') choose(); });
      return tr;
    }));
  }

  function rateSeries(points, bucket) {
    const labels = points.map((p) => {
      const d = new Date(p.start);
      return bucket === 'day'
        ? d.toLocaleDateString('en-GB', { day: 'numeric', month: 'short', timeZone: 'UTC' })
        : d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
    });
    return {
      labels,
      starts: points.map((p) => p.start),
      series: [
        { key: 'backorder', name: 'Backorder rate', values: points.map((p) => p.backorder_rate_percent) },
        { key: 'fill', name: 'Fill rate', values: points.map((p) => p.fill_rate_percent) },
      ],
      volume: { name: 'Units ordered', values: points.map((p) => p.ordered_units) },
    };
  }

  /* A sub-block of the SKU panel: this round's figures, or the last ones of the same SKU, marked stale. */
  function block(name, sku, value, blockId) {
    const key = `${name}:${sku}`;
    const wrapper = document.getElementById(blockId);
    const note = wrapper.querySelector('.stale-note');
    if (value !== null && value !== undefined) {
      state.last[key] = value;
      delete state.staleSince[key];
      wrapper.classList.remove('stale');
      note.textContent = '';
      return value;
    }
    if (!state.staleSince[key]) state.staleSince[key] = new Date();
    wrapper.classList.add('stale');
    note.textContent = state.last[key] ? ` · stale since ${fmtClock(state.staleSince[key])}` : ' · no answer';
    return state.last[key] || null;
  }

  function renderDetail(detail) {
    const sku = detail.sku;
    $('#detail-sku').textContent = sku;
    const figures = [
      ['Waiting', detail.waiting_units], ['Lines', detail.waiting_lines], ['On hand', detail.on_hand],
      ['Available', detail.available], ['On order', detail.on_order],
    ];
    $('#detail-figures').replaceChildren(...figures.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, fmtInt(v))]));

    const queue = block('queue', sku, detail.queue, 'queue-block') || [];
    $('#queue-note').textContent = detail.waiting_lines > queue.length ? `· first ${queue.length} of ${fmtInt(detail.waiting_lines)}` : '';
    fillTable($('#queue-table'), queue.map((q) => el('tr', { 'data-order': q.order_id, 'data-line': q.line_id },
      num('position', q.position, 'muted'),
      el('td', { 'data-col': 'order', class: 'mono' }, q.order_id, el('span', { class: 'muted' }, ` /${q.line_id}`)),
      num('quantity', q.quantity, 'strong'),
      el('td', { 'data-col': 'waited' }, fmtWait(q.waited_days)),
      etaCell(q.eta, q.eta_reason || 'no date'),
      el('td', { 'data-col': 'po', class: 'mono muted', title: q.po_id || '' }, shortPo(q.po_id, sku) || '–'))));

    const pos = block('pos', sku, detail.purchase_orders, 'po-block') || [];
    fillTable($('#po-table'), pos.map((po) => el('tr', { 'data-po': po.po_id },
      el('td', { 'data-col': 'po', class: 'mono', title: po.po_id }, po.po_id),
      el('td', { 'data-col': 'supplier' }, po.supplier_id),
      el('td', { 'data-col': 'outstanding', 'data-value': po.outstanding, class: 'num strong', title: `${po.quantity} ordered` },
        fmtInt(po.outstanding), el('span', { class: 'muted' }, ` / ${fmtInt(po.quantity)}`)),
      etaCell(po.due_date || po.expected_arrival))));

    const rates = block('rates', sku, detail.rates, 'sku-rates-block');
    if (rates) {
      charts.lines($('#sku-rates-chart'), { ...rateSeries(rates.points, rates.bucket), height: 180, title: `Rates of ${sku}` });
    } else {
      charts.empty($('#sku-rates-chart'), 'the order service did not answer');
    }
  }

  function renderNoDetail() {
    const panel = document.getElementById('detail-panel');
    panel.classList.remove('stale');
    panel.querySelector('.stale-note').textContent = 'nothing waits: no SKU to show';
    $('#detail-sku').textContent = '–';
    $('#detail-figures').replaceChildren();
    $('#queue-note').textContent = '';
    fillTable($('#queue-table'), []);
    fillTable($('#po-table'), []);
    charts.empty($('#sku-rates-chart'), 'choose a SKU with lines waiting');
  }

  function renderRates(rates) {
    $('#rates-window').textContent = rates.bucket === 'day' ? '· last 30 days, by day of placement' : '· last 24 h, by hour of placement';
    charts.lines($('#rates-chart'), { ...rateSeries(rates.points, rates.bucket), height: 240, title: 'Backorder and fill rate' });
  }

  function renderAgeing(ageing) {
    const tone = (b) => (b.lower_hours >= 168 ? 'tone-bad' : b.lower_hours >= 24 ? 'tone-warn' : 'tone-fresh');
    charts.bars($('#ageing-chart'), {
      bars: ageing.buckets.map((b) => ({
        key: b.bucket, label: b.bucket, value: b.lines, lines: b.lines, units: b.waiting_units,
        sub: `${fmtInt(b.waiting_units)} u`,
      })),
      tone: (bar, i) => tone(ageing.buckets[i]),
      unit: 'lines',
      height: 230,
      title: 'Waiting lines by age',
    });
  }

  function renderDeadLetters(counts, prefix) {
    $('#dlq-prefix').textContent = prefix ? `· ${prefix}*` : '';
    const max = Math.max(1, ...counts.map((c) => c.messages));
    fillTable($('#dlq-table'), counts.map((c) => {
      const shown = prefix && c.dead_letter_topic.startsWith(prefix) ? c.dead_letter_topic.slice(prefix.length) : c.dead_letter_topic;
      return el('tr', { 'data-topic': c.topic, class: c.messages ? 'has-dead' : '' },
        el('td', { 'data-col': 'topic', class: 'mono', title: c.dead_letter_topic }, shown,
          c.exists ? null : el('span', { class: 'tag' }, 'not created')),
        num('messages', c.messages, c.messages ? 'strong bad-text' : 'muted'),
        el('td', { class: 'bar-col' }, el('span', { class: 'track' },
          el('span', { class: 'meter', vars: { '--w': `${((c.messages / max) * 100).toFixed(1)}%` } }))));
    }));
  }

  function renderFailures(failures) {
    $('#failures-count').textContent = `· ${fmtInt(failures.count)}${failures.more ? '+' : ''}`;
    fillTable($('#failures-table'), failures.recent.map((f) => el('tr', { 'data-notification': f.notification_id, 'data-order': f.order_id || '' },
      el('td', { 'data-col': 'when', title: f.updated_at }, `${fmtSince(f.updated_at)} ago`),
      el('td', { 'data-col': 'kind' }, el('span', { class: 'tag' }, f.kind)),
      el('td', { 'data-col': 'order', class: 'mono' }, f.order_id || '–'),
      el('td', { 'data-col': 'sku', class: 'mono' }, f.sku || '–'),
      el('td', { 'data-col': 'attempts', class: 'num' }, f.attempts),
      el('td', { 'data-col': 'error', class: 'error-text', title: f.last_error || '' }, f.last_error || '–'))));
  }

  function render(board) {
    state.board = board;
    showBoard();
    renderSources(board.sources);
    renderKpis(board);
    const skus = section('skus', board.skus, 'skus-panel');
    // No SKU to show because nothing waits (inventory answered): not a source that is down.
    const nothingWaits = !board.selected && Array.isArray(board.skus) && board.skus.length === 0 && !state.sku;
    const detail = nothingWaits ? null : section('selected', board.selected, 'detail-panel');
    if (skus) renderSkus(skus, detail ? detail.sku : state.sku);
    if (detail) renderDetail(detail);
    if (nothingWaits) renderNoDetail();
    const rates = section('rates', board.rates, 'rates-panel');
    if (rates) renderRates(rates);
    const ageing = section('ageing', board.ageing, 'ageing-panel');
    if (ageing) renderAgeing(ageing);
    const dead = section('dead_letters', board.dead_letters, 'dlq-panel');
    if (dead) renderDeadLetters(dead, board.topic_prefix);
    const failures = section('failures', board.failures, 'failures-panel');
    if (failures) renderFailures(failures);
    const at = new Date(board.generated_at);
    setLastUpdate(`updated ${fmtClock(at)} · every ${refreshSeconds} s`);
    body.dataset.updatedAt = board.generated_at;
    const live = $('#live');
    live.classList.remove('pulse');
    void live.offsetWidth; // restart the animation
    live.classList.add('pulse');
  }

  // --- the refresh loop ------------------------------------------------------------------------------

  function query() {
    const params = new URLSearchParams({ top: String(state.top), bucket: state.bucket });
    if (state.sku) params.set('sku', state.sku);
    return params;
  }

  async function refresh() {
    clearTimeout(state.timer);
    const bearer = token();
    if (!bearer) {
      showTokenNeeded();
      return;
    }
    if (state.inFlight) {
      state.again = true; // a choice made meanwhile (a SKU, the top N) is fetched right after
      return;
    }
    state.inFlight = true;
    state.again = false;
    try {
      const response = await fetch(`/api/board?${query()}`, {
        headers: { Authorization: `Bearer ${bearer}`, Accept: 'application/json' },
        cache: 'no-store',
      });
      if (response.status === 401 || response.status === 403) {
        const detail = await response.json().then((b) => b.detail).catch(() => response.statusText);
        if (response.status === 401) sessionStorage.removeItem(TOKEN_KEY);
        showTokenNeeded(`The console refused the token: ${detail}`);
        return;
      }
      if (!response.ok) throw new Error(`the console answered ${response.status}`);
      render(await response.json());
      body.classList.remove('offline');
      history.replaceState(null, '', `?${query()}`);
    } catch (error) {
      const banner = $('#banner');
      banner.hidden = false;
      banner.replaceChildren(el('strong', {}, 'The console does not answer'),
        ` — ${error.message}; the figures shown are from ${state.board ? fmtClock(new Date(state.board.generated_at)) : 'nowhere yet'}.`);
      setLastUpdate(`update failed ${fmtClock(new Date())}`);
      body.classList.add('offline');
    } finally {
      state.inFlight = false;
      if (!body.classList.contains('locked') && (!state.paused || state.again)) {
        state.timer = setTimeout(refresh, state.again ? 0 : refreshSeconds * 1000);
      }
    }
  }

  function restoreControls() {
    const params = new URLSearchParams(window.location.search);
    const top = Number(params.get('top'));
    if ([5, 10, 20, 50].includes(top)) state.top = top;
    if (['hour', 'day'].includes(params.get('bucket'))) state.bucket = params.get('bucket');
    if (params.get('sku')) state.sku = params.get('sku');
    $('#top').value = String(state.top);
    $('#bucket').value = state.bucket;
  }

  function start() {
    takeTokenFromFragment();
    restoreControls();
    $('#top').addEventListener('change', (e) => { state.top = Number(e.target.value); refresh(); });
    $('#bucket').addEventListener('change', (e) => { state.bucket = e.target.value; refresh(); });
    $('#pause').addEventListener('click', (e) => {
      state.paused = !state.paused;
      e.target.setAttribute('aria-pressed', String(state.paused));
      e.target.textContent = state.paused ? 'Resume' : 'Pause';
      body.classList.toggle('paused', state.paused);
      if (!state.paused) refresh(); else clearTimeout(state.timer);
    });
    $('#token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const value = $('#token-input').value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      $('#token-input').value = '';
      refresh();
    });
    window.addEventListener('hashchange', () => { takeTokenFromFragment(); refresh(); });
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (state.board) render(state.board); }, 150);
    });
    refresh();
  }

  start();
})();
