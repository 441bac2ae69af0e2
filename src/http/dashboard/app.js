// The troupe dashboard. It loads the current state with GETs, then keeps it current from
// the server-sent events at /api/events (docs/api.md). No framework and no build step:
// every element is made by el()/svgEl() and filled with textContent, so nothing the server
// sends is ever parsed as HTML, and nothing here needs an inline script or style.

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const SVG_NS = 'http://www.w3.org/2000/svg';

/** An HTML element. props: className, text, title, dataset, attrs, on: {event: handler}. */
function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  setProps(node, props);
  // append() turns strings into text nodes, never markup.
  for (const child of children) if (child != null && child !== false) node.append(child);
  return node;
}

/** An SVG element (they need their namespace); attrs are set as attributes. */
function svgEl(tag, attrs = {}, children = []) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) node.setAttribute(k, String(v));
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function setProps(node, { className, text, title, dataset, attrs, on } = {}) {
  if (className) node.className = className;
  if (text != null) node.textContent = String(text);
  if (title) node.title = String(title);
  if (dataset) for (const [k, v] of Object.entries(dataset)) if (v != null) node.dataset[k] = String(v);
  if (attrs) for (const [k, v] of Object.entries(attrs)) if (v != null && v !== false) node.setAttribute(k, v === true ? '' : String(v));
  if (on) for (const [k, fn] of Object.entries(on)) node.addEventListener(k, fn);
}

/** Runs fn once things go quiet for `ms`, but at least every `maxMs` while they don't. */
function debounce(fn, ms, maxMs = ms * 4) {
  let timer = null;
  let first = 0;
  return () => {
    const now = Date.now();
    if (!timer) first = now;
    clearTimeout(timer);
    const wait = Math.max(0, Math.min(ms, first + maxMs - now));
    timer = setTimeout(() => { timer = null; fn(); }, wait);
  };
}

/** Runs fn at most once per animation frame, however often it is asked for. */
function perFrame(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; fn(); });
  };
}

/** A CSS class fragment from a server string (a state, a source): letters, digits, - and _. */
const cls = (s) => String(s ?? '').replace(/[^a-zA-Z0-9_-]/g, '_');

const ms = (iso) => { const t = Date.parse(iso ?? ''); return Number.isNaN(t) ? null : t; };

// ---------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------

/** Dollars with 2 decimals, or 4 under a dollar where cents hide most of the story. */
function fmtDollars(d) {
  if (d == null || Number.isNaN(d)) return '—';
  return '$' + d.toFixed(Math.abs(d) < 1 ? 4 : 2);
}
const fmtCost = (micros) => fmtDollars((micros ?? 0) / 1e6);

function fmtCount(n) {
  n = Number(n) || 0;
  const abs = Math.abs(n);
  if (abs >= 1e9) return (n / 1e9).toFixed(abs >= 1e10 ? 0 : 1) + 'B';
  if (abs >= 1e6) return (n / 1e6).toFixed(abs >= 1e7 ? 0 : 1) + 'M';
  if (abs >= 1e3) return (n / 1e3).toFixed(abs >= 1e4 ? 0 : 1) + 'k';
  return String(Math.round(n));
}

/** 42s, 3m, 2h, 5d: the largest whole unit, as the tree has room for. */
function fmtAge(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 86400) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}

/** Local time of day, with the date when it was not today. */
function fmtTime(iso) {
  const t = ms(iso);
  if (t == null) return '';
  const d = new Date(t);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  if (d.toDateString() === new Date().toDateString()) return time;
  return d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + time;
}

const fmtFullTime = (iso) => { const t = ms(iso); return t == null ? '' : new Date(t).toLocaleString(); };

function preview(text, max) {
  const s = String(text ?? '');
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

function tokensOf(u) {
  if (!u) return 0;
  if (typeof u.tokens === 'number') return u.tokens;
  return (u.input_tokens || 0) + (u.output_tokens || 0) + (u.cache_creation_tokens || 0) + (u.cache_read_tokens || 0);
}

function tokenBreakdown(u) {
  return `${fmtCount(u.input_tokens)} in · ${fmtCount(u.output_tokens)} out · ` +
    `${fmtCount(u.cache_creation_tokens)} cache write · ${fmtCount(u.cache_read_tokens)} cache read`;
}

// ---------------------------------------------------------------------------------------
// Talking to the server
// ---------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}
/** Thrown after a 401: the login text is already showing, so callers say nothing more. */
class SessionGone extends Error {}

/** One REST call. Changes always carry a JSON body, as the server requires. */
async function api(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (method !== 'GET') {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body ?? {});
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(`could not reach troupe (${method} ${path}): ${e.message}`, 0);
  }
  if (res.status === 401) {
    showLogin();
    throw new SessionGone('signed out');
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: said below if it matters */ }
  if (!res.ok) {
    const said = data && typeof data.error === 'string' ? data.error : text.trim().slice(0, 300);
    throw new ApiError(said || `${method} ${path} answered ${res.status}`, res.status);
  }
  return data;
}

const instancePath = (id, rest = '') => `/api/instances/${enc(id)}${rest}`;

// ---------------------------------------------------------------------------------------
// The error banner and the login view
// ---------------------------------------------------------------------------------------

function showError(err) {
  if (err instanceof SessionGone) return;
  const text = err && err.message ? err.message : String(err);
  console.warn('troupe:', text);
  $('error-text').textContent = text;
  $('error').hidden = false;
}

/** For promises nobody awaits: their failure goes to the banner. */
const report = (promise) => promise.catch(showError);

let signedOut = false;

function showLogin() {
  if (signedOut) return;
  signedOut = true;
  if (conn.es) conn.es.close();
  clearTimeout(conn.timer);
  $('app').hidden = true;
  $('login').hidden = false;
  document.title = 'troupe: sign in';
}

// ---------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------

const ENDED = new Set(['terminated', 'failed']);
const RESUMABLE = new Set(['suspended', 'exited', 'failed']);
const INTERRUPTIBLE = new Set(['busy', 'waiting_permission', 'starting', 'idle']);
const isEnded = (inst) => ENDED.has(inst.state);

const zeroUsage = () => ({
  input_tokens: 0, output_tokens: 0, cache_creation_tokens: 0, cache_read_tokens: 0,
  cost_micros: 0, unpriced_calls: 0,
});

const state = {
  instances: new Map(), // id -> instance, with .usage
  selected: null,
  collapsed: new Set(), // tree nodes whose children are hidden
  showEnded: localStorage.getItem('troupe.showEnded') !== 'false',
};

// ---------------------------------------------------------------------------------------
// Instances: the tree and the header totals
// ---------------------------------------------------------------------------------------

async function loadInstances() {
  const data = await api('GET', '/api/instances?all=true');
  const seen = new Set();
  for (const inst of data.instances ?? []) {
    seen.add(inst.id);
    const cur = state.instances.get(inst.id);
    // The list is the truth about usage; an event newer than it keeps its state.
    if (cur && newer(cur, inst)) state.instances.set(inst.id, { ...inst, ...pickState(cur), usage: inst.usage ?? zeroUsage() });
    else state.instances.set(inst.id, { ...inst, usage: inst.usage ?? zeroUsage() });
  }
  renderInstances();
}

const pickState = (i) => ({ state: i.state, state_reason: i.state_reason, state_since: i.state_since, terminated_at: i.terminated_at });

/** True when a's state is later news than b's (state_since only moves on a real change). */
function newer(a, b) {
  return !!(a.state_since && b.state_since && a.state_since > b.state_since);
}

function upsertInstance(data) {
  const cur = state.instances.get(data.id);
  if (cur && newer(cur, data)) return; // an event older than what we know
  state.instances.set(data.id, { ...(cur ?? {}), ...data, usage: data.usage ?? cur?.usage ?? zeroUsage() });
  renderInstances();
}

const renderInstances = perFrame(() => {
  renderTree();
  renderTotals();
  renderDetailHead();
  if (perms.pending.size) renderPermissions(); // rows name their instance
});

function renderTotals() {
  let active = 0;
  const sum = zeroUsage();
  for (const inst of state.instances.values()) {
    if (!isEnded(inst)) active += 1;
    for (const k of Object.keys(sum)) sum[k] += Number(inst.usage?.[k]) || 0;
  }
  $('total-active').textContent = String(active);
  const cost = $('total-cost');
  cost.textContent = fmtCost(sum.cost_micros);
  cost.title = sum.unpriced_calls ? `${sum.unpriced_calls} calls to unpriced models are not in this figure` : '';
  const tokens = $('total-tokens');
  tokens.textContent = fmtCount(tokensOf(sum));
  tokens.title = tokenBreakdown(sum);
}

/** Children by parent id; an instance whose parent is unknown is a root. */
function childrenByParent() {
  const sorted = [...state.instances.values()].sort(
    (a, b) => (a.created_at ?? '').localeCompare(b.created_at ?? '') || a.id.localeCompare(b.id));
  const kids = new Map();
  for (const inst of sorted) {
    const key = inst.parent_id && state.instances.has(inst.parent_id) && inst.parent_id !== inst.id ? inst.parent_id : null;
    if (!kids.has(key)) kids.set(key, []);
    kids.get(key).push(inst);
  }
  return kids;
}

