/* Small SVG charts of our own for the operations board: a line chart of percentages over time and a
   bar chart. No dependencies; every element carries data-* attributes with the figures it draws, so
   tests (and people with the inspector) can read them. */
(function (global) {
  'use strict';

  const SVG = 'http://www.w3.org/2000/svg';

  function node(tag, attrs, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null) el.setAttribute(key, String(value));
    }
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function frame(container, height) {
    const width = Math.max(260, Math.floor(container.clientWidth || 520));
    const svg = node('svg', {
      width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'chart-svg',
    });
    container.replaceChildren(svg);
    return { svg, width, height };
  }

  function empty(container, message) {
    const p = document.createElement('p');
    p.className = 'chart-empty';
    p.textContent = message;
    container.replaceChildren(p);
  }

  /* Percent series over the same labels, over faint bars of a volume (its own scale, on the right).
     options: labels (x), starts (ISO per point, for data-start), series [{key, name, values}] (colours
     by CSS: .series-<key>, .swatch-<key>), volume {name, values} (optional), height, title, emptyText.
     A null value leaves a gap in its line. */
  function lines(container, options) {
    const { labels, series, starts, volume } = options;
    const height = options.height || 220;
    const { svg, width } = frame(container, height);
    svg.setAttribute('aria-label', options.title || 'chart');
    const pad = { left: 42, right: volume ? 44 : 14, top: 30, bottom: 26 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const n = Math.max(labels.length, 1);
    const slot = plotW / n;
    const x = (i) => pad.left + slot * i + slot / 2;
    const y = (v) => pad.top + plotH - (v / 100) * plotH;

    for (const tick of [0, 25, 50, 75, 100]) {
      svg.append(node('line', { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick), class: 'grid' }));
      svg.append(node('text', { x: pad.left - 6, y: y(tick) + 4, class: 'axis', 'text-anchor': 'end' }, `${tick}%`));
    }
    const volumeMax = volume ? Math.max(0, ...volume.values) : 0;
    if (volumeMax > 0) {
      const max = volumeMax;
      const group = node('g', { class: 'volume', 'data-series': 'volume' });
      volume.values.forEach((v, i) => {
        if (!v) return;
        const h = (v / max) * plotH;
        const bar = node('rect', {
          x: (x(i) - slot * 0.35).toFixed(1), y: (pad.top + plotH - h).toFixed(1),
          width: (slot * 0.7).toFixed(1), height: h.toFixed(1), rx: 2, class: 'volume-bar', 'data-value': v,
        });
        bar.append(node('title', {}, `${volume.name} ${labels[i]}: ${v}`));
        group.append(bar);
      });
      svg.append(group);
      svg.append(node('text', { x: width - pad.right + 6, y: pad.top + 4, class: 'axis' }, String(max)));
      svg.append(node('text', { x: width - pad.right + 6, y: y(0) + 4, class: 'axis' }, '0'));
    }
    const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(plotW / 58))));
    labels.forEach((label, i) => {
      if ((n - 1 - i) % every === 0) {
        svg.append(node('text', { x: x(i), y: height - 8, class: 'axis', 'text-anchor': 'middle' }, label));
      }
    });

    for (const s of series) {
      const group = node('g', { class: `series series-${s.key}`, 'data-series': s.key });
      let run = [];
      const flush = () => {
        if (run.length > 1) group.append(node('polyline', { points: run.join(' '), class: 'line' }));
        run = [];
      };
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) { flush(); return; }
        run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      });
      flush();
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) return;
        const dot = node('circle', {
          cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 3.6, class: 'dot',
          'data-series': s.key, 'data-start': starts ? starts[i] : undefined, 'data-value': v,
        });
        dot.append(node('title', {}, `${s.name} ${labels[i]}: ${v}%`));
        group.append(dot);
      });
      svg.append(group);
    }

    const legend = node('g', { class: 'legend' });
    let lx = pad.left;
    const entries = [...series.map((s) => [`swatch swatch-${s.key}`, s.name]), ...(volume ? [['swatch swatch-volume', volume.name]] : [])];
    for (const [cls, name] of entries) {
      legend.append(node('rect', { x: lx, y: 4, width: 10, height: 10, rx: 2, class: cls }));
      legend.append(node('text', { x: lx + 15, y: 13, class: 'legend-text' }, name));
      lx += 15 + name.length * 6.6 + 20;
    }
    svg.append(legend);
    if (!series.some((s) => s.values.some((v) => v !== null && v !== undefined))) {
      svg.append(node('text', {
        x: pad.left + plotW / 2, y: pad.top + plotH / 2, class: 'chart-note', 'text-anchor': 'middle',
      }, options.emptyText || 'no decided order lines in this window'));
    }
  }

  /* Vertical bars. options: bars [{key, label, value, sub, lines, units}], tone(bar, i) -> a CSS class,
     height, unit, title. */
  function bars(container, options) {
    const height = options.height || 220;
    const { svg, width } = frame(container, height);
    svg.setAttribute('aria-label', options.title || 'chart');
    const pad = { left: 14, right: 14, top: 22, bottom: 40 };
    const list = options.bars;
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const max = Math.max(1, ...list.map((b) => b.value));
    const slot = plotW / Math.max(list.length, 1);
    const barW = Math.min(64, slot * 0.66);
    svg.append(node('line', {
      x1: pad.left, x2: width - pad.right, y1: pad.top + plotH, y2: pad.top + plotH, class: 'baseline',
    }));
    list.forEach((b, i) => {
      const h = (b.value / max) * plotH;
      const cx = pad.left + slot * i + slot / 2;
      const rect = node('rect', {
        x: (cx - barW / 2).toFixed(1), y: (pad.top + plotH - h).toFixed(1), width: barW.toFixed(1),
        height: Math.max(h, b.value ? 1.5 : 0).toFixed(1), rx: 3,
        class: `bar ${options.tone ? options.tone(b, i) : ''}`, 'data-bucket': b.key, 'data-value': b.value,
        'data-lines': b.lines, 'data-units': b.units,
      });
      rect.append(node('title', {}, `${b.label}: ${b.value} ${options.unit || ''}${b.sub ? ` (${b.sub})` : ''}`));
      svg.append(rect);
      svg.append(node('text', {
        x: cx, y: pad.top + plotH - h - 6, class: 'bar-value', 'text-anchor': 'middle',
      }, String(b.value)));
      svg.append(node('text', { x: cx, y: height - 22, class: 'axis', 'text-anchor': 'middle' }, b.label));
      if (b.sub) {
        svg.append(node('text', { x: cx, y: height - 8, class: 'axis faint', 'text-anchor': 'middle' }, b.sub));
      }
    });
  }

  global.BoardCharts = { lines, bars, empty };
})(window);
