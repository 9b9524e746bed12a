// The fleet control panel: fetches /api/fleet (a fleet.Snapshot) every few
// seconds and renders it. Every value comes from S3 (node names, reasons,
// file paths), so the page only ever puts text into the DOM through
// textContent and attributes, never HTML.
'use strict';
(function () {
  const palette = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#0891b2', '#db2777', '#65a30d', '#dc2626'];
  let refresh = 5;
  let selected = null;
  let loads = 0;
  let azColour = new Map();

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-') || k === 'title' || k === 'colspan') e.setAttribute(k, String(v));
      else if (k === 'style') Object.assign(e.style, v);
      else if (k === 'onclick') e.addEventListener('click', v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function age(seconds) {
    if (seconds === undefined || seconds === null || seconds < 0) return '—';
    const s = Math.floor(seconds);
    if (s < 120) return s + 's';
    if (s < 7200) return Math.floor(s / 60) + 'm';
    if (s < 172800) return Math.floor(s / 3600) + 'h';
    return Math.floor(s / 86400) + 'd';
  }
  function since(genAt, t) {
    if (!t) return null;
    return (Date.parse(genAt) - Date.parse(t)) / 1000;
  }

  function colours(s) {
    const azs = [...s.summary.azs];
    for (const n of s.nodes) if (n.az && !azs.includes(n.az)) azs.push(n.az);
    azColour = new Map();
    azs.sort().forEach((az, i) => azColour.set(az, palette[i % palette.length]));
  }
  function azChip(az) {
    if (!az) return '—';
    return el('span', { class: 'az', style: { background: azColour.get(az) || '#6b7280' } }, az);
  }
  function badge(flag) { return el('span', { class: 'badge b-' + flag }, flag); }

  function headline(s) {
    const h = document.getElementById('headline');
    h.replaceChildren('serial ', el('b', {}, s.serial), ' · ', s.topology, ' · reports ', s.reports,
      ' · loaded ', el('span', { id: 'loaded-at', title: s.generated_at }, new Date(s.generated_at).toLocaleTimeString()));
    const v = document.getElementById('verdict');
    const sum = s.summary;
    v.className = 'verdict ' + (sum.converged ? 'ok' : 'no');
    v.textContent = sum.converged ? 'converged on serial ' + s.serial
      : (sum.live ? (sum.live - (sum.laggards || []).length) + ' of ' + sum.live + ' live nodes converged' : 'no live node reports');
  }

  function cards(s) {
    const sum = s.summary;
    const card = (n, label, kind) => el('div', { class: 'card ' + (kind || ''), 'data-card': label }, el('div', { class: 'n' }, n), el('div', { class: 'l' }, label));
    document.getElementById('summary').replaceChildren(
      card(sum.live, 'live nodes'),
      card(sum.ready + '/' + sum.live, 'ready', sum.ready < sum.live ? 'bad' : 'good'),
      card(Math.round(100 * sum.current_share) + '%', 'on serial ' + s.serial, sum.current_share < 1 ? 'warn' : 'good'),
      card(sum.behind, 'behind', sum.behind ? 'warn' : ''),
      card(sum.failing, 'failing', sum.failing ? 'bad' : ''),
      card(sum.stale, 'stale', sum.stale ? 'warn' : ''),
      card(sum.missing, 'missing', sum.missing ? 'warn' : ''),
      card(sum.terminated, 'terminated'),
      card(sum.bad_reports, 'bad reports', sum.bad_reports ? 'bad' : ''),
      card((sum.imbalanced || []).length, 'imbalanced roles', (sum.imbalanced || []).length ? 'bad' : 'good'));
  }

  function matrix(s) {
    const sum = s.summary;
    const head = el('tr', {}, el('th', {}, 'role'),
      ...sum.azs.map(az => el('th', { class: 'azh', style: { background: azColour.get(az) } }, az)),
      el('th', { class: 'num' }, 'total'), el('th', {}, 'balance'));
    const rows = sum.roles.map(r => {
      const counts = sum.azs.map(az => r.per_az[az] || 0);
      const lo = Math.min(...counts);
      return el('tr', { class: r.imbalanced ? 'imbalanced' : '', 'data-role': r.role, 'data-imbalanced': String(r.imbalanced) },
        el('td', {}, r.role || '—'),
        ...sum.azs.map((az, i) => el('td', {
          class: 'cell' + (counts[i] === 0 ? ' zero' : '') + (r.imbalanced && counts[i] === lo ? ' low' : ''),
          'data-az': az, title: (r.ready[az] || 0) + ' of ' + counts[i] + ' ready'
        }, (r.ready[az] || 0) + '/' + counts[i])),
        el('td', { class: 'num' }, r.total),
        el('td', {}, r.imbalanced ? el('span', {}, badge('imbalanced'), r.note) : badge('ok')));
    });
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: sum.azs.length + 3 }, 'no live node reports')));
    document.getElementById('matrix').replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
  }

  function releases(n) {
    const r = n.report;
    if (!r || !r.releases) return '—';
    const out = Object.entries(r.releases).map(([p, id]) => p + '=' + id);
    return out.length ? out.join(', ') : '—';
  }

  function nodes(s) {
    const head = el('tr', {}, ...['node', 'instance', 'role', 'products', 'AZ', 'IP', 'serial', 'release', 'ready',
      'last apply', 'reported', 'agent', 'marks'].map(h => el('th', {}, h)));
    const q = (document.getElementById('filter').value || '').trim().toLowerCase();
    const problemsOnly = document.getElementById('problems').checked;
    const shown = s.nodes.filter(n => (!problemsOnly || n.state !== 'ok') &&
      (!q || [n.name, n.instance_id, n.role, n.az, n.ip, n.group, n.state, ...(n.flags || []), ...(n.products || [])]
        .some(v => v && String(v).toLowerCase().includes(q))));
    document.getElementById('shown').textContent = shown.length === s.nodes.length ? s.nodes.length + ' nodes' : shown.length + ' of ' + s.nodes.length + ' nodes';
    const rows = shown.map(n => {
      const r = n.report;
      const la = r && r.last_apply;
      const ready = r ? (r.ready ? el('span', { class: 'yes' }, 'ready') : el('span', { class: 'no', title: r.reason }, 'not ready')) : '—';
      const serial = r ? el('span', { class: r.serial_applied < s.serial ? 'no' : '' }, r.serial_applied + ' / ' + s.serial) : '— / ' + s.serial;
      const tr = el('tr', {
        'data-id': n.id, 'data-state': n.state, 'data-ready': String(!!(r && r.ready)), 'data-live': String(n.live),
        class: (n.id === selected ? 'selected ' : '') + (n.live ? '' : 'dim'),
        onclick: () => {
          selected = (selected === n.id ? null : n.id);
          render(last);
          if (selected) document.getElementById('detail').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
        }
      },
        el('td', {}, n.name || el('span', { class: 'muted', title: 'not listed in the topology; found through its Auto Scaling group' }, n.group ? 'group ' + n.group : '—')),
        el('td', { class: 'mono' }, n.instance_id || '—'), el('td', {}, n.role || '—'),
        el('td', {}, (n.products || []).join(', ') || '—'), el('td', {}, azChip(n.az)), el('td', { class: 'mono' }, n.ip || '—'),
        el('td', {}, serial), el('td', { class: 'clip', title: releases(n) }, releases(n)), el('td', {}, ready),
        el('td', {}, la ? la.result + ' ' + age(since(s.generated_at, la.at)) + ' ago' : '—'),
        el('td', {}, n.age_seconds >= 0 ? age(n.age_seconds) + ' ago' : '—'),
        el('td', { class: 'clip', title: (r && r.agent_version) || '' }, (r && r.agent_version) || '—'),
        el('td', {}, ...(n.flags && n.flags.length ? n.flags.map(badge) : [badge('ok')])));
      return tr;
    });
    document.getElementById('nodes').replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
  }

  function detail(s) {
    const sec = document.getElementById('detail');
    const n = s.nodes.find(x => x.id === selected);
    if (!n) { sec.hidden = true; sec.replaceChildren(); return; }
    const r = n.report;
    const dl = el('dl', { class: 'detail-grid' });
    const row = (k, v) => { if (v !== undefined && v !== null && v !== '') dl.append(el('dt', {}, k), el('dd', {}, v)); };
    row('node', n.name || '(not listed; found through its group)');
    row('instance', n.instance_id);
    row('role / products', (n.role || '—') + ' / ' + ((n.products || []).join(', ') || '—'));
    row('AZ / IP / group', (n.az || '—') + ' / ' + (n.ip || '—') + ' / ' + (n.group || '—'));
    row('marks', (n.flags || []).join(', ') || 'ok');
    const parts = [el('h2', {}, 'Node ', n.name || n.id), dl];
    if (!r) {
      row('report', 'none under ' + s.reports);
      sec.replaceChildren(...parts); sec.hidden = false; return;
    }
    row('ready', (r.ready ? 'yes' : 'no') + ' — ' + r.reason);
    row('serial applied / seen / current', r.serial_applied + ' / ' + r.serial_seen + ' / ' + s.serial);
    row('releases', releases(n));
    row('last error', r.last_error);
    row('agent', r.agent_version + ', started ' + r.boot_time);
    row('last event', r.event + ' at ' + r.reported_at + ' (written ' + age(n.age_seconds) + ' ago)');
    const la = r.last_apply;
    if (la) {
      parts.push(el('h3', {}, 'Last apply: ', la.result, ', serial ', la.serial || '—', ', ', la.at, ', ', la.duration_ms, ' ms'));
      if (la.error) parts.push(el('div', { class: 'mono' }, la.error));
      const changes = la.changes || [];
      parts.push(el('table', { 'data-changes': String(la.changed_files) },
        el('thead', {}, el('tr', {}, el('th', {}, 'changed file (' + la.changed_files + ')'), el('th', {}, 'reason'))),
        el('tbody', {}, ...changes.map(c => el('tr', {}, el('td', { class: 'mono' }, c.path), el('td', {}, c.reason))),
          la.changed_files > changes.length ? el('tr', {}, el('td', { colspan: 2 }, '… and ' + (la.changed_files - changes.length) + ' more')) : null,
          !la.changed_files ? el('tr', {}, el('td', { colspan: 2 }, 'no file changed')) : null)));
      if (la.failed_smoke && la.failed_smoke.length) parts.push(el('div', { class: 'no' }, 'failed smoke checks: ', la.failed_smoke.join(', ')));
    }
    const smoke = r.smoke || [];
    parts.push(el('h3', {}, 'Smoke checks'));
    parts.push(el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'check'), el('th', {}, 'result'), el('th', {}, 'ms'), el('th', {}, 'error'))),
      el('tbody', {}, ...smoke.map(c => el('tr', {}, el('td', {}, c.name), el('td', {}, c.ok ? el('span', { class: 'yes' }, 'ok') : el('span', { class: 'no' }, 'failed')),
        el('td', { class: 'num' }, c.duration_ms), el('td', { class: 'mono' }, c.error || ''))),
        smoke.length ? null : el('tr', {}, el('td', { colspan: 4 }, 'none')))));
    sec.replaceChildren(...parts);
    sec.hidden = false;
  }

  function bad(s) {
    const sec = document.getElementById('bad');
    const list = s.bad_reports || [];
    sec.hidden = list.length === 0;
    document.getElementById('bad-table').replaceChildren(
      el('thead', {}, el('tr', {}, el('th', {}, 'key'), el('th', {}, 'problem'), el('th', {}, 'detail'))),
      el('tbody', {}, ...list.map(b => el('tr', { 'data-bad': b.key, 'data-kind': b.kind },
        el('td', { class: 'mono' }, b.key), el('td', {}, badge(b.kind)), el('td', { class: 'mono' }, b.error)))));
  }

  function rollout(s) {
    const sec = document.getElementById('rollout');
    const r = s.rollout;
    sec.hidden = !r && !s.rollout_error;
    if (!r) {
      sec.replaceChildren(el('h2', {}, 'Rollout'), el('div', { class: 'error' }, 'rollout object unreadable: ' + (s.rollout_error || '')));
      return;
    }
    const head = el('h2', {}, 'Rollout of serial ' + r.serial + ' ',
      el('span', { class: 'badge b-rollout-' + r.state, 'data-rollout-state': r.state }, r.state),
      el('span', { class: 'hint' }, 'after serial ' + r.previous + ' · wave ' + (r.wave + 1) + ' of ' + r.waves.length +
        ' · bake ' + age(r.bake_seconds) + ' · max_failed ' + r.max_failed));
    const rows = (r.tally || []).map((t, i) => el('tr', { 'data-wave': i + 1, class: i === r.wave && r.state === 'rolling' ? 'current' : '' },
      el('td', {}, 'wave ' + (i + 1)), el('td', {}, t.share + '%'), el('td', {}, t.nodes), el('td', {}, t.done),
      el('td', {}, t.pending), el('td', { class: t.failed ? 'bad' : '' }, t.failed)));
    const table = el('table', {}, el('thead', {}, el('tr', {}, ...['wave', 'share', 'nodes', 'done', 'pending', 'failed'].map(h => el('th', {}, h)))),
      el('tbody', {}, ...rows));
    const notes = [];
    if (r.why) notes.push(el('div', { class: 'why', 'data-rollout-why': '' }, r.why));
    for (const f of r.failed || []) notes.push(el('div', { class: 'mono bad' }, (f.name || f.instance_id) + ' (wave ' + (f.wave + 1) + '): ' + f.error));
    if (r.unattended) notes.push(el('div', { class: 'error', 'data-unattended': '' }, 'unattended: no operator command has followed this rollout for ' +
      age(r.heartbeat_age_seconds) + '; it stays at wave ' + (r.wave + 1) + ' until `nodeagent rollout resume`'));
    sec.replaceChildren(head, table, ...notes);
  }

  let last = null;
  function render(s) {
    if (!s) return;
    last = s;
    colours(s);
    headline(s);
    cards(s);
    rollout(s);
    matrix(s);
    nodes(s);
    detail(s);
    bad(s);
  }

  function showError(msg) {
    const e = document.getElementById('error');
    e.hidden = !msg;
    e.textContent = msg || '';
  }

  async function tick() {
    try {
      const resp = await fetch('/api/fleet', { cache: 'no-store' });
      refresh = Math.max(1, parseInt(resp.headers.get('X-Nodeagent-Refresh') || '5', 10) || 5);
      document.getElementById('refresh').textContent = String(refresh);
      const loadErr = resp.headers.get('X-Nodeagent-Load-Error');
      if (!resp.ok) {
        showError(await resp.text());
      } else {
        const data = await resp.json();
        const t0 = performance.now();
        render(data);
        document.body.setAttribute('data-render-ms', String(Math.round(performance.now() - t0)));
        showError(loadErr ? 'the last reload failed (showing the previous data): ' + loadErr : '');
        loads++;
        document.body.setAttribute('data-loads', String(loads));
      }
    } catch (err) {
      showError('cannot reach fleet serve: ' + err);
    }
    setTimeout(tick, refresh * 1000);
  }
  document.getElementById('filter').addEventListener('input', () => render(last));
  document.getElementById('problems').addEventListener('change', () => render(last));
  tick();
})();