function renderTree() {
  const kids = childrenByParent();
  const ended = [...state.instances.values()].filter(isEnded).length;
  $('ended-count').textContent = ended ? `(${ended})` : '';

  // An ended parent still shows while something under it is live, so no child is orphaned.
  const shown = new Map();
  const visit = (inst, path) => {
    if (path.has(inst.id)) return false; // a cycle in parent_id: stop here
    path.add(inst.id);
    let any = state.showEnded || !isEnded(inst);
    for (const child of kids.get(inst.id) ?? []) if (visit(child, path)) any = true;
    path.delete(inst.id);
    shown.set(inst.id, any);
    return any;
  };
  const roots = kids.get(null) ?? [];
  for (const root of roots) visit(root, new Set());

  const build = (inst, path) => {
    path.add(inst.id);
    const children = (kids.get(inst.id) ?? []).filter((c) => shown.get(c.id) && !path.has(c.id));
    const node = el('div', { className: 'node' }, [instanceRow(inst, children.length)]);
    if (children.length && !state.collapsed.has(inst.id)) {
      node.append(el('div', { className: 'children' }, children.map((c) => build(c, path))));
    }
    path.delete(inst.id);
    return node;
  };

  const tree = $('tree');
  const visibleRoots = roots.filter((r) => shown.get(r.id));
  if (!visibleRoots.length) {
    const msg = state.instances.size
      ? 'Every instance has ended. Tick "show ended" to see them.'
      : 'No instances yet. Spawn one below, or from a session that has troupe.';
    tree.replaceChildren(el('p', { className: 'placeholder', text: msg }));
    return;
  }
  // Rows are made anew; keep the keyboard where it was.
  const focused = document.activeElement?.closest?.('[data-testid="instance-row"]')?.dataset.instanceId;
  tree.replaceChildren(...visibleRoots.map((r) => build(r, new Set())));
  if (focused) tree.querySelector(`[data-instance-id="${CSS.escape(focused)}"]`)?.focus();
}

function instanceRow(inst, childCount) {
  const ended = isEnded(inst);
  const collapsed = state.collapsed.has(inst.id);
  const caret = childCount
    ? el('button', {
      className: 'caret', text: collapsed ? '▸' : '▾', title: collapsed ? `show ${childCount} under it` : 'hide what is under it',
      attrs: { type: 'button', 'aria-expanded': String(!collapsed) },
      on: { click: (e) => { e.stopPropagation(); toggleCollapsed(inst.id); } },
    })
    : el('span', { className: 'caret none' });
  const u = inst.usage ?? zeroUsage();
  const costTitle = `${tokenBreakdown(u)}${u.unpriced_calls ? ` · ${u.unpriced_calls} unpriced calls` : ''}`;
  // In a fleet each row says which host runs it; on one host that would only be noise.
  const where = inst.host && fleetHosts() > 1 ? ` @ ${inst.host}` : '';
  const model = [inst.agent, inst.model].filter(Boolean).join('/') + where;
  const row = el('div', {
    className: `row${ended ? ' ended' : ''}${state.selected === inst.id ? ' selected' : ''}${inst.state === 'waiting_permission' ? ' asking' : ''}`,
    dataset: { testid: 'instance-row', instanceId: inst.id },
    attrs: { role: 'button', tabindex: '0', 'aria-pressed': String(state.selected === inst.id) },
    title: inst.state_reason ? `${inst.state}: ${inst.state_reason}` : inst.state,
    on: {
      click: () => select(inst.id, true),
      keydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(inst.id, true); } },
    },
  }, [
    caret,
    el('span', { className: 'name', title: inst.id }, [
      inst.name || inst.id,
      inst.name && inst.name !== inst.id ? el('span', { className: 'id', text: inst.id }) : null,
    ]),
    stateBadge(inst.state, 'instance-state'),
    el('span', { className: 'role', text: inst.role || '' }),
    el('span', { className: 'model', text: model, title: model }),
    ageSpan(inst),
    el('span', { className: 'cost', text: fmtCost(u.cost_micros) + (u.unpriced_calls ? '+' : ''), title: costTitle }),
  ]);
  return row;
}

/** How many hosts the fleet has: those /api/hosts listed, or that run a known instance. */
function fleetHosts() {
  const hosts = new Set(state.hostNames ?? []);
  for (const inst of state.instances.values()) if (inst.host) hosts.add(inst.host);
  return hosts.size;
}

function stateBadge(st, testid) {
  return el('span', { className: `badge st-${cls(st)}`, text: st ?? '?', dataset: testid ? { testid } : undefined });
}

/** An age that tick() keeps current: since it was made, frozen once it ended. */
function ageSpan(inst) {
  const created = ms(inst.created_at);
  const ended = isEnded(inst) ? (ms(inst.terminated_at) ?? ms(inst.state_since)) : null;
  const span = el('span', {
    className: 'age',
    dataset: { created: created ?? '', ended: ended ?? '' },
    title: `made ${fmtFullTime(inst.created_at)}${ended ? `, ended ${fmtFullTime(inst.terminated_at ?? inst.state_since)}` : ''}`,
  });
  paintAge(span);
  return span;
}

function paintAge(span) {
  const created = Number(span.dataset.created);
  if (!created) { span.textContent = ''; return; }
  const end = Number(span.dataset.ended) || Date.now();
  span.textContent = fmtAge((end - created) / 1000);
}

function toggleCollapsed(id) {
  if (state.collapsed.has(id)) state.collapsed.delete(id);
  else state.collapsed.add(id);
  renderTree();
}

// ---------------------------------------------------------------------------------------
// The selected instance: header, buttons, output, messages
// ---------------------------------------------------------------------------------------

const out = {
  id: null, gen: 0, ids: [], nodes: new Map(), nextBefore: null, stick: true,
  loaded: false,
  realInterrupts: new Set(), // message ids with an interrupt chunk of their own
  marks: new Map(),          // message id -> an interrupt line made from the message's state
};
const msgs = { id: null, gen: 0, list: new Map(), nextBefore: null };

const narrow = window.matchMedia('(max-width: 720px)');

/** Shows one instance. `reveal`: a person picked it, so on a phone scroll to it. */
function select(id, reveal = false) {
  if (reveal && narrow.matches) $('detail').scrollIntoView({ behavior: 'smooth', block: 'start' });
  if (!id || state.selected === id) return;
  state.selected = id;
  if (decodeURIComponent(location.hash.slice(1)) !== id) history.replaceState(null, '', '#' + enc(id));
  $('action-status').textContent = '';
  renderInstances();
  for (const row of document.querySelectorAll('[data-testid="instance-row"]')) {
    row.classList.toggle('selected', row.dataset.instanceId === id);
  }
  resetOutput(id);
  resetMessages(id);
  report(loadOutput());
  report(loadMessages());
}

function renderDetailHead() {
  const inst = state.instances.get(state.selected);
  const title = $('detail-title');
  const badge = $('detail-state');
  const meta = $('detail-meta');
  const reason = $('detail-reason');
  if (!inst) {
    title.textContent = state.selected ? state.selected : 'No instance selected';
    badge.hidden = true;
    meta.textContent = '';
    reason.hidden = true;
    updateActions(null);
    return;
  }
  title.textContent = inst.name || inst.id;
  title.title = inst.id;
  badge.hidden = false;
  badge.className = `badge st-${cls(inst.state)}`;
  badge.textContent = inst.state;
  const u = inst.usage ?? zeroUsage();
  meta.textContent = [
    inst.name && inst.name !== inst.id ? inst.id : null,
    inst.role,
    [inst.agent, inst.model].filter(Boolean).join('/'),
    `${fmtCost(u.cost_micros)}${u.unpriced_calls ? ` + ${u.unpriced_calls} unpriced` : ''}`,
    `${fmtCount(tokensOf(u))} tokens`,
  ].filter(Boolean).join(' · ');
  meta.title = tokenBreakdown(u) + (inst.workdir ? ` · in ${inst.workdir}` : '');
  reason.hidden = !inst.state_reason;
  reason.textContent = inst.state_reason ? `${inst.state}: ${inst.state_reason}` : '';
  $('spawn-under-name').textContent = inst.name || inst.id;
  updateActions(inst);
}

/** Each button is on only where the server could do it; the server still has the last word. */
function updateActions(inst) {
  const st = inst?.state;
  const can = {
    send: !!inst && st !== 'terminated' && st !== 'attached',
    interrupt: !!inst && INTERRUPTIBLE.has(st),
    resume: !!inst && RESUMABLE.has(st),
    terminate: !!inst && st !== 'terminated',
  };
  $('send-input').disabled = !can.send;
  $('send-button').disabled = !can.send || busy.send;
  $('interrupt-button').disabled = !can.interrupt || busy.interrupt;
  $('resume-button').disabled = !can.resume || busy.resume;
  $('terminate-button').disabled = !can.terminate || busy.terminate;
  $('send-input').placeholder = !inst ? 'Select an instance first'
    : st === 'attached' ? 'This is a session troupe did not start: it cannot type into it'
      : st === 'terminated' ? 'This instance has ended'
        : 'Message to this instance (Ctrl+Enter or ⌘+Enter sends)';
  $('spawn-under').disabled = !inst;
}

// ----- output -----

function resetOutput(id) {
  out.id = id;
  out.gen += 1;
  out.ids = [];
  out.nodes = new Map();
  out.nextBefore = null;
  out.stick = true;
  out.loaded = false;
  out.realInterrupts = new Set();
  out.marks = new Map();
  $('output').replaceChildren(el('p', { className: 'placeholder', text: 'loading…' }));
  $('load-earlier').hidden = true;
  $('jump-latest').hidden = true;
}

async function loadOutput() {
  const { id, gen } = out;
  const data = await api('GET', instancePath(id, '/output?limit=200'));
  if (gen !== out.gen) return; // another instance was selected meanwhile
  out.nextBefore = data.next_before ?? null;
  addChunks(data.chunks ?? [], 'bottom');
  out.loaded = true;
  markInterruptedMessages();
  showEmptyOutput();
}

async function loadEarlier() {
  if (out.nextBefore == null) return;
  const { id, gen } = out;
  const button = $('load-earlier');
  button.disabled = true;
  try {
    const data = await api('GET', instancePath(id, `/output?limit=200&before=${enc(out.nextBefore)}`));
    if (gen !== out.gen) return;
    out.nextBefore = data.next_before ?? null;
    addChunks(data.chunks ?? [], 'keep');
    markInterruptedMessages();
  } finally {
    button.disabled = false;
  }
}

/** What came since the newest chunk shown: used after the event stream had to start over. */
async function loadOutputSince() {
  if (!out.id || !out.ids.length) return report(loadOutput());
  const { id, gen } = out;
  const after = out.ids[out.ids.length - 1];
  const data = await api('GET', instancePath(id, `/output?limit=1000&after=${enc(after)}`));
  if (gen === out.gen) addChunks(data.chunks ?? [], 'auto');
}

function showEmptyOutput() {
  const box = $('output');
  $('load-earlier').hidden = out.nextBefore == null;
  if (!out.ids.length && !out.marks.size) {
    box.replaceChildren(el('p', { className: 'placeholder', text: 'Nothing said or done yet.' }));
  }
}

/**
 * Puts chunks in id order. `scroll`: 'bottom' jumps to the end, 'keep' holds what the
 * reader is looking at (chunks came in above), 'auto' follows the end unless they scrolled up.
 */
function addChunks(chunks, scroll) {
  const box = $('output');
  const wasAtBottom = atBottom(box);
  const beforeHeight = box.scrollHeight;
  const beforeTop = box.scrollTop;
  box.querySelector(':scope > .placeholder')?.remove();
  let appended = false;
  for (const c of chunks) {
    if (out.nodes.has(c.id)) continue;
    if (c.source === 'interrupt' && c.message_id) {
      out.realInterrupts.add(c.message_id);
      out.marks.get(c.message_id)?.remove(); // the chunk says it now
      out.marks.delete(c.message_id);
    }
    const node = chunkNode(c);
    const at = insertAt(out.ids, c.id);
    const next = out.ids[at];
    out.ids.splice(at, 0, c.id);
    out.nodes.set(c.id, node);
    if (next === undefined) { box.append(node); appended = true; } else box.insertBefore(node, out.nodes.get(next));
    // The transcript can be read after the interrupt was marked: the mark follows its turn.
    const mark = c.message_id && out.marks.get(c.message_id);
    if (mark && mark.compareDocumentPosition(node) & Node.DOCUMENT_POSITION_FOLLOWING) node.after(mark);
  }
  $('load-earlier').hidden = out.nextBefore == null;
  if (scroll === 'bottom' || (scroll === 'auto' && (wasAtBottom || out.stick))) {
    box.scrollTop = box.scrollHeight;
    out.stick = true;
    $('jump-latest').hidden = true;
  } else if (scroll === 'keep') {
    box.scrollTop = beforeTop + (box.scrollHeight - beforeHeight);
  } else if (appended) {
    $('jump-latest').hidden = false;
  }
}

function insertAt(sorted, id) {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < id) lo = mid + 1; else hi = mid;
  }
  return lo;
}

const atBottom = (box) => box.scrollHeight - box.scrollTop - box.clientHeight < 40;

const LONG_LINES = 8;
const LONG_CHARS = 800;

function chunkNode(c) {
  const source = c.source ?? 'other';
  const content = String(c.content ?? '');
  const node = el('div', {
    className: `chunk src-${cls(source)}`,
    dataset: { testid: 'output-chunk', source, chunkId: c.id, messageId: c.message_id, at: ms(c.created_at) },
    title: fmtFullTime(c.created_at),
  });
  switch (source) {
    case 'prompt':
      node.append(el('span', { className: 'label', text: 'prompt ›' }), el('div', { className: 'text', text: content }));
      break;
    case 'assistant':
      node.append(el('div', { className: 'text', text: content }));
      break;
    case 'interrupt':
      node.append(el('span', { className: 'label', text: '■ interrupted' }));
      // "[interrupted]" and the like say no more than the label does.
      if (content.trim() && !/^\W*(request )?interrupted( by user)?\W*$/i.test(content)) {
        node.append(el('div', { className: 'text', text: content }));
      }
      break;
    case 'tool_use':
    case 'tool_result':
      node.append(toolBody(source === 'tool_use' ? 'tool ›' : 'result ‹', content));
      break;
    default:
      node.append(el('span', { className: 'label', text: source }), el('div', { className: 'text', text: content }));
  }
  return node;
}

/** Tool calls and results: monospace, folded when long so the conversation stays readable. */
function toolBody(label, content) {
  const lines = content.split('\n');
  if (lines.length <= LONG_LINES && content.length <= LONG_CHARS) {
    return el('div', { className: 'tool' }, [el('span', { className: 'label', text: label }), el('pre', { text: content })]);
  }
  const first = preview(lines.find((l) => l.trim()) ?? '', 120);
  const size = lines.length > 1 ? `${lines.length} lines` : `${fmtCount(content.length)} chars`;
  return el('details', { className: 'tool' }, [
    el('summary', {}, [el('span', { className: 'label', text: label }), el('span', { className: 'first', text: first }), el('span', { className: 'muted', text: ` (${size})` })]),
    el('pre', { text: content }),
  ]);
}

/**
 * An interrupted turn is not always in the transcript (a turn stopped before the model
 * answered leaves no chunk), so the output also marks it from the message's state.
 */
function markInterrupted(messageId, detail, when) {
  if (!out.loaded || !messageId || out.realInterrupts.has(messageId) || out.marks.has(messageId)) return;
  const at = ms(when) ?? Date.now();
  const shown = out.ids.map((id) => out.nodes.get(id));
  // Older than everything shown while there is more to load: it belongs to a page not read yet.
  if (out.nextBefore != null && shown.length && at < Number(shown[0].dataset.at)) return;
  const own = shown.filter((n) => n.dataset.messageId === messageId).pop();
  const later = own ? null : shown.find((n) => Number(n.dataset.at) > at);
  const node = chunkNode({ id: '', source: 'interrupt', content: detail || '', message_id: messageId, created_at: when });
  node.dataset.derived = 'message-state';
  const box = $('output');
  const follow = out.stick || atBottom(box);
  box.querySelector(':scope > .placeholder')?.remove();
  if (own) own.after(node);
  else if (later) box.insertBefore(node, later);
  else box.append(node);
  out.marks.set(messageId, node);
  if (follow) box.scrollTop = box.scrollHeight;
}

function markInterruptedMessages() {
  if (msgs.id !== out.id) return;
  for (const m of msgs.list.values()) {
    if (m.state === 'interrupted') markInterrupted(m.id, m.state_reason, m.finished_at);
  }
}

function onOutput(chunk) {
  if (chunk.instance_id !== out.id) return;
  addChunks([chunk], 'auto');
}

// ----- messages -----

const MESSAGE_RANK = { queued: 0, submitted: 1, started: 2, answered: 3, interrupted: 3, failed: 3 };

function resetMessages(id) {
  msgs.id = id;
  msgs.gen += 1;
  msgs.list = new Map();
  msgs.nextBefore = null;
  $('messages').replaceChildren(el('p', { className: 'placeholder', text: 'loading…' }));
  $('messages-older').hidden = true;
  $('message-count').textContent = '';
}

async function loadMessages(before) {
  const { id, gen } = msgs;
  const q = before != null ? `?limit=100&before=${enc(before)}` : '?limit=100';
  const data = await api('GET', instancePath(id, '/messages' + q));
  if (gen !== msgs.gen) return;
  if (before == null || msgs.nextBefore != null) msgs.nextBefore = data.next_before ?? null;
  for (const m of data.messages ?? []) upsertMessage(m, false);
  renderMessages();
}

/** Delivery states only move forward, so an older event never undoes a newer answer. */
function upsertMessage(m, render = true) {
  if (m.instance_id && m.instance_id !== msgs.id) return;
  const cur = msgs.list.get(m.id);
  if (cur && (MESSAGE_RANK[m.state] ?? 0) < (MESSAGE_RANK[cur.state] ?? 0)) return;
  msgs.list.set(m.id, { ...(cur ?? {}), ...m });
  if (m.state === 'interrupted' && msgs.id === out.id) markInterrupted(m.id, m.state_reason, m.finished_at);
  if (render) renderMessages();
}

const renderMessages = perFrame(() => {
  const list = [...msgs.list.values()].sort(
    (a, b) => (b.created_at ?? '').localeCompare(a.created_at ?? '') || String(b.id).localeCompare(String(a.id)));
  $('message-count').textContent = list.length ? `(${list.length}${msgs.nextBefore != null ? '+' : ''})` : '';
  $('messages-older').hidden = msgs.nextBefore == null;
  if (!list.length) {
    $('messages').replaceChildren(el('p', { className: 'placeholder', text: 'No messages sent to it yet.' }));
    return;
  }
  $('messages').replaceChildren(...list.map(messageRow));
});

function messageRow(m) {
  const took = ms(m.finished_at) != null && ms(m.created_at) != null
    ? ` (${fmtAge((ms(m.finished_at) - ms(m.created_at)) / 1000)})` : '';
  const times = `${fmtTime(m.created_at)}${m.finished_at ? ` → ${fmtTime(m.finished_at)}${took}` : ''}`;
  const row = el('div', {
    className: 'msg',
    dataset: { testid: 'message-row', messageId: m.id, state: m.state },
    title: 'Click to show it all',
    on: { click: () => row.classList.toggle('expanded') },
  }, [
    el('div', { className: 'msg-head' }, [
      el('span', { className: `badge ms-${cls(m.state)}`, text: m.state, dataset: { testid: 'message-state' } }),
      el('span', { className: 'muted', text: m.sender ? `from ${m.sender}` : 'from the person' }),
      el('span', { className: 'muted msg-time', text: times, title: `${fmtFullTime(m.created_at)} · ${m.id}` }),
    ]),
    el('div', { className: 'msg-content', text: preview(m.content, 2000) }),
    m.response ? el('div', { className: 'msg-response', text: preview(m.response, 2000) }) : null,
    m.state_reason ? el('div', { className: 'msg-reason muted', text: m.state_reason }) : null,
  ]);
  return row;
}

// ----- actions -----

const busy = { send: false, interrupt: false, resume: false, terminate: false };

/** Runs one button's call with that button held off, and says how it went. */
async function act(kind, fn) {
  busy[kind] = true;
  renderDetailHead();
  try {
    const said = await fn();
    if (said) $('action-status').textContent = said;
  } catch (e) {
    showError(e);
  } finally {
    busy[kind] = false;
    renderDetailHead();
  }
}

function sendMessage() {
  const id = state.selected;
  const input = $('send-input');
  const text = input.value;
  if (!id || !text.trim() || busy.send) return;
  return act('send', async () => {
    const m = await api('POST', instancePath(id, '/send'), { message: text, wait: false });
    if (input.value === text) input.value = '';
    if (m && m.id) upsertMessage({ instance_id: id, ...m });
    return `sent: ${m?.state ?? 'queued'}`;
  });
}

function interruptSelected() {
  const id = state.selected;
  return act('interrupt', async () => {
    const r = await api('POST', instancePath(id, '/interrupt'), {});
    return `interrupt: ${r?.outcome ?? (r?.interrupted ? 'done' : 'nothing to stop')}${r?.detail ? ` (${r.detail})` : ''}`;
  });
}

function terminateSelected() {
  const inst = state.instances.get(state.selected);
  if (!inst) return;
  const under = countUnder(inst.id);
  const ask = `Terminate ${inst.name || inst.id}${under ? ` and the ${under} instance${under > 1 ? 's' : ''} under it` : ''}?`;
  if (!confirm(ask)) return;
  return act('terminate', async () => {
    const r = await api('POST', instancePath(inst.id, '/terminate'), {});
    const n = r?.terminated?.length ?? 0;
    return `terminated ${n} instance${n === 1 ? '' : 's'}`;
  });
}

function countUnder(id) {
  const kids = childrenByParent();
  let n = 0;
  const walk = (pid, seen) => {
    for (const c of kids.get(pid) ?? []) {
      if (seen.has(c.id)) continue;
      seen.add(c.id);
      if (!isEnded(c)) n += 1;
      walk(c.id, seen);
    }
  };
  walk(id, new Set([id]));
  return n;
}

function resumeSelected() {
  const id = state.selected;
  return act('resume', async () => {
    const inst = await api('POST', instancePath(id, '/resume'), {});
    if (inst && inst.id) upsertInstance(inst);
    return `resumed: ${inst?.state ?? 'starting'}`;
  });
}

function onInterrupt(d) {
  if (d.instance_id !== state.selected) return;
  $('action-status').textContent = `interrupt ${d.outcome ?? ''}${d.detail ? ` (${d.detail})` : ''}`;
  if (d.outcome === 'confirmed' && d.instance_id === out.id) markInterrupted(d.message_id, d.detail, d.confirmed_at);
}

// ----- spawning -----

async function spawn(form) {
  const f = new FormData(form);
  const body = {};
  for (const key of ['agent', 'role', 'model', 'name']) {
    const v = String(f.get(key) ?? '').trim();
    if (v) body[key] = v;
  }
  if (f.get('under_selected') && state.selected) body.parent_instance_id = state.selected;
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    const inst = await api('POST', '/api/instances', body);
    if (inst && inst.id) {
      upsertInstance(inst);
      select(inst.id);
      $('action-status').textContent = `spawned ${inst.name || inst.id}`;
    }
    form.elements.namedItem('name').value = '';
  } catch (e) {
    showError(e);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// Cost over time: an SVG drawn here, cumulative per model and in total
// ---------------------------------------------------------------------------------------

const MAX_USAGE_ROWS = 5000;
const usage = { rows: new Map(), truncated: false };

async function loadUsage() {
  let before = null;
  let count = 0;
  do {
    const q = new URLSearchParams({ limit: '1000' });
    if (before != null) q.set('before', before);
    const data = await api('GET', '/api/usage?' + q);
    for (const row of data.usage ?? []) usage.rows.set(row.id, row);
    count += (data.usage ?? []).length;
    before = data.next_before ?? null;
  } while (before != null && count < MAX_USAGE_ROWS);
  usage.truncated = before != null;
  renderChart();
}

function onUsage(row) {
  if (usage.rows.has(row.id)) return;
  usage.rows.set(row.id, row);
  const inst = state.instances.get(row.instance_id);
  if (inst) {
    const u = inst.usage ?? (inst.usage = zeroUsage());
    for (const k of ['input_tokens', 'output_tokens', 'cache_creation_tokens', 'cache_read_tokens']) u[k] = (u[k] || 0) + (row[k] || 0);
    if (row.cost_micros == null) u.unpriced_calls = (u.unpriced_calls || 0) + 1;
    else u.cost_micros = (u.cost_micros || 0) + row.cost_micros;
  }
  renderInstances();
  renderChart();
  // The per-instance totals above are kept by hand; the list is read again now and then
  // so they cannot drift from the server's.
  refreshInstances();
}

const SERIES_COLOURS = 8;

/** The series: cumulative micros over time, per model and in total. */
function usageSeries() {
  const rows = [...usage.rows.values()].sort(
    (a, b) => (a.created_at ?? '').localeCompare(b.created_at ?? '') || a.id - b.id);
  const total = { model: 'total', points: [], cost: 0, unpriced: 0, tokens: zeroUsage() };
  const models = new Map();
  for (const r of rows) {
    const t = ms(r.created_at);
    if (t == null) continue;
    let s = models.get(r.model);
    if (!s) models.set(r.model, (s = { model: r.model || '(unknown)', points: [], cost: 0, unpriced: 0, tokens: zeroUsage() }));
    for (const series of [s, total]) {
      if (r.cost_micros == null) series.unpriced += 1;
      else series.cost += r.cost_micros;
      for (const k of ['input_tokens', 'output_tokens', 'cache_creation_tokens', 'cache_read_tokens']) series.tokens[k] += r[k] || 0;
      series.points.push([t, series.cost]);
    }
  }
  const byCost = [...models.values()].sort((a, b) => b.cost - a.cost || a.model.localeCompare(b.model));
  byCost.forEach((s, i) => { s.colour = `c${i % SERIES_COLOURS}`; });
  return { total, models: byCost, rows };
}

const renderChart = perFrame(drawChart);

function drawChart() {
  const box = $('chart');
  const legend = $('chart-legend');
  const { total, models, rows } = usageSeries();
  $('chart-note').textContent = usage.truncated ? `last ${fmtCount(rows.length)} calls` : '';
  if (!rows.length) {
    box.replaceChildren(el('p', { className: 'placeholder', text: 'no model calls yet' }));
    legend.replaceChildren();
    $('chart-tokens').textContent = '';
    return;
  }

  const W = Math.max(240, Math.round(box.clientWidth || 360));
  const H = 170;
  const pad = { l: 52, r: 10, t: 10, b: 22 };
  const now = Date.now();
  let t1 = Math.max(now, total.points[total.points.length - 1][0]);
  let t0 = total.points[0][0];
  if (t1 - t0 < 60_000) t0 = t1 - 60_000; // at least a minute wide, so one call is a step
  // Gridlines at round amounts: a step of 1, 2 or 5 times a power of ten, 2 to 5 of them.
  const step = niceStep(Math.max(total.cost, 1) / 4);
  const lines = Math.max(2, Math.ceil(Math.max(total.cost, 1) / step));
  const vmax = step * lines;
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
  const y = (v) => H - pad.b - (v / vmax) * (H - pad.t - pad.b);

  const chart = svgEl('svg', {
    viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'chart-svg', role: 'img',
    'aria-label': `Cumulative cost: ${fmtCost(total.cost)} over ${rows.length} model calls`,
  });
  for (let i = 0; i <= lines; i++) {
    const v = step * i;
    chart.append(
      svgEl('line', { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), class: 'grid' }),
      svgEl('text', { x: pad.l - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, [v === 0 ? '$0' : fmtCost(v)]),
    );
  }
  const ticks = [t0, (t0 + t1) / 2, t1];
  ticks.forEach((t, i) => {
    const anchor = i === 0 ? 'start' : i === ticks.length - 1 ? 'end' : 'middle';
    chart.append(svgEl('text', { x: x(t), y: H - 6, class: 'axis', 'text-anchor': anchor }, [axisTime(t, t1 - t0)]));
  });
  for (const s of [...models].reverse()) chart.append(stepPath(s, x, y, t0, t1, `line ${s.colour}`));
  if (models.length > 1) chart.append(stepPath(total, x, y, t0, t1, 'line total'));
  box.replaceChildren(chart);

  const item = (s, colour) => el('div', { className: 'legend-item', dataset: { model: s.model } }, [
    el('span', { className: `swatch ${colour}` }),
    el('span', { className: 'legend-name', text: s.model }),
    el('span', { className: 'legend-cost', text: fmtCost(s.cost) + (s.unpriced ? ` + ${s.unpriced} unpriced` : '') }),
    el('span', { className: 'muted legend-tokens', text: `${fmtCount(tokensOf(s.tokens))} tok`, title: tokenBreakdown(s.tokens) }),
  ]);
  legend.replaceChildren(
    ...(models.length > 1 ? [item(total, 'total')] : []),
    ...models.map((s) => item(s, s.colour)));
  $('chart-tokens').textContent = `tokens: ${fmtCount(tokensOf(total.tokens))} (${tokenBreakdown(total.tokens)}) over ${fmtCount(rows.length)} calls`;
}

function stepPath(series, x, y, t0, t1, className) {
  let d = `M${x(t0).toFixed(1)},${y(0).toFixed(1)}`;
  for (const [t, v] of series.points) d += `H${x(t).toFixed(1)}V${y(v).toFixed(1)}`;
  d += `H${x(t1).toFixed(1)}`;
  return svgEl('path', { d, class: className }, [svgEl('title', {}, [`${series.model}: ${fmtCost(series.cost)}`])]);
}

/** The round step (micros) at or above v, so the axis reads $0, $0.0100, $0.0200… */
function niceStep(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function axisTime(t, span) {
  const d = new Date(t);
  if (span > 2 * 86400_000) return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
}

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

async function loadLimits() {
  const data = await api('GET', '/api/limits');
  renderLimits(data.limits ?? []);
}

const isMoney = (unit) => ['usd', 'dollars', 'dollar', '$'].includes(String(unit ?? '').toLowerCase()) || String(unit ?? '').toLowerCase().includes('micro');

/** Amounts in a limit's unit: dollars for money (as micros or as dollars), else a count. */
function fmtAmount(v, unit) {
  if (v == null) return '—';
  const u = String(unit ?? '').toLowerCase();
  if (u.includes('micro')) return fmtCost(v);
  if (isMoney(u)) return fmtDollars(Number(v));
  const n = Number(v);
  const text = Number.isInteger(n) ? String(n) : n.toFixed(2);
  return unit ? `${text} ${unit}` : text;
}

/** "3 / 10 instances", "$1.20 / $5.00", "$0.4000 · no limit". */
function limitText(l) {
  if (l.limit == null) return `${fmtAmount(l.used, l.unit)} · no limit`;
  if (isMoney(l.unit)) return `${fmtAmount(l.used, l.unit)} / ${fmtAmount(l.limit, l.unit)}`;
  return `${fmtAmount(l.used, '')} / ${fmtAmount(l.limit, l.unit)}`;
}

function renderLimits(limits) {
  const box = $('limits');
  if (!limits.length) {
    box.replaceChildren(el('p', { className: 'placeholder', text: 'No limits reported.' }));
    return;
  }
  box.replaceChildren(...limits.map((l) => {
    const has = l.limit != null && Number(l.limit) > 0;
    const frac = has ? Number(l.used) / Number(l.limit) : 0;
    const fill = el('div', { className: 'fill' });
    fill.style.width = `${Math.min(100, Math.max(0, frac * 100)).toFixed(1)}%`; // CSSOM: allowed by the CSP
    const level = !has ? 'none' : frac >= 1 ? 'over' : frac >= 0.8 ? 'near' : 'ok';
    return el('div', { className: `limit lv-${level}`, dataset: { testid: 'limit-row', limitName: l.name } }, [
      el('div', { className: 'limit-head' }, [
        el('span', { className: 'limit-name', text: String(l.name ?? '').replace(/_/g, ' '), title: l.name }),
        el('span', { className: 'limit-value', text: limitText(l) }),
      ]),
      el('div', { className: 'bar', attrs: { role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': has ? l.limit : null, 'aria-valuenow': l.used } }, [fill]),
      l.source ? el('div', { className: 'muted limit-source', text: `from ${String(l.source).replace(/_/g, ' ')}` }) : null,
    ]);
  }));
}

// ---------------------------------------------------------------------------------------
// Teams
// ---------------------------------------------------------------------------------------

async function loadTeams() {
  const data = await api('GET', '/api/teams');
  renderTeams(data.teams ?? []);
}

function renderTeams(teams) {
  const box = $('teams');
  if (!teams.length) {
    box.replaceChildren(el('p', { className: 'placeholder', text: 'No teams. create_team (or POST /api/teams) makes one.' }));
    return;
  }
  // Dissolved teams last: they are kept as a record, not for use.
  const sorted = [...teams].sort((a, b) => (!!a.dissolved_at - !!b.dissolved_at) || String(a.name).localeCompare(String(b.name)));
  box.replaceChildren(...sorted.map(teamCard));
}

function teamCard(t) {
  const gone = !!t.dissolved_at;
  const button = (label, testid, fn, extra = '') => el('button', {
    className: `small ${extra}`, text: label, dataset: { testid },
    attrs: { type: 'button', disabled: gone },
    on: { click: (e) => report(teamAction(e.currentTarget, fn)) },
  });
  const name = t.name;
  return el('div', { className: `team${gone ? ' ended' : ''}`, dataset: { testid: 'team-row', teamName: name } }, [
    el('div', { className: 'team-head' }, [
      el('span', { className: 'team-name', text: name }),
      gone ? el('span', { className: 'badge st-terminated', text: 'dissolved', title: fmtFullTime(t.dissolved_at) }) : null,
      el('span', { className: 'muted team-desc', text: t.description || '' }),
    ]),
    el('div', { className: 'members' }, (t.members ?? []).map(memberRow)),
    el('div', { className: 'team-actions' }, [
      button('Start', 'team-start', () => api('POST', `/api/teams/${enc(name)}/start`, {})),
      button('Resume', 'team-resume', () => api('POST', `/api/teams/${enc(name)}/resume`, {})),
      button('Dissolve', 'team-dissolve', () => {
        if (!confirm(`Dissolve team ${name}? Its instances are terminated; the record is kept.`)) return null;
        return api('DELETE', `/api/teams/${enc(name)}`, {});
      }, 'danger'),
    ]),
  ]);
}

function memberRow(m) {
  const model = [m.agent, m.model].filter(Boolean).join('/');
  const row = el('div', {
    className: `member${m.instance_id ? ' linked' : ''}`,
    dataset: { testid: 'team-member', instanceId: m.instance_id ?? undefined },
    title: m.instance_id ? `show ${m.instance_id}` : 'not started',
  }, [
    el('span', { className: 'member-name', text: m.name }),
    el('span', { className: 'muted', text: [m.role, model].filter(Boolean).join(' · ') }),
    stateBadge(m.state),
  ]);
  if (m.instance_id) row.addEventListener('click', () => select(m.instance_id, true));
  return row;
}

async function teamAction(button, fn) {
  button.disabled = true;
  try {
    await fn();
    refreshTeams();
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// Permission requests: each one holds an instance until someone decides, so they sit above
// everything while they wait
// ---------------------------------------------------------------------------------------

const KEEP_DECIDED = 5;          // decided requests kept in view, dimmed
const DECIDED_SHOWN_MS = 15000;  // how long a decision made in view keeps the panel open
const LONG_INPUT = 160;          // tool input longer than this (compact JSON) is folded

const perms = {
  pending: new Map(), // request id -> request, with .seenAt (when this page first heard of it)
  rows: new Map(),    // request id -> its row, kept across updates so a reason being typed survives
  settled: new Set(), // ids known decided: a list read before the decision cannot bring them back
  decided: [],        // the last few decided, newest first
  busy: new Set(),    // ids with a decision on its way to the server
};

/** REST answers call it request_id, events call it id. */
const requestId = (r) => r.request_id ?? r.id;

async function loadPermissions() {
  const asked = Date.now();
  const data = await api('GET', '/api/permissions');
  const listed = new Set();
  for (const r of data.requests ?? []) {
    listed.add(r.request_id);
    upsertPermission(r);
  }
  // Pending here but not listed: decided while this page was not listening. One first heard
  // of after the list was asked for is newer than the list, so it stays.
  for (const [id, r] of perms.pending) {
    if (!listed.has(id) && r.seenAt < asked) {
      perms.pending.delete(id);
      perms.settled.add(id);
    }
  }
  renderPermissions();
}

const refreshPermissions = debounce(() => report(loadPermissions()), 250, 1000);

function onPermission(data) {
  const r = { ...data, request_id: requestId(data) };
  upsertPermission(r);
  // Events leave tool_input out; the list has it.
  const cur = perms.pending.get(r.request_id);
  if (cur && !('tool_input' in cur)) refreshPermissions();
  renderPermissions();
}

function upsertPermission(r) {
  const id = r.request_id;
  if (!id || perms.settled.has(id)) return;
  if (r.state && r.state !== 'pending') return settlePermission(r);
  const cur = perms.pending.get(id);
  perms.pending.set(id, { ...(cur ?? { seenAt: Date.now() }), ...r });
}

/** Out of the pending list, into the few kept dimmed with who decided. */
function settlePermission(r) {
  const id = r.request_id;
  const was = perms.pending.get(id);
  perms.settled.add(id);
  perms.pending.delete(id);
  // Only one that was on screen keeps the panel open a while: requests a rule decides at
  // once would otherwise pop the panel up for nothing to do.
  const entry = { ...(was ?? {}), ...r, decidedSeenAt: Date.now(), wasShown: perms.rows.has(id) };
  perms.decided = [entry, ...perms.decided.filter((d) => d.request_id !== id)].slice(0, KEEP_DECIDED);
}

/** Whether the instance has a request this page knows is waiting. */
const hasPendingFor = (instanceId) => [...perms.pending.values()].some((r) => r.instance_id === instanceId);

const renderPermissions = perFrame(drawPermissions);

function drawPermissions() {
  const list = $('permission-list');
  const pending = [...perms.pending.values()].sort(
    (a, b) => (a.asked_at ?? '').localeCompare(b.asked_at ?? '') || a.request_id.localeCompare(b.request_id));
  for (const [id, row] of perms.rows) {
    if (perms.pending.has(id)) continue;
    row.remove();
    perms.rows.delete(id);
  }
  // Rows are kept and moved, never made anew, so focus and a half-typed reason stay put.
  pending.forEach((r, i) => {
    let row = perms.rows.get(r.request_id);
    if (!row) perms.rows.set(r.request_id, (row = permissionRow(r)));
    else updatePermissionRow(row, r);
    if (list.children[i] !== row) list.insertBefore(row, list.children[i] ?? null);
  });
  $('permission-decided').replaceChildren(...perms.decided.map(decidedRow));
  $('permission-count').textContent = pending.length ? `(${pending.length})` : '';
  showPermissionsPanel();
  if (!signedOut) document.title = pending.length ? `(${pending.length}) troupe: permission asked` : 'troupe';
}

function showPermissionsPanel() {
  const now = Date.now();
  const recent = perms.decided.some((d) => d.wasShown && now - d.decidedSeenAt < DECIDED_SHOWN_MS);
  const box = $('permissions');
  box.hidden = !perms.pending.size && !recent;
  // Only decided ones left: still in view for a moment, but nothing asks for the person now.
  box.classList.toggle('quiet', !perms.pending.size);
}

const instanceName = (id) => state.instances.get(id)?.name || id;

function permissionRow(r) {
  const id = r.request_id;
  const reason = el('input', {
    className: 'perm-reason', dataset: { testid: 'permission-reason' },
    attrs: { type: 'text', maxlength: 2000, hidden: true, placeholder: 'Reason, shown to the model (optional)', 'aria-label': 'Reason for denying' },
  });
  const allow = el('button', { className: 'small allow', text: 'Allow', dataset: { testid: 'permission-allow' }, attrs: { type: 'button' } });
  const deny = el('button', { className: 'small danger', text: 'Deny', dataset: { testid: 'permission-deny' }, attrs: { type: 'button' } });
  const cancel = el('button', { className: 'small ghost', text: 'Cancel', attrs: { type: 'button', hidden: true } });
  const row = el('div', {
    className: 'perm-row', dataset: { testid: 'permission-row', requestId: id, instanceId: r.instance_id },
  }, [
    el('div', { className: 'perm-head' }, [
      el('button', {
        className: 'link perm-instance', text: instanceName(r.instance_id), title: `show ${r.instance_id}`,
        attrs: { type: 'button' }, on: { click: () => select(r.instance_id, true) },
      }),
      el('span', { className: 'perm-summary', text: r.summary || r.tool_name || id }),
      el('span', { className: 'muted perm-when' }, ['waiting ', ageSince(r.asked_at)]),
    ]),
    toolInput(r),
    el('div', { className: 'perm-actions' }, [allow, deny, reason, cancel]),
  ]);

  // Deny takes two steps: the first opens the reason field, the second (or Enter) denies.
  const closeReason = () => {
    row.classList.remove('denying');
    reason.hidden = true;
    cancel.hidden = true;
    deny.textContent = 'Deny';
  };
  allow.addEventListener('click', () => decidePermission(id, 'allow'));
  deny.addEventListener('click', () => {
    if (!row.classList.contains('denying')) {
      row.classList.add('denying');
      reason.hidden = false;
      cancel.hidden = false;
      deny.textContent = 'Deny with this reason';
      reason.focus();
      return;
    }
    decidePermission(id, 'deny', reason.value);
  });
  reason.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); decidePermission(id, 'deny', reason.value); }
    if (e.key === 'Escape') { e.preventDefault(); closeReason(); deny.focus(); }
  });
  cancel.addEventListener('click', closeReason);
  return row;
}

/** What can change while a request waits: its instance's name, and its input once read. */
function updatePermissionRow(row, r) {
  row.querySelector('.perm-instance').textContent = instanceName(r.instance_id);
  const shown = row.querySelector('.perm-input');
  if (shown.dataset.known !== '1' && 'tool_input' in r) shown.replaceWith(toolInput(r));
  const busy = perms.busy.has(r.request_id);
  for (const b of row.querySelectorAll('.perm-actions button, .perm-reason')) b.disabled = busy;
}

/** The tool's input as one line of JSON, folded into a <details> when it is long. */
function toolInput(r) {
  if (!('tool_input' in r)) return el('code', { className: 'perm-input muted', text: 'reading the input…' });
  const compact = typeof r.tool_input === 'string' ? r.tool_input : JSON.stringify(r.tool_input);
  if (compact.length <= LONG_INPUT) {
    return el('code', { className: 'perm-input', text: compact, dataset: { known: '1' } });
  }
  const full = typeof r.tool_input === 'string' ? r.tool_input : JSON.stringify(r.tool_input, null, 2);
  return el('details', { className: 'perm-input', dataset: { known: '1' } }, [
    el('summary', {}, [el('code', { text: preview(compact, LONG_INPUT) }), el('span', { className: 'muted', text: ` (${fmtCount(compact.length)} chars)` })]),
    el('pre', { text: full }),
  ]);
}

/** An age that tick() keeps current (the same painting as the tree's). */
function ageSince(iso) {
  const span = el('span', { className: 'age', dataset: { created: ms(iso) ?? '' }, title: `asked ${fmtFullTime(iso)}` });
  paintAge(span);
  return span;
}

function decidedRow(d) {
  const by = d.decided_by ? ` by ${d.decided_by}` : d.state === 'expired' ? ': nobody decided in time' : '';
  return el('div', {
    className: `perm-row decided pd-${cls(d.state)}`,
    dataset: { testid: 'permission-decided', requestId: d.request_id, instanceId: d.instance_id, state: d.state },
    title: d.decided_at ? `decided ${fmtFullTime(d.decided_at)}` : '',
  }, [
    el('div', { className: 'perm-head' }, [
      el('span', { className: 'perm-instance', text: instanceName(d.instance_id) }),
      el('span', { className: 'perm-summary', text: d.summary || d.tool_name || d.request_id }),
      el('span', { className: 'perm-verdict', text: `${d.state}${by}` }),
    ]),
    d.message ? el('div', { className: 'muted perm-message', text: `reason: ${d.message}` }) : null,
  ]);
}

// ---------------------------------------------------------------------------------------
// Approvals: an instance's call that needs the person's answer (require_approval)
// ---------------------------------------------------------------------------------------

const approvals = { pending: [], busy: new Set() };

async function loadApprovals() {
  const data = await api('GET', '/api/approvals');
  approvals.pending = data.approvals ?? [];
  drawApprovals();
}

const refreshApprovals = debounce(() => report(loadApprovals()), 250, 1000);

function drawApprovals() {
  const rows = approvals.pending.map((a) => {
    const busy = approvals.busy.has(a.approval_id);
    const allow = el('button', { className: 'small allow', text: 'Approve', dataset: { testid: 'approval-allow' }, attrs: { type: 'button' } });
    const deny = el('button', { className: 'small danger', text: 'Deny', dataset: { testid: 'approval-deny' }, attrs: { type: 'button' } });
    allow.disabled = deny.disabled = busy;
    allow.addEventListener('click', () => decideApproval(a, true));
    deny.addEventListener('click', () => decideApproval(a, false));
    return el('div', { className: 'perm-row', dataset: { testid: 'approval-row', approvalId: a.approval_id, instanceId: a.instance_id } }, [
      el('div', { className: 'perm-head' }, [
        el('button', {
          className: 'link perm-instance', text: instanceName(a.instance_id), title: `show ${a.instance_id}`,
          attrs: { type: 'button' }, on: { click: () => select(a.instance_id, true) },
        }),
        el('span', { className: 'perm-summary', text: a.tool }),
        el('span', { className: 'muted perm-when' }, ['waiting ', ageSince(a.asked_at)]),
      ]),
      toolInput({ tool_input: a.arguments }),
      el('div', { className: 'perm-actions' }, [allow, deny]),
    ]);
  });
  $('approval-list').replaceChildren(...rows);
  $('approval-count').textContent = rows.length ? `(${rows.length})` : '';
  $('approvals').hidden = !rows.length;
}

async function decideApproval(a, approve) {
  if (approvals.busy.has(a.approval_id)) return;
  approvals.busy.add(a.approval_id);
  drawApprovals();
  try {
    await api('POST', `/api/approvals/${enc(a.approval_id)}`, { approve });
  } catch (e) {
    if (e instanceof SessionGone) return;
    showError(new Error(`${approve ? 'approve' : 'deny'} ${a.tool} of ${a.instance_id}: ${e.message}`));
  } finally {
    approvals.busy.delete(a.approval_id);
    refreshApprovals();
  }
}

async function decidePermission(id, decision, message) {
  const r = perms.pending.get(id);
  if (!r || perms.busy.has(id)) return;
  perms.busy.add(id);
  renderPermissions();
  try {
    const body = { decision };
    if (message && message.trim()) body.message = message.trim();
    const done = await api('POST', instancePath(r.instance_id, `/permissions/${enc(id)}`), body);
    settlePermission({ ...r, ...done, request_id: requestId(done) ?? id });
  } catch (e) {
    if (e instanceof SessionGone) return;
    showError(new Error(`${decision} ${r.summary || id}: ${e.message}`));
    // Decided elsewhere, expired, or the CLI stopped waiting: the list says what still waits.
    refreshPermissions();
  } finally {
    perms.busy.delete(id);
    renderPermissions();
  }
}

// ---------------------------------------------------------------------------------------
// The audit log: newest first
// ---------------------------------------------------------------------------------------

const audit = { events: new Map(), nextBefore: null, loadedOnce: false };

async function loadAudit(before) {
  const q = before != null ? `?limit=100&before=${enc(before)}` : '?limit=100';
  const data = await api('GET', '/api/audit' + q);
  for (const ev of data.events ?? []) audit.events.set(ev.id, ev);
  if (before != null || !audit.loadedOnce) audit.nextBefore = data.next_before ?? null;
  audit.loadedOnce = true;
  renderAudit();
}

function onAudit(ev) {
  if (audit.events.has(ev.id)) return;
  const top = Math.max(-Infinity, ...audit.events.keys());
  audit.events.set(ev.id, ev);
  const box = $('audit');
  if (ev.id > top && box.querySelector('[data-testid="audit-row"]')) box.prepend(auditRow(ev));
  else renderAudit();
}

function renderAudit() {
  const box = $('audit');
  const list = [...audit.events.values()].sort((a, b) => b.id - a.id);
  $('audit-older').hidden = audit.nextBefore == null;
  if (!list.length) {
    box.replaceChildren(el('p', { className: 'placeholder', text: 'Nothing audited yet.' }));
    return;
  }
  box.replaceChildren(...list.map(auditRow));
}

/** Audit detail as one line of JSON, whether it came as an object or as JSON text. */
function compactDetail(detail) {
  if (detail == null || detail === '') return '';
  if (typeof detail === 'string') {
    try { return JSON.stringify(JSON.parse(detail)); } catch { return detail; }
  }
  return JSON.stringify(detail);
}

/** Audit detail as an object, whether it came as one or as JSON text; null when neither. */
function detailObject(detail) {
  if (detail && typeof detail === 'object') return detail;
  try { const d = JSON.parse(detail); return d && typeof d === 'object' ? d : null; } catch { return null; }
}

/** The gist of a tool's input: the command or the file when it has one, else its JSON. */
function inputGist(input) {
  if (input && typeof input === 'object') {
    for (const k of ['command', 'file_path', 'path', 'url', 'pattern']) if (typeof input[k] === 'string') return input[k];
  }
  return compactDetail(input);
}

/** A line in words for the kinds a person reads the log for; null for the rest. */
function auditSummary(ev) {
  const d = detailObject(ev.detail);
  if (!d) return null;
  switch (ev.kind) {
    case 'permission.asked':
      return `asks: ${d.tool_name ?? 'a tool'}${d.tool_input != null ? `: ${preview(inputGist(d.tool_input), 200)}` : ''}`;
    case 'permission.decided':
      return `${{ allow: 'allowed', deny: 'denied' }[d.decision] ?? 'decided'} by ${d.by ?? 'someone'}${d.message ? `: ${preview(d.message, 200)}` : ''}`;
    case 'permission.expired':
      return 'expired: nobody decided in time';
    default:
      return null;
  }
}

function auditRow(ev) {
  const detail = compactDetail(ev.detail);
  const summary = auditSummary(ev);
  const row = el('div', {
    className: 'audit-row', dataset: { testid: 'audit-row', auditId: ev.id },
    on: { click: () => row.classList.toggle('expanded') },
  }, [
    el('div', { className: 'audit-head' }, [
      el('span', { className: 'muted', text: fmtTime(ev.at), title: fmtFullTime(ev.at) }),
      el('span', { className: `audit-kind k-${cls(String(ev.kind ?? '').split('.')[0])}`, text: ev.kind }),
      ev.actor ? el('span', { className: 'muted', text: `by ${ev.actor}` }) : null,
      ev.instance_id ? el('button', {
        className: 'link', text: ev.instance_id, attrs: { type: 'button' },
        on: { click: (e) => { e.stopPropagation(); select(ev.instance_id, true); } },
      }) : null,
    ]),
    summary ? el('div', { className: 'audit-summary', text: summary, dataset: { testid: 'audit-summary' } }) : null,
    detail ? el('code', { className: 'audit-detail', text: detail }) : null,
  ]);
  return row;
}

// ---------------------------------------------------------------------------------------
// Refreshes, coalesced so a burst of events costs one request
// ---------------------------------------------------------------------------------------

const refreshLimits = debounce(() => report(loadLimits()), 400, 2000);
const refreshTeams = debounce(() => report(loadTeams()), 400, 2000);
const refreshInstances = debounce(() => report(loadInstances()), 1500, 5000);

/** Reads everything again, for when the event stream had to start over without its place. */
function resync() {
  report(loadInstances());
  report(loadLimits());
  report(loadTeams());
  report(loadAudit());
  report(loadPermissions());
  report(loadApprovals());
  if (out.id) report(loadOutputSince());
  if (msgs.id) report(loadMessages());
}

// ---------------------------------------------------------------------------------------
// Notifications on this device
// ---------------------------------------------------------------------------------------

/** Turned on with "Notify me": kept per browser. */
const notes = { on: localStorage.getItem('troupe.notify') === 'on', told: new Set() };

function setNotifyState(text) {
  const node = $('notify-state');
  node.textContent = text;
  node.hidden = !text;
  $('notify-toggle').textContent = notes.on ? 'Notifications on' : 'Notify me';
}

const b64uBytes = (s) => {
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
};

/** Asks the browser for leave to notify, then subscribes it to Web Push where it can. */
async function enableNotifications() {
  if (!('Notification' in window)) {
    setNotifyState('this browser cannot show notifications');
    return;
  }
  const answer = await Notification.requestPermission();
  if (answer !== 'granted') {
    notes.on = false;
    localStorage.removeItem('troupe.notify');
    setNotifyState('notifications are blocked for this page: allow them in the site settings');
    return;
  }
  notes.on = true;
  localStorage.setItem('troupe.notify', 'on');
  setNotifyState('while this page is open');
  try {
    await subscribePush();
    setNotifyState('on this device, also when the page is closed');
  } catch (e) {
    // Web Push needs a secure page (https, or this machine) and a reachable push service.
    setNotifyState(`while this page is open (no Web Push: ${e.message})`);
  }
}

async function disableNotifications() {
  notes.on = false;
  localStorage.removeItem('troupe.notify');
  setNotifyState('');
  const reg = await navigator.serviceWorker?.getRegistration('/');
  const sub = await reg?.pushManager.getSubscription();
  if (sub) {
    await api('DELETE', '/api/push/subscriptions', { endpoint: sub.endpoint });
    await sub.unsubscribe();
  }
}

async function subscribePush() {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) {
    throw new Error('the page is not served over https');
  }
  const reg = await navigator.serviceWorker.register('/sw.js');
  await navigator.serviceWorker.ready;
  const { public_key: key } = await api('GET', '/api/push');
  let sub = await reg.pushManager.getSubscription();
  if (!sub) {
    const subscribing = reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64uBytes(key) });
    const late = new Promise((_, fail) => setTimeout(() => fail(new Error('no push service answered')), 10000));
    sub = await Promise.race([subscribing, late]);
  }
  await api('POST', '/api/push/subscriptions', sub.toJSON());
}

/** A question while this page is open and not in front of the person: one notification per
 *  request (its tag replaces a Web Push one about the same request). */
function notifyBrowser(title, body, tag) {
  if (!notes.on || !('Notification' in window) || Notification.permission !== 'granted') return;
  if (document.hasFocus() || notes.told.has(tag)) return;
  notes.told.add(tag);
  try {
    const n = new Notification(title, { body, tag });
    n.onclick = () => { window.focus(); n.close(); };
  } catch {
    // Where pages may not make notifications themselves (Android), the service worker may.
    navigator.serviceWorker?.ready.then((reg) => reg.showNotification(title, { body, tag })).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------
// Live events
// ---------------------------------------------------------------------------------------

const EVENT_KINDS = ['instance', 'message', 'output', 'interrupt', 'usage', 'audit', 'team', 'settings', 'permission', 'approval'];

const conn = {
  es: null,
  lastId: null,     // the newest event id seen: a replayed event at or below it is skipped
  ready: false,     // until the first GETs are in, events wait in `pending`
  pending: [],
  opened: false,
  firstAfterOpen: false,
  retry: 0,
  timer: null,
  waiters: [],
};

function setConnection(live) {
  const node = $('connection');
  node.textContent = live ? 'live' : 'reconnecting…';
  node.classList.toggle('live', live);
}

function connect() {
  if (signedOut) return;
  // The browser resends Last-Event-ID on its own reconnects; a new EventSource made after
  // the old one gave up has to say where it was itself.
  const url = conn.lastId != null ? `/api/events?after=${enc(conn.lastId)}` : '/api/events';
  const es = new EventSource(url);
  conn.es = es;
  es.onopen = () => {
    const hadNoPlace = conn.opened && conn.lastId == null;
    conn.opened = true;
    conn.firstAfterOpen = true;
    conn.retry = 0;
    setConnection(true);
    conn.waiters.splice(0).forEach((resolve) => resolve());
    if (hadNoPlace && conn.ready) resync(); // events while away cannot be replayed: read again
  };
  es.onerror = () => {
    setConnection(false);
    conn.waiters.splice(0).forEach((resolve) => resolve());
    // CONNECTING: the browser is retrying by itself. CLOSED: it gave up (an HTTP error such
    // as 401, or a reply that is not an event stream), so find out why and start over.
    if (es.readyState === EventSource.CLOSED) reconnectLater();
  };
  for (const kind of EVENT_KINDS) es.addEventListener(kind, (e) => receive(kind, e));
}

function reconnectLater() {
  if (signedOut) return;
  conn.es?.close();
  clearTimeout(conn.timer);
  const delay = Math.min(15000, 1000 * 2 ** conn.retry);
  conn.retry += 1;
  conn.timer = setTimeout(async () => {
    try {
      await api('GET', '/api/limits'); // a 401 here shows the login text and ends this
    } catch (e) {
      if (e instanceof SessionGone) return;
    }
    connect();
  }, delay);
}

/** Resolves when the stream first opens (or fails), or after `ms`, whichever comes first. */
function streamOpened(timeout) {
  return new Promise((resolve) => {
    conn.waiters.push(resolve);
    setTimeout(resolve, timeout);
  });
}

function receive(kind, e) {
  const id = Number(e.lastEventId);
  if (e.lastEventId !== '' && Number.isFinite(id)) {
    const first = conn.firstAfterOpen;
    conn.firstAfterOpen = false;
    if (conn.lastId != null && id <= conn.lastId) {
      // The stream resumes after the id it was given, so an older first event means the
      // server's log started over (a new database): take its ids from here and read again.
      if (!first) return; // replayed: already applied
      conn.lastId = id;
      if (conn.ready) resync();
    } else {
      conn.lastId = id;
    }
  }
  let data;
  try {
    data = JSON.parse(e.data);
  } catch {
    console.warn('troupe: an event that is not JSON', kind, e.data);
    return;
  }
  if (!conn.ready) conn.pending.push([kind, data]);
  else apply(kind, data);
}

function apply(kind, data) {
  switch (kind) {
    case 'instance':
      upsertInstance(data);
      refreshLimits();
      refreshTeams();
      // Waiting on a request this page has not heard of (its event was missed): read the list.
      if (data.state === 'waiting_permission' && !hasPendingFor(data.id)) refreshPermissions();
      break;
    case 'message':
      if (data.instance_id === msgs.id) upsertMessage(data);
      break;
    case 'output':
      onOutput(data);
      break;
    case 'interrupt':
      onInterrupt(data);
      break;
    case 'usage':
      onUsage(data);
      refreshLimits();
      break;
    case 'audit':
      onAudit(data);
      break;
    case 'team':
      refreshTeams();
      break;
    case 'settings':
      refreshLimits();
      break;
    case 'permission':
      if (data.state === 'pending' && !perms.pending.has(requestId(data)) && !perms.settled.has(requestId(data))) {
        notifyBrowser(`${instanceName(data.instance_id)} asks permission`, data.summary ?? '', requestId(data));
      }
      onPermission(data);
      break;
    case 'approval':
      if (data.state === 'pending') {
        notifyBrowser(`${instanceName(data.instance_id)} waits for your approval`, data.tool ?? '', data.id);
      }
      refreshApprovals();
      break;
  }
}

// ---------------------------------------------------------------------------------------
// Wiring and start
// ---------------------------------------------------------------------------------------

function wire() {
  $('error-dismiss').addEventListener('click', () => { $('error').hidden = true; });
  $('notify-toggle').addEventListener('click', () => report(notes.on ? disableNotifications() : enableNotifications()));
  if (notes.on) setNotifyState(window.Notification?.permission === 'granted' ? 'on' : '');
  $('show-ended').checked = state.showEnded;
  $('show-ended').addEventListener('change', (e) => {
    state.showEnded = e.target.checked;
    localStorage.setItem('troupe.showEnded', String(state.showEnded));
    renderTree();
  });

  // The page sends no referrer, so a plain form post would say its origin is `null`, which
  // troupe refuses; a fetch from the page names its origin.
  $('logout-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await fetch('/logout', { method: 'POST', credentials: 'same-origin' });
    } finally {
      location.assign('/');
    }
  });
  $('send-form').addEventListener('submit', (e) => { e.preventDefault(); sendMessage(); });
  $('send-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); sendMessage(); }
  });
  $('interrupt-button').addEventListener('click', interruptSelected);
  $('terminate-button').addEventListener('click', terminateSelected);
  $('resume-button').addEventListener('click', resumeSelected);
  $('spawn-form').addEventListener('submit', (e) => { e.preventDefault(); spawn(e.currentTarget); });

  const box = $('output');
  box.addEventListener('scroll', () => {
    out.stick = atBottom(box);
    if (out.stick) $('jump-latest').hidden = true;
  }, { passive: true });
  // The box shrinks when the messages below it load or grow: keep the end in view.
  new ResizeObserver(() => { if (out.stick) box.scrollTop = box.scrollHeight; }).observe(box);
  $('jump-latest').addEventListener('click', () => {
    box.scrollTop = box.scrollHeight;
    out.stick = true;
    $('jump-latest').hidden = true;
  });
  $('load-earlier').addEventListener('click', () => report(loadEarlier()));
  $('messages-older').addEventListener('click', () => report(loadMessages(msgs.nextBefore)));
  $('audit-older').addEventListener('click', () => report(loadAudit(audit.nextBefore)));

  window.addEventListener('hashchange', () => {
    const id = decodeURIComponent(location.hash.slice(1));
    if (id) select(id);
  });
  new ResizeObserver(debounce(renderChart, 150)).observe($('chart'));
}

/** Once a second: the ages in the tree move; every 30 s the chart's right edge catches up;
 *  every 5 s the fleet's hosts are read again (a heartbeat is no event). */
function tick() {
  for (const span of document.querySelectorAll('#tree .age, #permissions .age')) paintAge(span);
  showPermissionsPanel(); // a decision made here stays in view only a while
  if (Date.now() % 30000 < 1000) renderChart();
  if (Date.now() % 5000 < 1000) loadHosts().catch(() => {});
}

/** The fleet's hosts in the header, each with how it stands; hidden on a single host. */
async function loadHosts() {
  const { hosts = [] } = await api('GET', '/api/hosts');
  const before = fleetHosts();
  state.hostNames = hosts.map((h) => h.name);
  if (fleetHosts() !== before) renderTree();
  const box = document.getElementById('hosts-box');
  box.hidden = hosts.length < 2;
  document.getElementById('hosts').replaceChildren(...hosts.flatMap((h, i) => [
    i ? ' · ' : '',
    el('span', {
      className: `st-${h.state === 'lost' ? 'host_lost' : h.state === 'up' ? 'idle' : 'suspended'}`,
      text: `${h.name} ${h.state}`,
      title: `${h.url} · ${h.instances} live instances${h.this ? ' · this host' : ''}`,
    }),
  ]));
}

async function start() {
  wire();
  renderDetailHead();
  connect();
  // Listen first, then read: anything that happens while the GETs run is in the stream.
  await streamOpened(3000);
  const loads = await Promise.allSettled([loadInstances(), loadUsage(), loadLimits(), loadTeams(), loadAudit(), loadPermissions(), loadApprovals(), loadHosts()]);
  for (const r of loads) if (r.status === 'rejected') showError(r.reason);
  if (signedOut) return;
  conn.ready = true;
  const pending = conn.pending.splice(0);
  for (const [kind, data] of pending) apply(kind, data);
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (wanted) select(wanted);
  setInterval(tick, 1000);
  // For scripts and tests driving the page: the first state is in and events now apply.
  document.body.dataset.ready = '1';
}

start();
