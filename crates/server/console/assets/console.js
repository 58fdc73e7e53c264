// The OpenTrail console: a small single-page app in plain JavaScript, with no
// dependencies and no build step, served from the binary at /console.
//
// Safety rule for this file: event data is written by whoever produced the event, so it
// only ever reaches the page as text (the h() helper appends strings as text nodes);
// nothing here assigns innerHTML. The server's Content-Security-Policy backs this up.
//
// Pages are listed in PAGES. Adding one means
// adding an entry there and its data routes on the server (console/mod.rs).

const BASE = '/console';
const API = BASE + '/api';
const PAGE_SIZE = 50;
const POLL_MS = 1000;

// Every lookup attribute a view can filter on, by its native API name.
const FILTERS = [
  ['eventName', 'Event name'],
  ['eventSource', 'Event source'],
  ['username', 'User name'],
  ['resourceName', 'Resource name'],
  ['resourceType', 'Resource type'],
  ['accessKeyId', 'Access key ID'],
  ['sourceIPAddress', 'Source IP address'],
  ['errorCode', 'Error code'],
  ['invokedBy', 'Invoked by'],
  ['userArn', 'User ARN'],
  ['awsRegion', 'AWS region'],
  ['recipientAccountId', 'Account ID'],
  ['eventCategory', 'Event category'],
  ['eventId', 'Event ID'],
].map(([name, label]) => ({ name, label }));
const FILTER_NAMES = new Set(FILTERS.map((filter) => filter.name));

const RANGES = [
  { value: '', label: 'Any time' },
  { value: '1h', label: 'Last hour', ms: 3600e3 },
  { value: '1d', label: 'Last day', ms: 86400e3 },
  { value: '7d', label: 'Last week', ms: 7 * 86400e3 },
  { value: '90d', label: 'Last 90 days', ms: 90 * 86400e3 },
  { value: 'custom', label: 'Custom range' },
];

const PAGES = [
  { path: '/sign-in', render: renderSignIn, public: true, title: 'Sign in' },
  { path: '/events', render: renderHistory, nav: 'Event history', title: 'Event history' },
  { path: '/query', render: renderQuery, nav: 'Query', title: 'Query' },
  { path: '/event', render: renderDetail, title: 'Event' },
  { path: '/alerts', render: renderAlerts, nav: 'Alerts', title: 'Alerts' },
  { path: '/keys', render: renderKeys, nav: 'Access keys', title: 'Access keys', admin: true },
  { path: '/trails', render: renderTrails, nav: 'Trails', title: 'Trails' },
  { path: '/insights', render: renderInsights, nav: 'Insights', title: 'Insights' },
];

let session = null; // the answer of GET /api/session
let cleanup = () => {}; // stops the current page's timers and observers

// ------------------------------------------------------------------ small helpers

function h(tag, props, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') element.className = value;
    else if (key.startsWith('on')) element.addEventListener(key.slice(2), value);
    else if (value === true) element.setAttribute(key, '');
    else element.setAttribute(key, String(value));
  }
  add(element, ...children);
  return element;
}

function add(element, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

function svgLogo() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 32 32');
  svg.setAttribute('aria-hidden', 'true');
  const parts = [
    ['rect', { width: 32, height: 32, rx: 7, fill: '#0b5cad' }],
    ['path', { d: 'M7 23 L13 15 L18 19 L25 9', fill: 'none', stroke: '#fff', 'stroke-width': 3, 'stroke-linecap': 'round', 'stroke-linejoin': 'round' }],
    ['circle', { cx: 25, cy: 9, r: 2.6, fill: '#ffd166' }],
  ];
  for (const [tag, attributes] of parts) {
    const part = document.createElementNS(ns, tag);
    for (const [name, value] of Object.entries(attributes)) part.setAttribute(name, String(value));
    svg.append(part);
  }
  return svg;
}

function announce(message) {
  const announcer = document.getElementById('announcer');
  announcer.textContent = '';
  // A fresh text node makes screen readers speak a repeated message again.
  setTimeout(() => { announcer.textContent = message; }, 50);
}

function formatTime(iso) {
  // Server times are UTC RFC 3339; shown as "2026-11-25 09:14:03".
  return (iso || '').replace('T', ' ').replace(/\.\d+/, '').replace('Z', '');
}

function relativeTime(iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  if (!Number.isFinite(seconds)) return '';
  const format = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
  const units = [['year', 31536000], ['month', 2592000], ['week', 604800], ['day', 86400], ['hour', 3600], ['minute', 60], ['second', 1]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size || unit === 'second') return format.format(Math.round(seconds / size), unit);
  }
  return '';
}

function shortSource(eventSource) {
  return (eventSource || '').replace(/\.amazonaws\.com$/, '');
}

function eventHref(row) {
  return `${BASE}/event?${new URLSearchParams({ account: row.accountId, id: row.eventId })}`;
}

function historyHref(filters) {
  return `${BASE}/events?${new URLSearchParams(filters)}`;
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain-HTTP origins other than localhost have no clipboard API.
  const area = h('textarea', { class: 'visually-hidden', readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  document.execCommand('copy');
  area.remove();
}

function copyButton(label, text) {
  const button = h('button', { type: 'button', class: 'small' }, label);
  button.addEventListener('click', async () => {
    try {
      await copyText(typeof text === 'function' ? text() : text);
      button.textContent = 'Copied';
      announce('Copied to the clipboard');
    } catch {
      button.textContent = 'Copy failed';
    }
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  return button;
}

// ------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, { method = 'GET', body, text = false } = {}) {
  const headers = {};
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    headers['X-CSRF-Token'] = session ? session.csrfToken : '';
  }
  const response = await fetch(API + path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = await response.text();
  if (!response.ok) {
    let code = '';
    let message = `The server answered ${response.status}.`;
    try {
      const error = JSON.parse(payload);
      code = error.__type || '';
      message = error.message || message;
    } catch { /* not JSON: keep the status message */ }
    if (response.status === 401 && code === 'NotSignedInException') {
      signedOut('Your session has ended. Sign in again.');
    }
    throw new ApiError(response.status, code, message);
  }
  if (text) return payload;
  return payload ? JSON.parse(payload) : null;
}

function signedOut(message) {
  session = null;
  const here = location.pathname + location.search;
  const next = here.startsWith(`${BASE}/sign-in`) ? '' : here;
  navigate(`${BASE}/sign-in?${new URLSearchParams({ ...(next ? { next } : {}), ...(message ? { reason: message } : {}) })}`, { replace: true });
}

// ------------------------------------------------------------------ routing

function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[href]');
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (link.hasAttribute('download') || link.target) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(`${BASE}/`) || url.pathname.startsWith(`${API}/`)) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', () => render());

async function render() {
  cleanup();
  cleanup = () => {};
  let path = location.pathname.slice(BASE.length) || '/';
  if (path === '/' || path === '') {
    history.replaceState(null, '', `${BASE}/events`);
    path = '/events';
  }
  const page = PAGES.find((candidate) => candidate.path === path);
  if (!session) {
    try {
      session = await api('/session');
    } catch (error) {
      showFatal(error);
      return;
    }
  }
  if (!page) {
    layout('Not found', (main) => {
      add(main, h('h1', null, 'Page not found'), h('p', null, h('a', { href: `${BASE}/events` }, 'Go to Event history')));
    });
    return;
  }
  if (!page.public && !session.signedIn) {
    signedOut('');
    return;
  }
  if (page.public && session.signedIn) {
    navigate(safeNext(new URLSearchParams(location.search).get('next')), { replace: true });
    return;
  }
  document.title = `${page.title} · OpenTrail`;
  if (page.public) {
    const app = document.getElementById('app');
    app.replaceChildren();
    page.render(app);
    return;
  }
  layout(page.title, (main) => page.render(main), page);
}

function safeNext(next) {
  // Only paths inside the console: a `next` parameter must not become an open redirect.
  if (next && next.startsWith(`${BASE}/`) && !next.startsWith('//') && !next.startsWith(`${BASE}/sign-in`)) return next;
  return `${BASE}/events`;
}

function layout(title, fill, current) {
  document.title = `${title} · OpenTrail`;
  const app = document.getElementById('app');
  const nav = h('nav', { 'aria-label': 'Main' },
    PAGES.filter((page) => page.nav && (!page.admin || session.role === 'admin')).map((page) =>
      h('a', { href: BASE + page.path, 'aria-current': current === page ? 'page' : null }, page.nav)));
  const signOut = h('button', { type: 'button', class: 'ghost small' }, 'Sign out');
  signOut.addEventListener('click', async () => {
    signOut.disabled = true;
    try {
      await api('/sign-out', { method: 'POST', body: {} });
    } catch { /* signed out either way */ }
    session = null;
    navigate(`${BASE}/sign-in`, { replace: true });
  });
  const header = h('header', { class: 'topbar' },
    h('a', { class: 'brand', href: `${BASE}/events` }, svgLogo(), 'OpenTrail'),
    nav,
    h('div', { class: 'who' },
      h('span', { class: 'key', title: `Signed in with access key ${session.accessKeyId} (account ${session.accountId})` }, session.accessKeyId),
      h('span', { class: 'badge role', title: 'Role of this key' }, session.role),
      signOut));
  const main = h('main', { id: 'main', class: 'page', tabindex: '-1' });
  app.replaceChildren(header, main);
  fill(main);
}

function showFatal(error) {
  const app = document.getElementById('app');
  app.replaceChildren(h('main', { id: 'main', class: 'page' },
    h('p', { class: 'notice error', role: 'alert' }, `The console could not reach the server: ${error.message}`)));
}

function focusHeading(main) {
  // Move focus to the new page's heading so screen readers announce the navigation.
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

// ------------------------------------------------------------------ sign-in

function renderSignIn(app) {
  const params = new URLSearchParams(location.search);
  const error = h('div', { class: 'form-error', role: 'alert', id: 'sign-in-error' }, params.get('reason') || '');
  const keyId = h('input', { id: 'access-key-id', name: 'accessKeyId', autocomplete: 'username', required: true, spellcheck: 'false', autocapitalize: 'off', 'aria-describedby': 'sign-in-error' });
  const secret = h('input', { id: 'secret-access-key', name: 'secretAccessKey', type: 'password', autocomplete: 'current-password', required: true, 'aria-describedby': 'sign-in-error' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'access-key-id' }, 'Access key ID'), keyId),
    h('div', { class: 'field' }, h('label', { for: 'secret-access-key' }, 'Secret access key'), secret),
    error,
    submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!keyId.value.trim() || !secret.value) {
      error.textContent = 'Enter an access key ID and its secret access key.';
      (keyId.value.trim() ? secret : keyId).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      // A stale form token was dropped after a failure: fetch a fresh one first.
      if (!session) session = await api('/session');
      // session holds the pre-sign-in CSRF token until a session replaces it.
      session = await api('/sign-in', { method: 'POST', body: { accessKeyId: keyId.value.trim(), secretAccessKey: secret.value } });
      navigate(safeNext(params.get('next')), { replace: true });
    } catch (failure) {
      error.textContent = failure.message;
      submit.disabled = false;
      submit.textContent = 'Sign in';
      secret.value = '';
      secret.focus();
      if (failure.code === 'InvalidCsrfTokenException') session = null;
    }
  });
  app.append(h('main', { id: 'main', class: 'signin' },
    h('div', { class: 'signin-card' },
      h('div', { class: 'brand' }, svgLogo(), 'OpenTrail'),
      h('h1', null, 'Sign in'),
      h('p', { class: 'muted' }, 'Use an access key with the read or admin role. Ingest keys cannot sign in.'),
      form,
      h('p', { class: 'hint' }, 'The first admin key is in ', h('code', null, 'opentrail-data/credentials'), '. Create more with ', h('code', null, 'opentrail keys create'), '.'))));
  keyId.focus();
}

// ------------------------------------------------------------------ event history

// The view a URL describes: filters, time range, read/write, errors only.
function viewFromUrl(search) {
  const params = new URLSearchParams(search);
  const view = { filters: [], range: params.get('range') || '', start: params.get('start') || '', end: params.get('end') || '', readOnly: params.get('readOnly') || '', errors: params.get('errors') === '1' };
  for (const [name, value] of params) {
    if (FILTER_NAMES.has(name) && value) view.filters.push({ name, value });
  }
  if ((view.start || view.end) && !view.range) view.range = 'custom';
  if (!['', 'true', 'false'].includes(view.readOnly)) view.readOnly = '';
  return view;
}

function viewToUrl(view) {
  const params = new URLSearchParams();
  for (const filter of view.filters) params.append(filter.name, filter.value);
  if (view.range && view.range !== 'custom') params.set('range', view.range);
  if (view.range === 'custom') {
    if (view.start) params.set('start', view.start);
    if (view.end) params.set('end', view.end);
  }
  if (view.readOnly) params.set('readOnly', view.readOnly);
  if (view.errors) params.set('errors', '1');
  const query = params.toString();
  return `${BASE}/events${query ? `?${query}` : ''}`;
}

// The lookup query of a view, with relative ranges fixed at `now`.
function lookupParams(view, now) {
  const params = new URLSearchParams();
  for (const filter of view.filters) params.append(filter.name, filter.value);
  const preset = RANGES.find((range) => range.value === view.range && range.ms);
  if (preset) params.set('start', new Date(now - preset.ms).toISOString());
  if (view.range === 'custom') {
    if (view.start) params.set('start', view.start);
    if (view.end) params.set('end', view.end);
  }
  if (view.readOnly) params.set('readOnly', view.readOnly);
  if (view.errors) params.set('errors', '1');
  return params;
}

// "2026-11-25T09:14:03Z" ⇄ the value of a datetime-local input, both in UTC.
function isoToInput(iso) {
  const time = Date.parse(iso);
  return Number.isFinite(time) ? new Date(time).toISOString().slice(0, 19) : '';
}
function inputToIso(value) {
  if (!value) return '';
  const time = Date.parse(`${value.length === 16 ? `${value}:00` : value}Z`);
  return Number.isFinite(time) ? new Date(time).toISOString().replace('.000Z', 'Z') : '';
}

function renderHistory(main) {
  const view = viewFromUrl(location.search);
  const state = { rows: [], keys: new Set(), cursor: null, tailSeq: null, loading: false, live: true, polling: false, timer: null, stopped: false, lastLoadFailed: false };
  const params = lookupParams(view, Date.now());
  const rangeEnded = view.range === 'custom' && view.end && Date.parse(view.end) < Date.now();

  // ---- filter form
  const rows = h('div', { class: 'filter-rows' });
  const datalists = h('div', { hidden: true });
  const addRow = (filter) => {
    const index = rows.children.length + 1;
    const select = h('select', { 'aria-label': `Filter ${index}: attribute`, name: 'attribute' },
      FILTERS.map((option) => h('option', { value: option.name, selected: option.name === filter.name }, option.label)));
    const input = h('input', { type: 'text', 'aria-label': `Filter ${index}: value`, name: 'value', value: filter.value, placeholder: 'Exact value, e.g. dynamodb.amazonaws.com', spellcheck: 'false', autocapitalize: 'off', list: `values-${filter.name}` });
    select.addEventListener('change', () => input.setAttribute('list', `values-${select.value}`));
    const remove = h('button', { type: 'button', 'aria-label': `Remove filter ${index}`, title: 'Remove filter' }, '×');
    const row = h('div', { class: 'filter-row' }, select, input, remove);
    remove.addEventListener('click', () => {
      row.remove();
      if (!rows.children.length) addRow({ name: 'eventSource', value: '' });
      rows.querySelector('input')?.focus();
    });
    rows.append(row);
    return input;
  };
  for (const filter of view.filters) addRow(filter);
  if (!view.filters.length) addRow({ name: 'eventSource', value: '' });

  const rangeSelect = h('select', { id: 'range', name: 'range' }, RANGES.map((range) => h('option', { value: range.value, selected: range.value === view.range }, range.label)));
  const startInput = h('input', { id: 'start', type: 'datetime-local', step: '1', value: isoToInput(view.start) });
  const endInput = h('input', { id: 'end', type: 'datetime-local', step: '1', value: isoToInput(view.end) });
  const custom = h('div', { class: 'custom-range', hidden: view.range !== 'custom' },
    h('div', { class: 'field' }, h('label', { for: 'start' }, 'From (UTC)'), startInput),
    h('div', { class: 'field' }, h('label', { for: 'end' }, 'To (UTC)'), endInput));
  rangeSelect.addEventListener('change', () => { custom.hidden = rangeSelect.value !== 'custom'; });
  const readOnlySelect = h('select', { id: 'read-only', name: 'readOnly' },
    [['', 'Read and write'], ['true', 'Read-only'], ['false', 'Write only']].map(([value, label]) => h('option', { value, selected: value === view.readOnly }, label)));
  const errorsBox = h('input', { type: 'checkbox', id: 'errors-only', name: 'errors', checked: view.errors });
  const addButton = h('button', { type: 'button', class: 'link' }, '+ Add filter');
  addButton.addEventListener('click', () => {
    const used = new Set([...rows.querySelectorAll('select')].map((select) => select.value));
    const next = FILTERS.find((filter) => !used.has(filter.name)) || FILTERS[0];
    addRow({ name: next.name, value: '' }).focus();
  });
  const formError = h('p', { class: 'form-error', role: 'alert' });
  const form = h('form', { class: 'filters card', role: 'search', 'aria-label': 'Filter events' },
    rows,
    h('div', null, addButton),
    h('div', { class: 'filter-options' },
      h('div', { class: 'field' }, h('label', { for: 'range' }, 'Time range'), rangeSelect),
      custom,
      h('div', { class: 'field' }, h('label', { for: 'read-only' }, 'Read or write'), readOnlySelect),
      h('label', { class: 'check', for: 'errors-only' }, errorsBox, 'Errors only'),
      h('span', { class: 'spacer' }),
      h('a', { class: 'button', href: `${BASE}/events` }, 'Clear'),
      h('button', { type: 'submit', class: 'primary' }, 'Apply filters')),
    formError,
    datalists);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = { filters: [], range: rangeSelect.value, start: '', end: '', readOnly: readOnlySelect.value, errors: errorsBox.checked };
    const seen = new Set();
    for (const row of rows.children) {
      const name = row.querySelector('select').value;
      const value = row.querySelector('input').value.trim();
      if (!value) continue;
      if (seen.has(name)) {
        formError.textContent = `${FILTERS.find((filter) => filter.name === name).label} is used twice; an event has one value per attribute.`;
        row.querySelector('input').focus();
        return;
      }
      seen.add(name);
      next.filters.push({ name, value });
    }
    if (next.range === 'custom') {
      next.start = inputToIso(startInput.value);
      next.end = inputToIso(endInput.value);
      if (next.start && next.end && next.start > next.end) {
        formError.textContent = 'The start of the range is after its end.';
        startInput.focus();
        return;
      }
    }
    navigate(viewToUrl(next));
  });

  // ---- toolbar, table
  const count = h('p', { class: 'count', 'aria-live': 'polite' }, 'Loading events…');
  const liveButton = h('button', { type: 'button', class: 'live small', 'aria-pressed': String(!rangeEnded), title: 'Show new events as they arrive' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), 'Live');
  const exportQuery = (format) => {
    const query = new URLSearchParams(params);
    query.set('format', format);
    return `${API}/export?${query}`;
  };
  const toolbar = h('div', { class: 'toolbar' },
    count,
    h('div', { class: 'actions' },
      liveButton,
      h('a', { class: 'button small', href: exportQuery('csv'), download: '', id: 'export-csv' }, 'Download CSV'),
      h('a', { class: 'button small', href: exportQuery('json'), download: '', id: 'export-json' }, 'Download JSON')));
  const banner = h('div', { class: 'notice banner', hidden: true });
  const columns = [
    ['col-time', 'Time (UTC)'], ['col-name', 'Event name'], ['col-user', 'User name'], ['col-source', 'Event source'],
    ['col-rtype', 'Resource type'], ['col-rname', 'Resource name'], ['col-ip', 'Source IP'], ['col-error', 'Error code'], ['col-auto', 'Automation'],
  ];
  const tbody = h('tbody');
  const table = h('table', { class: 'events' },
    h('caption', { class: 'visually-hidden' }, 'Events, newest first. Select an event name for its details.'),
    h('colgroup', null, columns.map(([name]) => h('col', { class: name }))),
    h('thead', null, h('tr', null, columns.map(([, label]) => h('th', { scope: 'col' }, label)))),
    tbody);
  const empty = h('div', { class: 'empty', hidden: true });
  const moreButton = h('button', { type: 'button' }, 'Load more');
  const foot = h('div', { class: 'table-foot', hidden: true }, moreButton);
  const wrap = h('div', { class: 'table-wrap' }, table, empty, foot);

  add(main,
    h('div', { class: 'page-head' },
      h('div', null, h('h1', null, 'Event history'),
        h('p', { class: 'lead' }, 'Every recorded action, newest first. Filter by any attribute; the URL keeps the view, so it can be shared.'))),
    form, toolbar, banner, wrap);

  tbody.addEventListener('click', (event) => {
    if (event.target.closest('a, button')) return;
    const row = event.target.closest('tr[data-href]');
    // A click that ends a text selection is not a request to open the event.
    if (row && !String(window.getSelection())) navigate(row.dataset.href);
  });

  // Cells keep to one line (the full value is in the title): rows stay scannable and all
  // nine columns fit at 1280 px.
  const cell = (name, label, title, ...content) => {
    const isEmpty = content.every((item) => item === null || item === undefined || item === '');
    return h('td', { class: `${name}${isEmpty ? ' empty-cell' : ''}`, 'data-label': label, title: isEmpty ? null : title },
      isEmpty ? h('span', { class: 'none', 'aria-label': 'none' }, '—') : content);
  };
  const rowElement = (row) => {
    const resources = row.resources || [];
    const first = resources[0] || {};
    const extra = resources.length > 1 ? `${resources.length - 1} more` : '';
    const more = extra ? h('span', { class: 'more' }, `+${resources.length - 1}`) : null;
    const allNames = resources.map((resource) => resource.name).filter(Boolean).join('\n');
    const allTypes = resources.map((resource) => resource.type).filter(Boolean).join('\n');
    return h('tr', { 'data-href': eventHref(row), 'data-key': `${row.accountId}/${row.eventId}` },
      cell('col-time', 'Time (UTC)', row.eventTime, h('time', { datetime: row.eventTime }, formatTime(row.eventTime))),
      cell('col-name', 'Event name', row.eventName, h('a', { href: eventHref(row) }, row.eventName)),
      cell('col-user', 'User name', row.username, row.username),
      // Shortened for the table ("dynamodb", "DynamoDB::Table"); titles and the detail
      // page carry the full values, which are what filters match.
      cell('col-source', 'Event source', row.eventSource, shortSource(row.eventSource)),
      cell('col-rtype', 'Resource type', allTypes, first.type ? [first.type.replace(/^AWS::/, ''), more] : null),
      cell('col-rname', 'Resource name', allNames, first.name ? [first.shortName || first.name, more && more.cloneNode(true)] : null),
      cell('col-ip', 'Source IP', row.sourceIPAddress, row.sourceIPAddress),
      cell('col-error', 'Error code', row.errorCode, row.errorCode),
      cell('col-auto', 'Automation', row.invokedBy ? `Invoked by ${row.invokedBy}` : null,
        row.invokedBy ? shortSource(row.invokedBy) : null));
  };
  const order = (left, right) => (right.eventTimeMs - left.eventTimeMs) || (right.seq - left.seq);

  const suggestions = new Map();
  const suggest = (rowsToAdd) => {
    const take = (name, value) => {
      if (!value) return;
      if (!suggestions.has(name)) suggestions.set(name, new Set());
      const values = suggestions.get(name);
      if (values.size < 200) values.add(value);
    };
    for (const row of rowsToAdd) {
      take('eventName', row.eventName); take('eventSource', row.eventSource); take('username', row.username);
      take('sourceIPAddress', row.sourceIPAddress); take('errorCode', row.errorCode); take('invokedBy', row.invokedBy);
      take('accessKeyId', row.accessKeyId); take('awsRegion', row.region); take('recipientAccountId', row.accountId);
      for (const resource of row.resources || []) { take('resourceType', resource.type); take('resourceName', resource.shortName || resource.name); }
    }
    datalists.replaceChildren(...[...suggestions].map(([name, values]) =>
      h('datalist', { id: `values-${name}` }, [...values].sort().map((value) => h('option', { value })))));
  };

  const updateCount = () => {
    const shown = state.rows.length;
    const more = state.cursor ? ' · scroll for more' : '';
    count.textContent = shown === 0 && state.cursor ? 'No matching events yet in the events searched so far' : `Showing ${shown.toLocaleString('en')} event${shown === 1 ? '' : 's'}${more}`;
    foot.hidden = !state.cursor;
    moreButton.textContent = view.errors && state.cursor ? 'Search further' : 'Load more';
    empty.hidden = shown > 0 || Boolean(state.cursor);
    empty.replaceChildren(h('p', null, 'No events match this view.'), h('p', null, view.filters.length || view.range || view.errors || view.readOnly ? 'Filter values match exactly; try removing a filter or widening the time range.' : 'Send events to POST /v1/events, or with the aws CLI, and they appear here within a second.'));
  };

  const appendRows = (newRows) => {
    const fragment = document.createDocumentFragment();
    for (const row of newRows) {
      const key = `${row.accountId}/${row.eventId}`;
      if (state.keys.has(key)) continue;
      state.keys.add(key);
      state.rows.push(row);
      fragment.append(rowElement(row));
    }
    tbody.append(fragment);
    suggest(newRows);
  };

  // Events from the tail go where their time puts them; an event older than everything
  // loaded so far waits for paging, which will reach it.
  const insertLive = (newRows) => {
    let added = 0;
    for (const row of [...newRows].sort(order).reverse()) {
      const key = `${row.accountId}/${row.eventId}`;
      if (state.keys.has(key)) continue;
      let index = state.rows.findIndex((existing) => order(row, existing) < 0);
      if (index === -1) {
        if (state.cursor) continue;
        index = state.rows.length;
      }
      state.keys.add(key);
      state.rows.splice(index, 0, row);
      const element = rowElement(row);
      element.classList.add('is-new');
      tbody.insertBefore(element, tbody.children[index] || null);
      added += 1;
    }
    if (added) {
      suggest(newRows);
      updateCount();
      announce(`${added} new event${added === 1 ? '' : 's'}`);
    }
  };

  const loadPage = async () => {
    if (state.loading || state.stopped) return;
    state.loading = true;
    moreButton.disabled = true;
    const query = new URLSearchParams(params);
    query.set('limit', String(PAGE_SIZE));
    if (state.cursor) query.set('cursor', state.cursor);
    try {
      const page = await api(`/events?${query}`);
      if (state.stopped) return;
      if (page.tailSeq !== undefined && state.tailSeq === null) state.tailSeq = page.tailSeq;
      state.cursor = page.nextCursor || null;
      appendRows(page.events);
      updateCount();
      state.lastLoadFailed = false;
    } catch (error) {
      if (state.stopped) return;
      state.lastLoadFailed = true;
      count.textContent = '';
      banner.hidden = false;
      banner.replaceChildren(h('span', { role: 'alert' }, error.message));
    } finally {
      state.loading = false;
      moreButton.disabled = false;
    }
  };
  moreButton.addEventListener('click', loadPage);

  // Infinite scroll: the footer coming into view loads the next page.
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting) && state.cursor && !state.lastLoadFailed) loadPage();
  }, { rootMargin: '400px' });
  observer.observe(foot);

  const schedule = () => {
    clearTimeout(state.timer);
    if (!state.stopped && state.live) state.timer = setTimeout(poll, POLL_MS);
  };
  const poll = async () => {
    // One poll at a time: the live toggle and the tab becoming visible also start one.
    if (state.stopped || !state.live || state.polling) return;
    if (document.hidden || state.tailSeq === null) {
      schedule();
      return;
    }
    const query = new URLSearchParams(params);
    query.set('after', String(state.tailSeq));
    state.polling = true;
    try {
      const tail = await api(`/events/tail?${query}`);
      if (state.stopped) return;
      state.tailSeq = tail.tailSeq;
      insertLive(tail.events);
      if (tail.behind && banner.hidden) {
        // The server skipped ahead to the newest events: say so, and keep going.
        const reload = h('button', { type: 'button', class: 'small primary' }, 'Reload view');
        reload.addEventListener('click', () => render());
        banner.hidden = false;
        banner.replaceChildren(h('span', null, 'Events are arriving faster than live updates list them: the newest are shown, some in between may be missing.'), reload);
      }
    } catch (error) {
      if (error.status === 401) return;
      // A failed poll (server restarting, network blip) is retried on the next tick.
    } finally {
      state.polling = false;
    }
    schedule();
  };
  liveButton.addEventListener('click', () => {
    state.live = liveButton.getAttribute('aria-pressed') !== 'true';
    liveButton.setAttribute('aria-pressed', String(state.live));
    announce(state.live ? 'Live updates on' : 'Live updates paused');
    if (state.live) poll();
    else clearTimeout(state.timer);
  });
  if (rangeEnded) {
    state.live = false;
    liveButton.disabled = true;
    liveButton.title = 'This time range has ended: no new events can match it.';
  }
  const onVisible = () => { if (!document.hidden && state.live) poll(); };
  document.addEventListener('visibilitychange', onVisible);

  cleanup = () => {
    state.stopped = true;
    clearTimeout(state.timer);
    observer.disconnect();
    document.removeEventListener('visibilitychange', onVisible);
  };

  updateCount();
  count.textContent = 'Loading events…';
  loadPage().then(() => schedule());
  if (document.activeElement === document.body) focusHeading(main);
}

// ------------------------------------------------------------------ event detail

// Pretty-prints JSON text token by token, without parsing it into numbers and objects,
// so what is shown is exactly what is stored (big numbers, key order, duplicates).
function highlightJson(text) {
  const fragment = document.createDocumentFragment();
  let pretty = '';
  let indent = 0;
  let i = 0;
  const emit = (cls, value) => {
    pretty += value;
    fragment.append(cls ? h('span', { class: cls }, value) : value);
  };
  const newline = () => emit(null, `\n${'  '.repeat(indent)}`);
  const skipSpace = () => { while (i < text.length && ' \t\r\n'.includes(text[i])) i += 1; };
  while (i < text.length) {
    skipSpace();
    if (i >= text.length) break;
    const char = text[i];
    if (char === '{' || char === '[') {
      const close = char === '{' ? '}' : ']';
      i += 1;
      skipSpace();
      if (text[i] === close) {
        emit('p', char + close);
        i += 1;
      } else {
        emit('p', char);
        indent += 1;
        newline();
      }
    } else if (char === '}' || char === ']') {
      indent = Math.max(0, indent - 1);
      newline();
      emit('p', char);
      i += 1;
    } else if (char === ',') {
      emit('p', ',');
      i += 1;
      newline();
    } else if (char === ':') {
      emit('p', ': ');
      i += 1;
    } else if (char === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      const token = text.slice(i, end + 1);
      i = end + 1;
      let look = i;
      while (look < text.length && ' \t\r\n'.includes(text[look])) look += 1;
      emit(text[look] === ':' ? 'k' : 's', token);
    } else {
      const match = /^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
      const token = match ? match[0] : text.slice(i);
      i += token.length || 1;
      emit(token === 'null' ? 'z' : (token === 'true' || token === 'false') ? 'b' : 'n', token);
    }
  }
  return { fragment, pretty };
}

// How the call was made: automation (invokedBy, AWS services, infrastructure tools),
// the console, the CLI, or an SDK, from userIdentity and userAgent.
function howMade(record) {
  const identity = record.userIdentity || {};
  const agent = record.userAgent || '';
  const ip = record.sourceIPAddress || '';
  if (identity.invokedBy) {
    const principal = identity.userName || identity.sessionContext?.sessionIssuer?.userName || 'the caller';
    return { kind: 'Automation', detail: `${identity.invokedBy} acted on behalf of ${principal}` };
  }
  if (identity.type === 'AWSService') return { kind: 'Automation', detail: `AWS service ${identity.invokedBy || ip || agent}` };
  if (/\.amazonaws\.com$/.test(ip) && (agent === ip || !agent)) return { kind: 'Automation', detail: `AWS service ${ip}` };
  const tool = /(Terraform|Pulumi|aws-cdk|CloudFormation|HashiCorp)[/ ]?([\w.-]*)/i.exec(agent);
  if (tool) return { kind: 'Automation', detail: `${tool[1]}${tool[2] ? ` ${tool[2]}` : ''} (infrastructure as code)` };
  if (record.eventType === 'AwsConsoleSignIn') return { kind: 'Console', detail: 'Console sign-in from a web browser' };
  if (/console\.(aws\.)?amazonaws\.com|signin\.amazonaws\.com|AWS Internal|^Mozilla\//.test(agent)) return { kind: 'Console', detail: 'Web console (by hand)' };
  const cli = /^aws-cli\/([\w.]+)/.exec(agent);
  if (cli) {
    const command = /command\/([\w.-]+)/.exec(agent);
    return { kind: 'CLI', detail: `aws-cli ${cli[1]}${command ? `, command ${command[1]}` : ''} (by hand or a script)` };
  }
  if (/^opentrail(-cli)?\//.test(agent)) return { kind: 'CLI', detail: `OpenTrail CLI (${agent.split(' ')[0]})` };
  const sdk = /(Boto3|botocore|aws-sdk-[\w-]+|aws-sdk|AWSPowerShell|aws-chalice)\/([\w.]+)/.exec(agent);
  if (sdk) return { kind: 'SDK', detail: `${sdk[1]} ${sdk[2]} (a program)` };
  if (!agent) return { kind: 'Unknown', detail: 'No user agent was recorded' };
  return { kind: 'Other', detail: agent.length > 80 ? `${agent.slice(0, 80)}…` : agent };
}

function renderDetail(main) {
  const params = new URLSearchParams(location.search);
  const id = params.get('id') || '';
  const account = params.get('account') || '';
  const crumb = h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' }, h('a', { href: `${BASE}/events` }, 'Event history'), ' › ', id);
  const body = h('div', null, h('p', { class: 'loading', role: 'status' }, 'Loading the event…'));
  add(main, crumb, body);
  const query = new URLSearchParams({ id });
  if (account) query.set('account', account);
  api(`/event?${query}`, { text: true }).then((text) => {
    let record;
    try {
      record = JSON.parse(text);
    } catch {
      record = {};
    }
    document.title = `${record.eventName || 'Event'} · OpenTrail`;
    body.replaceChildren(...detailContent(record, text));
    focusHeading(main);
  }).catch((error) => {
    if (error.status === 401) return;
    body.replaceChildren(h('h1', null, 'Event not found'), h('p', { class: 'notice error', role: 'alert' }, error.message), h('p', null, h('a', { href: `${BASE}/events` }, 'Back to Event history')));
  });
}

function filterLink(name, value, text) {
  return h('a', { href: historyHref({ [name]: value }), title: `Show every event with this ${FILTERS.find((filter) => filter.name === name)?.label.toLowerCase() || name}` }, text || value);
}

function detailContent(record, text) {
  const identity = record.userIdentity || {};
  const how = howMade(record);
  const resources = Array.isArray(record.resources) ? record.resources : [];
  const issuer = identity.sessionContext?.sessionIssuer;
  const userName = identity.userName || (identity.arn ? identity.arn.split('/').pop() : '') || identity.invokedBy || '';
  const failed = Boolean(record.errorCode);
  const readOnly = record.readOnly === true || record.readOnly === 'true';

  const row = (term, ...content) => h('div', null, h('dt', null, term), h('dd', null, content));
  const line = (...content) => h('span', { class: 'line' }, content);
  const sub = (...content) => h('span', { class: 'sub' }, content);

  const who = [
    line(userName ? filterLink('username', userName) : h('span', { class: 'none' }, 'unknown'), ' ', h('span', { class: 'muted' }, `(${identity.type || 'unknown identity type'})`)),
    issuer?.userName ? sub('Role ', issuer.userName) : null,
    identity.arn ? sub('ARN ', filterLink('userArn', identity.arn)) : null,
    identity.accessKeyId ? sub('Access key ', filterLink('accessKeyId', identity.accessKeyId)) : null,
    identity.accountId ? sub('Account ', identity.accountId) : null,
  ];
  const what = [
    line(h('strong', null, record.eventName || '?'), ' on ', filterLink('eventSource', record.eventSource || '')),
    ...resources.map((resource) => {
      const name = resource.ARN || resource.ARNPrefix || '';
      return sub(resource.type ? `${resource.type} ` : '', name ? filterLink('resourceName', name) : '');
    }),
    sub(failed ? h('span', { class: 'badge error' }, `Failed: ${record.errorCode}`) : h('span', { class: 'badge ok' }, 'Succeeded'),
      ' ', h('span', { class: `badge ${readOnly ? 'read' : 'write'}` }, readOnly ? 'Read-only' : 'Write')),
    failed && record.errorMessage ? sub(record.errorMessage) : null,
  ];
  const when = [
    line(`${formatTime(record.eventTime)} UTC`),
    sub(relativeTime(record.eventTime), record.eventTime ? ` · ${new Date(record.eventTime).toLocaleString()} local` : ''),
  ];
  const where = [
    line(record.sourceIPAddress ? filterLink('sourceIPAddress', record.sourceIPAddress) : h('span', { class: 'none' }, 'unknown')),
    sub('Region ', record.awsRegion || '?'),
    record.userAgent ? sub('User agent ', h('code', null, record.userAgent)) : null,
  ];
  const howLine = [line(h('span', { class: 'how' }, how.kind)), sub(how.detail)];

  const { fragment, pretty } = highlightJson(text);
  const title = h('div', { class: 'detail-title' },
    h('h1', null, record.eventName || 'Event'),
    record.errorCode ? h('span', { class: 'badge error' }, record.errorCode) : null,
    identity.invokedBy ? h('span', { class: 'badge auto' }, `via ${identity.invokedBy}`) : null);
  return [
    h('div', { class: 'page-head' }, h('div', null, title, h('p', { class: 'lead' }, `${record.eventSource || ''} · event ID `, h('code', null, record.eventID || '')))),
    h('div', { class: 'detail-grid' },
      h('section', { class: 'card summary', 'aria-labelledby': 'summary-heading' },
        h('h2', { id: 'summary-heading' }, 'Summary'),
        h('dl', null, row('Who', who), row('What', what), row('When', when), row('From where', where), row('How', howLine))),
      h('section', { class: 'card', 'aria-labelledby': 'record-heading' },
        h('div', { class: 'card-head' }, h('h2', { id: 'record-heading' }, 'Event record'), copyButton('Copy JSON', pretty)),
        h('pre', { class: 'json', tabindex: '0', 'aria-label': 'Event record as JSON' }, h('code', null, fragment)))),
  ];
}

// ------------------------------------------------------------------ trails

function epochToIso(seconds) {
  // The trails API sends times as epoch seconds, as CloudTrail does.
  return typeof seconds === 'number' && Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : '';
}

function renderTrails(main) {
  const admin = session.role === 'admin';
  add(main, h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Trails'),
    h('p', { class: 'lead' }, 'A trail delivers this account\'s events to a bucket as CloudTrail log files while it is logging.'))));
  const error = h('p', { class: 'form-error', role: 'alert' });
  const list = h('div', null, h('p', { class: 'loading', role: 'status' }, 'Loading trails…'));
  const sections = [];
  let form = null;
  if (admin) {
    const name = h('input', { id: 'trail-name', name: 'name', required: true, maxlength: '128', autocomplete: 'off', 'aria-describedby': 'trail-name-hint' });
    const bucket = h('input', { id: 'trail-bucket', name: 'bucket', required: true, maxlength: '63', autocomplete: 'off' });
    const prefix = h('input', { id: 'trail-prefix', name: 'prefix', maxlength: '200', autocomplete: 'off', placeholder: 'optional' });
    const validation = h('input', { id: 'trail-validation', name: 'validation', type: 'checkbox', checked: true });
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Create trail');
    form = h('form', { class: 'create-form trail-form', 'aria-labelledby': 'create-trail-heading' },
      h('div', { class: 'field' }, h('label', { for: 'trail-name' }, 'Trail name'), name,
        h('span', { id: 'trail-name-hint', class: 'hint' }, '3–128 letters, digits, ., _ or -')),
      h('div', { class: 'field' }, h('label', { for: 'trail-bucket' }, 'Bucket'), bucket),
      h('div', { class: 'field' }, h('label', { for: 'trail-prefix' }, 'Key prefix'), prefix),
      h('div', { class: 'field check' }, validation, h('label', { for: 'trail-validation' }, 'Log file validation (digest files)')),
      submit);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.textContent = '';
      submit.disabled = true;
      try {
        const created = await api('/trails', { method: 'POST', body: { name: name.value, bucket: bucket.value, prefix: prefix.value, logFileValidation: validation.checked } });
        announce(`Trail ${created.Name} created. It is not logging until you start it.`);
        form.reset();
        await load({ refresh: true });
      } catch (failure) {
        error.textContent = failure.message;
      } finally {
        submit.disabled = false;
      }
    });
    sections.push(h('section', { class: 'card', 'aria-labelledby': 'create-trail-heading' }, h('h2', { id: 'create-trail-heading' }, 'Create a trail'), form, error));
  } else {
    // Read keys see the trails but not the controls: the server would refuse them anyway.
    sections.push(h('p', { class: 'notice', role: 'note' }, `Creating, starting and stopping trails needs an admin key; this session's key has the ${session.role} role.`));
  }
  sections.push(h('section', { class: 'card', 'aria-labelledby': 'trails-heading' }, h('h2', { id: 'trails-heading' }, 'Trails'), list, admin ? null : error));
  add(main, h('div', { class: 'keys-grid' }, sections));

  const toggle = async (trail, button) => {
    const operation = trail.Status.IsLogging ? 'stop' : 'start';
    error.textContent = '';
    button.disabled = true;
    try {
      await api(`/trails/${operation}`, { method: 'POST', body: { name: trail.TrailARN } });
      announce(`${trail.Name} ${operation === 'start' ? 'is logging' : 'stopped logging'}`);
      await load({ refresh: true });
      // The clicked button was disabled (which may drop focus): put it back on the trail's new one.
      list.querySelector(`button[data-trail="${CSS.escape(trail.TrailARN)}"]`)?.focus();
    } catch (failure) {
      button.disabled = false;
      error.textContent = failure.message;
    }
  };
  const switchInsights = async (trail, button) => {
    const enabled = !trail.HasInsightSelectors;
    error.textContent = '';
    button.disabled = true;
    try {
      await api('/trails/insights', { method: 'POST', body: { name: trail.TrailARN, enabled } });
      announce(`Insights ${enabled ? 'on' : 'off'} for ${trail.Name}`);
      await load({ refresh: true });
      list.querySelector(`button[data-insights="${CSS.escape(trail.TrailARN)}"]`)?.focus();
    } catch (failure) {
      button.disabled = false;
      error.textContent = failure.message;
    }
  };
  const trailRow = (trail) => {
    const status = trail.Status || {};
    const delivered = epochToIso(status.LatestDeliveryTime);
    const since = epochToIso(status.IsLogging ? status.StartLoggingTime : status.StopLoggingTime);
    const button = admin ? h('button', { type: 'button', class: `${status.IsLogging ? 'danger' : 'primary'} small`, 'data-trail': trail.TrailARN, 'aria-label': `${status.IsLogging ? 'Stop' : 'Start'} logging for ${trail.Name}` }, status.IsLogging ? 'Stop' : 'Start') : null;
    button?.addEventListener('click', () => toggle(trail, button));
    const insightsButton = admin ? h('button', { type: 'button', class: 'small', 'data-insights': trail.TrailARN, 'aria-label': `Turn ${trail.HasInsightSelectors ? 'off' : 'on'} Insights for ${trail.Name}` }, trail.HasInsightSelectors ? 'Turn off' : 'Turn on') : null;
    insightsButton?.addEventListener('click', () => switchInsights(trail, insightsButton));
    return h('tr', { 'data-name': trail.Name },
      h('td', { class: 'col-trail', 'data-label': 'Name' }, h('strong', null, trail.Name), h('span', { class: 'muted mono arn' }, trail.TrailARN)),
      h('td', { 'data-label': 'Status' },
        h('span', { class: `badge ${status.IsLogging ? 'ok' : 'off'}` }, status.IsLogging ? 'Logging' : 'Stopped'),
        since ? h('span', { class: 'muted', title: since }, ` since ${formatTime(since).slice(0, 16)}`) : null),
      h('td', { class: 'mono', 'data-label': 'Destination' }, `${trail.S3BucketName || ''}${trail.S3KeyPrefix ? `/${trail.S3KeyPrefix}` : ''}`),
      h('td', { 'data-label': 'Validation' }, trail.LogFileValidationEnabled ? 'On' : 'Off'),
      h('td', { 'data-label': 'Insights' }, trail.HasInsightSelectors ? h('a', { href: `${BASE}/insights` }, 'On') : 'Off', insightsButton ? ' ' : null, insightsButton),
      h('td', { 'data-label': 'Last delivery' }, delivered ? h('time', { datetime: delivered, title: formatTime(delivered) }, relativeTime(delivered)) : h('span', { class: 'muted' }, 'None yet')),
      h('td', { class: 'col-error', 'data-label': 'Last error' }, status.LatestDeliveryError ? h('span', { class: 'badge error' }, status.LatestDeliveryError) : h('span', { class: 'muted' }, 'None')),
      admin ? h('td', { class: 'col-actions' }, button) : null);
  };
  const load = async ({ refresh = false } = {}) => {
    // The table is rebuilt on every refresh: keep keyboard focus on the same trail's button.
    const focused = list.contains(document.activeElement) ? document.activeElement.getAttribute('data-trail') : null;
    try {
      // Background refreshes are not recorded by self-audit (see console/trails.rs).
      const answer = await api(refresh ? '/trails?refresh=1' : '/trails');
      if (!answer.trails.length) {
        list.replaceChildren(h('p', { class: 'muted' }, admin ? 'No trails yet. Create one to deliver events to a bucket.' : 'No trails yet.'));
        return;
      }
      const headings = ['Name', 'Status', 'Destination', 'Validation', 'Insights', 'Last delivery', 'Last error'];
      if (admin) headings.push('Actions');
      list.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'keys trails' },
        h('caption', { class: 'visually-hidden' }, 'Trails with their logging status'),
        h('thead', null, h('tr', null, headings.map((label) => h('th', { scope: 'col' }, label === 'Actions' ? h('span', { class: 'visually-hidden' }, label) : label)))),
        h('tbody', null, answer.trails.map(trailRow)))));
      if (focused) list.querySelector(`button[data-trail="${CSS.escape(focused)}"]`)?.focus();
    } catch (failure) {
      if (failure.status !== 401) list.replaceChildren(h('p', { class: 'notice error', role: 'alert' }, failure.message));
    }
  };
  load();
  // Delivery happens in the background: refresh the status while the page is open.
  const timer = setInterval(() => { if (!document.hidden) load({ refresh: true }); }, 5_000);
  cleanup = () => clearInterval(timer);
  focusHeading(main);
}

// ------------------------------------------------------------------ insights

const MINUTE_MS = 60_000;

function insightLabel(period) {
  return period.insightType === 'ApiErrorRateInsight' ? `Error rate${period.errorCode ? ` · ${period.errorCode}` : ''}` : 'Call rate';
}

function perMinute(value) {
  return typeof value === 'number' ? `${value >= 10 ? value.toFixed(0) : value.toFixed(2)}/min` : '—';
}

function msToIso(ms) {
  return typeof ms === 'number' ? new Date(ms).toISOString() : '';
}

function renderInsights(main) {
  add(main, h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Insights'),
    h('p', { class: 'lead' }, 'Minutes when an API was called, or failed, far more often than its baseline: CloudTrail Insights, found as events arrive.'))));
  const list = h('div', null, h('p', { class: 'loading', role: 'status' }, 'Loading Insights…'));
  const chart = h('section', { class: 'card insight-chart', 'aria-labelledby': 'timeline-heading', hidden: true });
  add(main, h('section', { class: 'card', 'aria-labelledby': 'periods-heading' }, h('h2', { id: 'periods-heading' }, 'Insights periods'), list), chart);
  let selected = null;

  const showTimeline = async (period, periods, baselineMinutes) => {
    selected = period.sharedEventId;
    for (const row of list.querySelectorAll('tr[data-period]')) row.classList.toggle('selected', row.dataset.period === selected);
    const startMs = period.start ?? period.end;
    const endMs = period.end ?? Date.now();
    // The period with as much context as a chart can show legibly around it.
    const context = Math.min(Math.max(baselineMinutes, 30), 120) * MINUTE_MS;
    const from = Math.floor((startMs - context) / MINUTE_MS) * MINUTE_MS;
    // Never past the current minute: the future has no calls to draw.
    const now = Math.ceil(Date.now() / MINUTE_MS) * MINUTE_MS;
    const to = Math.min(Math.ceil((endMs + context / 2) / MINUTE_MS) * MINUTE_MS, now, from + 2 * 24 * 60 * MINUTE_MS);
    const title = `${shortSource(period.eventSource)} ${period.eventName} · ${insightLabel(period)}`;
    chart.hidden = false;
    chart.replaceChildren(h('h2', { id: 'timeline-heading' }, title), h('p', { class: 'loading', role: 'status' }, 'Loading the timeline…'));
    try {
      const params = new URLSearchParams({ account: period.account, region: period.region, eventSource: period.eventSource, eventName: period.eventName, insightType: period.insightType, start: String(from), end: String(to) });
      if (period.errorCode) params.set('errorCode', period.errorCode);
      const timeline = await api(`/insights/timeline?${params}`);
      const samePeriods = periods.filter((other) => other.account === period.account && other.region === period.region && other.eventSource === period.eventSource && other.eventName === period.eventName && other.insightType === period.insightType && (other.errorCode || '') === (period.errorCode || ''));
      chart.replaceChildren(
        h('h2', { id: 'timeline-heading' }, title),
        h('p', { class: 'muted' }, `${period.insightType === 'ApiErrorRateInsight' ? 'Errors' : 'Calls'} per minute in ${period.account} / ${period.region}, with the band a minute must leave to be unusual (baseline of the ${timeline.baselineMinutes} minutes before it). Insights periods are shaded.`),
        timelineSvg(timeline, samePeriods, from, to),
        h('ul', { class: 'legend' },
          h('li', null, h('span', { class: 'swatch line' }), 'Per minute'),
          h('li', null, h('span', { class: 'swatch band' }), 'Baseline to threshold'),
          h('li', null, h('span', { class: 'swatch period' }), 'Insights period')));
    } catch (failure) {
      if (failure.status !== 401) chart.replaceChildren(h('h2', { id: 'timeline-heading' }, title), h('p', { class: 'notice error', role: 'alert' }, failure.message));
    }
  };

  const periodRow = (period, periods, baselineMinutes) => {
    const started = msToIso(period.start);
    const ended = msToIso(period.end);
    const button = h('button', { type: 'button', class: 'link', 'aria-label': `Show the timeline of ${period.eventName} ${insightLabel(period)}` }, 'Timeline');
    button.addEventListener('click', () => showTimeline(period, periods, baselineMinutes));
    const eventId = period.startEventId || period.endEventId;
    return h('tr', { 'data-period': period.sharedEventId },
      h('td', { 'data-label': 'Type' }, h('span', { class: `badge ${period.insightType === 'ApiErrorRateInsight' ? 'error' : 'auto'}` }, insightLabel(period))),
      h('td', { 'data-label': 'API' }, h('span', { class: 'muted' }, `${shortSource(period.eventSource)} `), h('strong', null, period.eventName)),
      h('td', { 'data-label': 'Started' }, started ? h('time', { datetime: started, title: formatTime(started) }, formatTime(started).slice(0, 16)) : '—'),
      h('td', { 'data-label': 'Ended' }, ended ? h('time', { datetime: ended }, formatTime(ended).slice(11, 16)) : h('span', { class: 'badge warn' }, 'ongoing')),
      h('td', { class: 'num', 'data-label': 'Baseline' }, perMinute(period.baselineAverage)),
      h('td', { class: 'num', 'data-label': 'During' }, perMinute(period.insightAverage)),
      h('td', { class: 'mono', 'data-label': 'Top principal' }, period.topPrincipal || '—'),
      h('td', { class: 'col-actions' }, button,
        eventId ? h('a', { href: eventHref({ accountId: period.account, eventId }), class: 'small-link' }, 'Record') : null));
  };

  const load = async () => {
    try {
      const answer = await api('/insights');
      if (!answer.periods.length) {
        list.replaceChildren(h('div', { class: 'empty' },
          h('p', null, 'No Insights periods in the last 7 days.'),
          h('p', { class: 'muted' }, 'Insights are off until a trail asks for them, for example:'),
          h('pre', { class: 'mono' }, 'aws cloudtrail put-insight-selectors --trail-name TRAIL \\\n  --insight-selectors \'[{"InsightType":"ApiCallRateInsight"},{"InsightType":"ApiErrorRateInsight"}]\''),
          h('p', { class: 'muted' }, `An account needs ${answer.baselineMinutes} minutes of history (its baseline) before its first Insights.`)));
        return;
      }
      list.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'keys insights' },
        h('caption', { class: 'visually-hidden' }, 'Insights periods, newest first'),
        h('thead', null, h('tr', null, ['Type', 'API', 'Started', 'Ended', 'Baseline', 'During', 'Top principal', 'Actions'].map((label) =>
          h('th', { scope: 'col' }, label === 'Actions' ? h('span', { class: 'visually-hidden' }, label) : label)))),
        h('tbody', null, answer.periods.map((period) => periodRow(period, answer.periods, answer.baselineMinutes))))));
      const first = answer.periods.find((period) => period.sharedEventId === selected) || answer.periods[0];
      showTimeline(first, answer.periods, answer.baselineMinutes);
    } catch (failure) {
      if (failure.status !== 401) list.replaceChildren(h('p', { class: 'notice error', role: 'alert' }, failure.message));
    }
  };
  load();
  focusHeading(main);
}

function timelineSvg(timeline, periods, from, to) {
  const ns = 'http://www.w3.org/2000/svg';
  const width = 900;
  const height = 260;
  const pad = { left: 44, right: 12, top: 12, bottom: 28 };
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('class', 'timeline');
  const peak = Math.max(1, ...timeline.points.map(([, count]) => count), ...timeline.band.map(([, , threshold]) => threshold));
  const x = (ms) => pad.left + ((ms - from) / Math.max(1, to - from)) * (width - pad.left - pad.right);
  const y = (value) => height - pad.bottom - (value / peak) * (height - pad.top - pad.bottom);
  const element = (tag, attributes, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  svg.append(Object.assign(document.createElementNS(ns, 'title'), { textContent: `Per-minute counts from ${formatTime(msToIso(from))} to ${formatTime(msToIso(to))}, peak ${Math.max(0, ...timeline.points.map(([, count]) => count))}` }));
  for (const period of periods) {
    const start = period.start ?? period.end;
    const end = period.end ?? to;
    if (end < from || start > to) continue;
    element('rect', { class: 'period', x: x(Math.max(start, from)), y: pad.top, width: Math.max(2, x(Math.min(end, to)) - x(Math.max(start, from))), height: height - pad.top - pad.bottom });
  }
  if (timeline.band.length) {
    const upper = timeline.band.map(([ms, , threshold]) => `${x(ms + MINUTE_MS / 2)},${y(threshold)}`);
    const lower = timeline.band.map(([ms, average]) => `${x(ms + MINUTE_MS / 2)},${y(average)}`).reverse();
    element('polygon', { class: 'band', points: [...upper, ...lower].join(' ') });
  }
  element('polyline', { class: 'counts', points: timeline.points.map(([ms, count]) => `${x(ms + MINUTE_MS / 2)},${y(count)}`).join(' ') });
  element('line', { class: 'axis', x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom });
  element('line', { class: 'axis', x1: pad.left, y1: pad.top, x2: pad.left, y2: height - pad.bottom });
  element('text', { class: 'tick', x: pad.left - 6, y: y(peak) + 4, 'text-anchor': 'end' }, String(Math.round(peak)));
  element('text', { class: 'tick', x: pad.left - 6, y: y(0) + 4, 'text-anchor': 'end' }, '0');
  const ticks = 6;
  for (let i = 0; i <= ticks; i += 1) {
    const ms = from + ((to - from) * i) / ticks;
    element('text', { class: 'tick', x: x(ms), y: height - 8, 'text-anchor': i === 0 ? 'start' : i === ticks ? 'end' : 'middle' }, formatTime(msToIso(ms)).slice(11, 16));
  }
  return svg;
}

// ------------------------------------------------------------------ query (CloudTrail Lake)

const QUERY_POLL_MS = 500;
const RESULTS_PAGE = 200;
const CHART_BARS_MAX = 30;
// A first column of dates or times makes a time series (what date_trunc answers).
const TIME_VALUE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$/;

function formatBytes(bytes) {
  if (typeof bytes !== 'number') return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${unit === 0 ? value : value.toFixed(value >= 10 ? 0 : 1)} ${units[unit]}`;
}

function formatCount(value) {
  return typeof value === 'number' ? value.toLocaleString('en') : '—';
}

function timeValueMs(text) {
  if (typeof text !== 'string' || !TIME_VALUE.test(text)) return NaN;
  let iso = text.replace(' ', 'T');
  if (iso.length > 10 && !/(Z|[+-]\d{2}:?\d{2})$/.test(iso)) iso += 'Z';
  return Date.parse(iso);
}

// What chart two columns make: bars of a category's number, a line over time, or none.
function chartKind(columns, rows) {
  if (columns.length !== 2 || !rows.length) return null;
  if (!rows.every((row) => row[1] !== null && row[1].trim() !== '' && Number.isFinite(Number(row[1])))) return null;
  if (rows.every((row) => Number.isFinite(timeValueMs(row[0])))) return 'time';
  return 'bars';
}

function svgElement(svg, tag, attributes, text) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  svg.append(node);
  return node;
}

function chartSvg(width, height, label) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('class', 'query-chart');
  svg.setAttribute('aria-label', label);
  return svg;
}

// `width` is the space the chart gets, so its text is drawn at its real size.
function barChart(columns, rows, width = 900) {
  const shown = rows.slice(0, CHART_BARS_MAX);
  const rowHeight = 26;
  const labelWidth = Math.round(Math.min(250, width * 0.45));
  const valueWidth = 64;
  // 13 px text is at most about 8.8 px a character: longer labels are cut (whole in the title).
  const labelChars = Math.max(8, Math.floor((labelWidth - 8) / 8.8));
  const height = shown.length * rowHeight + 8;
  const values = shown.map((row) => Number(row[1]));
  const peak = Math.max(0, ...values) || 1;
  const svg = chartSvg(width, height, `${columns[1]} by ${columns[0]}: bar chart of ${shown.length} rows`);
  const scale = (value) => (Math.max(0, value) / peak) * (width - labelWidth - valueWidth);
  shown.forEach((row, index) => {
    const label = row[0] === null ? '(null)' : row[0];
    const y = 4 + index * rowHeight;
    const clipped = label.length > labelChars ? `${label.slice(0, labelChars - 1)}…` : label;
    // One group per row, so hovering the label or the bar shows the whole of both.
    const group = svgElement(svg, 'g', { class: 'row' });
    svgElement(group, 'title', {}, `${label}: ${row[1]}`);
    svgElement(group, 'text', { class: 'label', x: labelWidth - 8, y: y + rowHeight / 2 + 4, 'text-anchor': 'end' }, clipped);
    svgElement(group, 'rect', { class: 'bar', x: labelWidth, y: y + 3, width: Math.max(1, scale(values[index])), height: rowHeight - 6, rx: 2 });
    svgElement(group, 'text', { class: 'value', x: labelWidth + scale(values[index]) + 6, y: y + rowHeight / 2 + 4 }, Number(row[1]).toLocaleString('en'));
  });
  svgElement(svg, 'line', { class: 'axis', x1: labelWidth, y1: 2, x2: labelWidth, y2: height - 2 });
  return svg;
}

function timeChart(columns, rows, width = 900) {
  const points = rows.map((row) => [timeValueMs(row[0]), Number(row[1]), row[0]]).sort((left, right) => left[0] - right[0]);
  const height = Math.round(Math.min(260, Math.max(180, width * 0.3)));
  const pad = { left: 56, right: 16, top: 14, bottom: 30 };
  const from = points[0][0];
  const to = points[points.length - 1][0];
  const peak = Math.max(0, ...points.map(([, value]) => value)) || 1;
  const floor = Math.min(0, ...points.map(([, value]) => value));
  const x = (ms) => (to === from ? (pad.left + width - pad.right) / 2 : pad.left + ((ms - from) / (to - from)) * (width - pad.left - pad.right));
  const y = (value) => height - pad.bottom - ((value - floor) / (peak - floor)) * (height - pad.top - pad.bottom);
  const svg = chartSvg(width, height, `${columns[1]} over ${columns[0]}: line chart of ${points.length} points from ${formatTime(msToIso(from))} to ${formatTime(msToIso(to))}`);
  svgElement(svg, 'line', { class: 'axis', x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom });
  svgElement(svg, 'line', { class: 'axis', x1: pad.left, y1: pad.top, x2: pad.left, y2: height - pad.bottom });
  svgElement(svg, 'text', { class: 'tick', x: pad.left - 6, y: y(peak) + 4, 'text-anchor': 'end' }, peak.toLocaleString('en'));
  svgElement(svg, 'text', { class: 'tick', x: pad.left - 6, y: y(floor) + 4, 'text-anchor': 'end' }, floor.toLocaleString('en'));
  // Ticks at the points when there are few (days, hours), else evenly spaced; labelled
  // with what varies: dates at midnight, times within a day.
  const sameDay = formatTime(msToIso(from)).slice(0, 10) === formatTime(msToIso(to)).slice(0, 10);
  const midnights = points.every(([ms]) => ms % 86400e3 === 0);
  const tickLabel = (ms) => {
    const text = formatTime(msToIso(ms));
    if (midnights) return text.slice(0, 10);
    return sameDay ? text.slice(11, 16) : text.slice(5, 16);
  };
  const room = Math.max(2, Math.floor((width - pad.left - pad.right) / (midnights || sameDay ? 90 : 110)));
  const tickTimes = points.length <= room ? points.map(([ms]) => ms)
    : Array.from({ length: Math.min(5, room) }, (_, i, all) => from + ((to - from) * i) / (all.length - 1));
  tickTimes.forEach((ms, i) => {
    const anchor = tickTimes.length === 1 ? 'middle' : i === 0 ? 'start' : i === tickTimes.length - 1 ? 'end' : 'middle';
    svgElement(svg, 'text', { class: 'tick', x: x(ms), y: height - 9, 'text-anchor': anchor }, tickLabel(ms));
  });
  svgElement(svg, 'polyline', { class: 'series', points: points.map(([ms, value]) => `${x(ms)},${y(value)}`).join(' ') });
  for (const [ms, value, label] of points) {
    const point = svgElement(svg, 'circle', { class: 'point', cx: x(ms), cy: y(value), r: points.length > 60 ? 2 : 3.5 });
    svgElement(point, 'title', {}, `${label}: ${value.toLocaleString('en')}`);
  }
  return svg;
}

function renderQuery(main) {
  const urlId = new URLSearchParams(location.search).get('id');
  const state = { stores: [], samples: [], storeId: '', queryId: null, status: null, columns: [], rows: [], total: 0, timer: null, stopped: false, startedAt: 0, polled: null };
  cleanup = () => { state.stopped = true; clearTimeout(state.timer); };

  add(main, h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Query'),
    h('p', { class: 'lead' }, 'SQL over your events, as CloudTrail Lake runs it: choose an event data store, write a SELECT, run it. Results are kept for 7 days.'))));

  // ---- the editor
  const storeSelect = h('select', { id: 'query-store' }, h('option', { value: '' }, 'Loading…'));
  const insertButton = h('button', { type: 'button', class: 'small', title: 'Insert the event data store ID at the cursor' }, 'Insert ID');
  const sampleSelect = h('select', { id: 'query-sample' }, h('option', { value: '' }, 'Choose a sample…'));
  const sampleBox = h('div', { class: 'sample-box', hidden: true });
  const editor = h('textarea', { id: 'query-sql', class: 'sql', rows: '10', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', 'aria-describedby': 'query-hint', placeholder: 'SELECT eventsource, count(*) AS events\nFROM <event data store ID>\nGROUP BY eventsource\nORDER BY events DESC' });
  const runButton = h('button', { type: 'submit', class: 'primary' }, 'Run');
  const cancelButton = h('button', { type: 'button', class: 'danger', disabled: true }, 'Cancel');
  // Not a live region: it ticks while a query runs; start and end are announced instead.
  const statusLine = h('p', { class: 'query-status', id: 'query-status' });
  const editorError = h('p', { class: 'form-error', role: 'alert' });
  const noStores = h('div', { class: 'notice', hidden: true });
  const form = h('form', { class: 'query-editor', 'aria-label': 'SQL query' },
    h('div', { class: 'editor-options' },
      h('div', { class: 'field' }, h('label', { for: 'query-store' }, 'Event data store'), h('div', { class: 'inline' }, storeSelect, insertButton)),
      h('div', { class: 'field' }, h('label', { for: 'query-sample' }, 'Sample queries'), sampleSelect)),
    sampleBox,
    noStores,
    h('div', { class: 'field' }, h('label', { for: 'query-sql' }, 'SQL statement'), editor,
      h('span', { id: 'query-hint', class: 'hint' }, 'One SELECT; the table is the event data store\'s ID. Ctrl+Enter runs it.')),
    h('div', { class: 'editor-actions' }, runButton, cancelButton, statusLine),
    editorError);

  // ---- saving
  const saveName = h('input', { id: 'save-name', type: 'text', maxlength: '128', spellcheck: 'false', autocomplete: 'off' });
  const saveButton = h('button', { type: 'submit' }, 'Save query');
  const saveForm = h('form', { class: 'save-form', 'aria-label': 'Save the query' },
    h('div', { class: 'field' }, h('label', { for: 'save-name' }, 'Save as'), saveName), saveButton);
  const saveError = h('p', { class: 'form-error', role: 'alert' });

  // ---- results
  const resultsCount = h('p', { class: 'count', 'aria-live': 'polite' });
  const csvLink = h('a', { class: 'button small', id: 'query-csv', download: '', hidden: true }, 'Download CSV');
  const jsonLink = h('a', { class: 'button small', id: 'query-json', download: '', hidden: true }, 'Download JSON');
  const chartBox = h('figure', { class: 'chart-box', hidden: true });
  const resultsBody = h('div', null, h('p', { class: 'muted' }, 'Run a query to see its results here.'));
  const moreButton = h('button', { type: 'button' }, 'Load more rows');
  const resultsFoot = h('div', { class: 'table-foot', hidden: true }, moreButton);
  const results = h('section', { class: 'card results', 'aria-labelledby': 'results-heading' },
    h('div', { class: 'card-head' }, h('h2', { id: 'results-heading' }, 'Results'), h('div', { class: 'actions' }, csvLink, jsonLink)),
    resultsCount, chartBox, resultsBody, resultsFoot);

  // ---- the side: saved queries and history
  const savedList = h('div', null, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  const historyList = h('div', null, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  add(main, h('div', { class: 'query-grid' },
    h('div', { class: 'query-main' },
      h('section', { class: 'card', 'aria-label': 'Editor' }, form, saveForm, saveError),
      results),
    h('aside', { class: 'query-side' },
      h('section', { class: 'card', 'aria-labelledby': 'saved-heading' }, h('h2', { id: 'saved-heading' }, 'Saved queries'), savedList),
      h('section', { class: 'card', 'aria-labelledby': 'history-heading' }, h('h2', { id: 'history-heading' }, 'Recent queries'), historyList))));

  // ---- the store picker: the statement follows the chosen store
  const useStore = (id) => {
    const previous = state.storeId;
    state.storeId = id;
    if (!id) return;
    let text = editor.value.split('$EDS_ID').join(id);
    if (previous && previous !== id) text = text.split(previous).join(id);
    editor.value = text;
  };
  storeSelect.addEventListener('change', () => useStore(storeSelect.value));
  insertButton.addEventListener('click', () => {
    if (!state.storeId) return;
    editor.focus();
    editor.setRangeText(state.storeId, editor.selectionStart, editor.selectionEnd, 'end');
  });

  // ---- samples
  const showSample = () => {
    const sample = state.samples.find((candidate) => candidate.name === sampleSelect.value);
    if (!sample) {
      sampleBox.hidden = true;
      sampleBox.replaceChildren();
      return;
    }
    const inputs = sample.parameters.map((parameter) => h('input', { type: 'text', id: `sample-${parameter.name}`, name: parameter.name, required: true, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': `sample-${parameter.name}-hint` }));
    const use = h('button', { type: 'submit', class: 'small primary' }, 'Use this sample');
    const sampleError = h('p', { class: 'form-error', role: 'alert' });
    const sampleForm = h('form', { class: 'sample-form' },
      sample.parameters.map((parameter, index) => h('div', { class: 'field' },
        h('label', { for: `sample-${parameter.name}` }, parameter.name),
        inputs[index],
        h('span', { class: 'hint', id: `sample-${parameter.name}-hint` }, parameter.description))),
      h('div', null, use),
      sampleError);
    sampleForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const query = new URLSearchParams({ name: sample.name });
      if (state.storeId) query.set('store', state.storeId);
      for (const input of inputs) query.set(input.name, input.value);
      try {
        const rendered = await api(`/query/sample-sql?${query}`);
        editor.value = rendered.sql;
        sampleSelect.value = '';
        showSample();
        editor.focus();
        announce(`Sample "${sample.title}" is in the editor`);
      } catch (failure) {
        sampleError.textContent = failure.message;
      }
    });
    sampleBox.replaceChildren(h('p', null, h('strong', null, sample.title), ' ', h('span', { class: 'muted' }, sample.description)), sampleForm);
    sampleBox.hidden = false;
    (inputs[0] || use).focus();
  };
  sampleSelect.addEventListener('change', showSample);

  // ---- status and results
  const setRunning = (running) => {
    runButton.disabled = running;
    cancelButton.disabled = !running;
  };
  const statusText = (answer) => {
    const stats = answer.statistics || {};
    const parts = [`${formatCount(stats.eventsScanned)} events scanned`, `${formatCount(stats.eventsMatched)} matched`, `${formatBytes(stats.bytesScanned)} scanned`, `${formatCount(stats.executionMs)} ms`];
    switch (answer.status) {
      case 'QUEUED':
      case 'RUNNING':
        return `Running… ${((Date.now() - (state.startedAt || Date.now())) / 1000).toFixed(1)} s`;
      case 'FINISHED':
        return `Finished · ${parts.join(' · ')}`;
      case 'CANCELLED':
        return 'Cancelled';
      case 'TIMED_OUT':
        return `Timed out · ${parts.join(' · ')}`;
      default:
        return `Failed · ${parts.join(' · ')}`;
    }
  };
  const showStatus = (answer) => {
    statusLine.textContent = statusText(answer);
    statusLine.dataset.status = answer.status;
    editorError.textContent = answer.status === 'FAILED' || answer.status === 'TIMED_OUT' ? (answer.errorMessage || 'The query failed.') : '';
  };
  const cell = (value) => {
    if (value === null) return h('td', { class: 'null' }, 'NULL');
    const numeric = value.trim() !== '' && Number.isFinite(Number(value));
    return h('td', { class: numeric ? 'num' : null, title: value.length > 60 ? value : null }, value);
  };
  const numericColumn = (index) => state.rows.length > 0 && state.rows.every((row) => row[index] === null || (row[index].trim() !== '' && Number.isFinite(Number(row[index]))));
  const drawResults = () => {
    const shown = state.rows.length;
    resultsCount.textContent = `${state.total.toLocaleString('en')} row${state.total === 1 ? '' : 's'}${shown < state.total ? `, ${shown.toLocaleString('en')} shown` : ''}`;
    const download = (format) => `${API}/query/download?${new URLSearchParams({ id: state.queryId, format })}`;
    csvLink.href = download('csv');
    jsonLink.href = download('json');
    csvLink.hidden = false;
    jsonLink.hidden = false;
    const kind = chartKind(state.columns, state.rows);
    if (kind) {
      const partial = kind === 'bars' && state.rows.length > CHART_BARS_MAX ? `the first ${CHART_BARS_MAX} rows` : shown < state.total ? `the first ${shown} rows` : null;
      // As wide as the card's content, so labels keep their size on a phone.
      const width = Math.max(300, Math.min(1200, results.clientWidth - 36 || 900));
      chartBox.replaceChildren(kind === 'time' ? timeChart(state.columns, state.rows, width) : barChart(state.columns, state.rows, width),
        h('figcaption', { class: 'muted' }, `${state.columns[1]} ${kind === 'time' ? 'over' : 'by'} ${state.columns[0]}${partial ? ` (${partial})` : ''}`));
      chartBox.hidden = false;
    } else {
      chartBox.hidden = true;
      chartBox.replaceChildren();
    }
    if (!state.columns.length || !state.total) {
      resultsBody.replaceChildren(h('div', { class: 'empty' }, h('p', null, 'The query returned no rows.')));
    } else {
      resultsBody.replaceChildren(h('div', { class: 'table-wrap results-wrap' }, h('table', { class: 'results-table' },
        h('caption', { class: 'visually-hidden' }, 'Query results'),
        h('thead', null, h('tr', null, state.columns.map((column, index) => h('th', { scope: 'col', class: numericColumn(index) ? 'num' : null }, column)))),
        h('tbody', null, state.rows.map((row) => h('tr', null, row.map(cell)))))));
    }
    resultsFoot.hidden = shown >= state.total;
  };
  const clearResults = (message) => {
    state.columns = [];
    state.rows = [];
    state.total = 0;
    resultsCount.textContent = '';
    csvLink.hidden = true;
    jsonLink.hidden = true;
    chartBox.hidden = true;
    chartBox.replaceChildren();
    resultsFoot.hidden = true;
    resultsBody.replaceChildren(h('p', { class: 'muted' }, message));
  };
  const loadResults = async ({ more = false } = {}) => {
    const id = state.queryId;
    const query = new URLSearchParams({ id, offset: String(more ? state.rows.length : 0), limit: String(RESULTS_PAGE) });
    moreButton.disabled = true;
    try {
      const page = await api(`/query/results?${query}`);
      if (state.stopped || id !== state.queryId) return;
      state.columns = page.columns;
      state.rows = more ? state.rows.concat(page.rows) : page.rows;
      state.total = page.totalRows;
      drawResults();
    } catch (failure) {
      if (failure.status !== 401) resultsBody.replaceChildren(h('p', { class: 'notice error', role: 'alert' }, failure.message));
    } finally {
      moreButton.disabled = false;
    }
  };
  moreButton.addEventListener('click', () => loadResults({ more: true }));

  // Follows a query until it ends, then shows its rows.
  const follow = async (id) => {
    clearTimeout(state.timer);
    state.queryId = id;
    try {
      const answer = await api(`/query/status?${new URLSearchParams({ id })}`);
      if (state.stopped || id !== state.queryId) return;
      state.status = answer.status;
      if (!state.startedAt && answer.createdMs) state.startedAt = answer.createdMs;
      showStatus(answer);
      if (answer.status === 'QUEUED' || answer.status === 'RUNNING') {
        setRunning(true);
        state.timer = setTimeout(() => follow(id), QUERY_POLL_MS);
        return;
      }
      setRunning(false);
      announce(statusLine.textContent);
      if (answer.status === 'FINISHED') await loadResults();
      else clearResults(answer.status === 'CANCELLED' ? 'The query was cancelled: it has no results.' : 'The query failed: it has no results.');
      loadHistory();
    } catch (failure) {
      setRunning(false);
      if (failure.status !== 401) editorError.textContent = failure.message;
    }
  };
  // Shows a query of the history (or of the URL): its statement and its results.
  const open = async (id, statement) => {
    history.replaceState(null, '', `${BASE}/query?${new URLSearchParams({ id })}`);
    if (statement !== undefined) editor.value = statement;
    state.startedAt = 0;
    clearResults('Loading…');
    await follow(id);
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    editorError.textContent = '';
    const statement = editor.value.trim();
    if (!statement) {
      editorError.textContent = 'Write a SELECT statement first.';
      editor.focus();
      return;
    }
    if (statement.includes('$EDS_ID')) {
      editorError.textContent = 'Choose an event data store: the statement still says $EDS_ID.';
      storeSelect.focus();
      return;
    }
    const placeholder = /\{\{([A-Z][A-Z0-9_]*)\}\}/.exec(statement);
    if (placeholder) {
      editorError.textContent = `Fill in {{${placeholder[1]}}} first.`;
      editor.focus();
      return;
    }
    setRunning(true);
    statusLine.textContent = 'Starting…';
    try {
      const started = await api('/query/start', { method: 'POST', body: { statement } });
      state.startedAt = Date.now();
      announce('Query started');
      history.replaceState(null, '', `${BASE}/query?${new URLSearchParams({ id: started.queryId })}`);
      clearResults('Running…');
      loadHistory();
      await follow(started.queryId);
    } catch (failure) {
      setRunning(false);
      statusLine.textContent = '';
      if (failure.status !== 401) editorError.textContent = failure.message;
    }
  });
  editor.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (!runButton.disabled) form.requestSubmit();
    }
  });
  cancelButton.addEventListener('click', async () => {
    if (!state.queryId) return;
    cancelButton.disabled = true;
    try {
      await api('/query/cancel', { method: 'POST', body: { queryId: state.queryId } });
      await follow(state.queryId);
      runButton.focus();
    } catch (failure) {
      // It may have ended meanwhile: show what it became.
      if (failure.status !== 401) {
        editorError.textContent = failure.message;
        follow(state.queryId);
      }
    }
  });

  // ---- saved queries
  const loadSaved = async () => {
    try {
      const answer = await api('/query/saved');
      if (!answer.savedQueries.length) {
        savedList.replaceChildren(h('p', { class: 'muted' }, 'None yet. Name a query below the editor and save it; every key of this account sees it.'));
        return;
      }
      savedList.replaceChildren(h('ul', { class: 'query-list' }, answer.savedQueries.map((saved) => {
        const openButton = h('button', { type: 'button', class: 'link', title: saved.statement }, saved.name);
        openButton.addEventListener('click', () => {
          editor.value = saved.statement;
          saveName.value = saved.name;
          editor.focus();
          announce(`Saved query "${saved.name}" is in the editor`);
        });
        const remove = h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete saved query ${saved.name}` }, 'Delete');
        remove.addEventListener('click', async () => {
          if (!window.confirm(`Delete the saved query "${saved.name}" for every key of this account?`)) return;
          remove.disabled = true;
          try {
            await api(`/query/saved/${encodeURIComponent(saved.id)}`, { method: 'DELETE' });
            announce(`Saved query "${saved.name}" deleted`);
            await loadSaved();
            savedList.querySelector('button')?.focus();
          } catch (failure) {
            remove.disabled = false;
            saveError.textContent = failure.message;
          }
        });
        return h('li', { 'data-saved': saved.name },
          h('div', { class: 'item-head' }, openButton, remove),
          h('code', { class: 'statement' }, saved.statement.replace(/\s+/g, ' ')));
      })));
    } catch (failure) {
      if (failure.status !== 401) savedList.replaceChildren(h('p', { class: 'notice error', role: 'alert' }, failure.message));
    }
  };
  saveForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    saveError.textContent = '';
    if (!saveName.value.trim()) {
      saveError.textContent = 'Give the query a name to save it under.';
      saveName.focus();
      return;
    }
    if (!editor.value.trim()) {
      saveError.textContent = 'The editor is empty: there is nothing to save.';
      editor.focus();
      return;
    }
    saveButton.disabled = true;
    try {
      const saved = await api('/query/saved', { method: 'POST', body: { name: saveName.value.trim(), statement: editor.value } });
      announce(`Saved as "${saved.name}"`);
      await loadSaved();
    } catch (failure) {
      saveError.textContent = failure.message;
    } finally {
      saveButton.disabled = false;
    }
  });

  // ---- history
  const STATUS_BADGES = { FINISHED: 'ok', RUNNING: 'auto', QUEUED: 'auto', CANCELLED: 'off', FAILED: 'error', TIMED_OUT: 'error' };
  const loadHistory = async () => {
    try {
      const answer = await api('/query/history');
      if (state.stopped) return;
      if (!answer.queries.length) {
        historyList.replaceChildren(h('p', { class: 'muted' }, 'Queries run over this account\'s event data stores in the last 7 days appear here.'));
        return;
      }
      historyList.replaceChildren(h('ul', { class: 'query-list' }, answer.queries.map((query) => {
        const created = msToIso(query.createdMs);
        const openButton = h('button', { type: 'button', class: 'link statement-link', title: query.statement, 'aria-label': `Open the query of ${formatTime(created)}: ${query.statement.slice(0, 80)}` }, query.statement.replace(/\s+/g, ' '));
        openButton.addEventListener('click', () => open(query.queryId, query.statement));
        return h('li', { 'data-query': query.queryId, class: query.queryId === state.queryId ? 'current' : null },
          h('div', { class: 'item-head' },
            h('span', { class: `badge ${STATUS_BADGES[query.status] || 'off'}` }, query.status.toLowerCase().replace('_', ' ')),
            h('time', { datetime: created, title: `${formatTime(created)} UTC`, class: 'muted' }, relativeTime(created)),
            query.status === 'FINISHED' ? h('span', { class: 'muted' }, `${formatCount(query.resultRows)} row${query.resultRows === 1 ? '' : 's'}`) : null),
          openButton);
      })));
    } catch (failure) {
      if (failure.status !== 401) historyList.replaceChildren(h('p', { class: 'notice error', role: 'alert' }, failure.message));
    }
  };

  // ---- first load
  const loadStores = async () => {
    try {
      const [stores, samples] = await Promise.all([api('/query/data-stores'), api('/query/samples')]);
      if (state.stopped) return;
      state.stores = stores.dataStores;
      state.samples = samples.samples;
      sampleSelect.replaceChildren(h('option', { value: '' }, 'Choose a sample…'), ...state.samples.map((sample) => h('option', { value: sample.name }, sample.title)));
      const enabled = state.stores.filter((store) => store.status === 'ENABLED');
      if (!enabled.length) {
        storeSelect.replaceChildren(h('option', { value: '' }, 'No event data store'));
        storeSelect.disabled = true;
        insertButton.disabled = true;
        noStores.hidden = false;
        noStores.replaceChildren(
          h('p', null, h('strong', null, 'This account has no event data store yet.'), ' A query reads one: a view of the account\'s events, made without copying them. An admin key creates one, for example:'),
          h('pre', { class: 'mono' }, `aws cloudtrail create-event-data-store --name all-events \\\n  --endpoint-url ${location.origin}`));
        return;
      }
      storeSelect.replaceChildren(...enabled.map((store) => h('option', { value: store.id }, `${store.name} (${store.id.slice(0, 8)}…)`)));
      // The store the statement already names, else the first.
      const named = enabled.find((store) => editor.value.includes(store.id)) || enabled[0];
      storeSelect.value = named.id;
      if (!editor.value.trim()) {
        editor.value = `SELECT eventsource, count(*) AS events\nFROM ${named.id}\nGROUP BY eventsource\nORDER BY events DESC`;
      }
      useStore(named.id);
    } catch (failure) {
      if (failure.status !== 401) editorError.textContent = failure.message;
    }
  };
  (async () => {
    if (urlId) {
      // A reload or a shared link: that query's statement, status and results.
      try {
        const answer = await api(`/query/status?${new URLSearchParams({ id: urlId })}`);
        editor.value = answer.statement || '';
      } catch (failure) {
        if (failure.status !== 401) editorError.textContent = failure.message;
      }
    }
    await loadStores();
    if (urlId && editor.value) open(urlId);
  })();
  loadSaved();
  loadHistory();
  focusHeading(main);
}

// ------------------------------------------------------------------ alerts

// Sigma's levels, most severe first; each has its colour in console.css (.badge.level-*).
const LEVELS = ['critical', 'high', 'medium', 'low', 'informational'];

function levelBadge(level) {
  const known = LEVELS.includes(level) ? level : 'informational';
  return h('span', { class: `badge level level-${known}` }, level || 'unknown');
}

function renderAlerts(main) {
  const admin = session.role === 'admin';
  const hideAcknowledged = new URLSearchParams(location.search).get('unacknowledged') === 'true';
  add(main, h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Alerts'),
    h('p', { class: 'lead' }, 'Events that matched a detection rule, newest first. Acknowledge an alert once someone has looked into it.'))));
  const hideBox = h('input', { type: 'checkbox', id: 'hide-acknowledged', checked: hideAcknowledged });
  const count = h('p', { class: 'count', 'aria-live': 'polite' }, 'Loading alerts…');
  const error = h('p', { class: 'form-error', role: 'alert' });
  const list = h('div', null, h('p', { class: 'loading', role: 'status' }, 'Loading alerts…'));
  add(main,
    admin ? null : h('p', { class: 'notice', role: 'note' }, `Acknowledging alerts needs an admin key; this session's key has the ${session.role} role.`),
    h('div', { class: 'toolbar' }, count,
      h('div', { class: 'actions' }, h('label', { class: 'check', for: 'hide-acknowledged' }, hideBox, 'Hide acknowledged'))),
    error,
    list);

  let shown = ''; // the last answer drawn, so an unchanged refresh leaves the table (and focus) alone
  const acknowledge = async (alert, button) => {
    error.textContent = '';
    button.disabled = true;
    try {
      await api(`/alerts/${encodeURIComponent(alert.alertId)}/acknowledge`, { method: 'POST', body: {} });
      announce(`Alert "${alert.ruleTitle}" on ${alert.eventName} acknowledged`);
      // The clicked row may vanish (hidden) or lose its button: keep focus in the table.
      const rows = [...list.querySelectorAll('tbody tr')];
      const next = rows[rows.findIndex((row) => row.dataset.alert === alert.alertId) + 1]?.dataset.alert;
      await load({ refresh: true });
      const target = (next && list.querySelector(`tr[data-alert="${CSS.escape(next)}"] button`)) || list.querySelector('tbody button') || main.querySelector('h1');
      target?.focus();
    } catch (failure) {
      button.disabled = false;
      error.textContent = failure.message;
    }
  };
  const alertRow = (alert) => {
    const button = admin && !alert.acknowledged
      ? h('button', { type: 'button', class: 'small', 'aria-label': `Acknowledge "${alert.ruleTitle}" on ${alert.eventName} at ${formatTime(alert.eventTime)}` }, 'Acknowledge')
      : null;
    button?.addEventListener('click', () => acknowledge(alert, button));
    const status = alert.acknowledged
      ? [h('span', { class: 'badge ok' }, 'Acknowledged'),
        h('span', { class: 'sub muted', title: `${formatTime(alert.acknowledgedAt)} UTC` }, `by ${alert.acknowledgedBy || 'unknown'}${alert.acknowledgedBy === session.accessKeyId ? ' (you)' : ''} · ${relativeTime(alert.acknowledgedAt)}`)]
      : [h('span', { class: 'badge warn' }, 'New'),
        h('span', { class: 'sub muted', title: `Detected ${formatTime(alert.detectedAt)} UTC` }, `detected ${relativeTime(alert.detectedAt)}`)];
    return h('tr', { 'data-alert': alert.alertId, class: alert.acknowledged ? 'acknowledged' : null },
      h('td', { 'data-label': 'Level' }, levelBadge(alert.level)),
      h('td', { class: 'col-rule', 'data-label': 'Rule' }, h('strong', { title: `Rule ${alert.ruleId}` }, alert.ruleTitle)),
      h('td', { class: 'col-event', 'data-label': 'Event' },
        h('a', { href: eventHref({ accountId: alert.recipientAccountId, eventId: alert.eventId }), title: 'Open the event that fired this alert' }, alert.eventName),
        h('span', { class: 'sub muted', title: alert.eventSource }, alert.eventSource)),
      h('td', { class: 'mono', 'data-label': 'Event time (UTC)' }, h('time', { datetime: alert.eventTime }, formatTime(alert.eventTime))),
      h('td', { class: 'mono', 'data-label': 'Account' }, alert.recipientAccountId),
      h('td', { 'data-label': 'Region' }, alert.awsRegion),
      h('td', { class: 'col-status', 'data-label': 'Status' }, status),
      admin ? h('td', { class: 'col-actions' }, button) : null);
  };
  const emptyState = (answer) => {
    if (!answer.rulesRunning) {
      return h('div', { class: 'empty' },
        h('p', null, h('strong', null, 'No detection rules are running, so nothing raises alerts.')),
        h('p', { class: 'muted' }, 'Start the server with a directory of Sigma rules (*.yml, logsource aws/cloudtrail; reloaded when they change), for example the starter rules:'),
        h('pre', { class: 'mono' }, 'opentrail serve --rules rules/cloudtrail'),
        h('p', { class: 'muted' }, 'or add a rule to the running server:'),
        h('pre', { class: 'mono' }, 'opentrail rules add my-rule.yml'));
    }
    const rules = `${answer.rulesRunning} rule${answer.rulesRunning === 1 ? ' is' : 's are'}`;
    return h('div', { class: 'empty' },
      h('p', null, hideAcknowledged ? 'No unacknowledged alerts.' : 'No alerts yet.'),
      h('p', { class: 'muted' }, `${rules} matching every event as it arrives.`));
  };
  const load = async ({ refresh = false } = {}) => {
    const query = new URLSearchParams();
    if (hideAcknowledged) query.set('unacknowledged', 'true');
    // Background refreshes are not recorded by self-audit (see console/alerts.rs).
    if (refresh) query.set('refresh', '1');
    try {
      const text = query.toString();
      const answer = await api(`/alerts${text ? `?${text}` : ''}`);
      const drawn = JSON.stringify(answer);
      if (drawn === shown) return;
      shown = drawn;
      const open = answer.alerts.filter((alert) => !alert.acknowledged).length;
      count.textContent = answer.alerts.length
        ? `${answer.alerts.length} alert${answer.alerts.length === 1 ? '' : 's'}${hideAcknowledged ? ', acknowledged ones hidden' : `, ${open} unacknowledged`}`
        : '';
      if (!answer.alerts.length) {
        list.replaceChildren(h('section', { class: 'card' }, emptyState(answer)));
        return;
      }
      const headings = ['Level', 'Rule', 'Event', 'Event time (UTC)', 'Account', 'Region', 'Status'];
      if (admin) headings.push('Actions');
      const stale = answer.rulesRunning ? [] : [h('p', { class: 'notice', role: 'note' }, 'No detection rules are running now: these alerts were raised by rules since removed or disabled.')];
      list.replaceChildren(...stale,
        h('div', { class: 'table-wrap' }, h('table', { class: 'keys alerts' },
          h('caption', { class: 'visually-hidden' }, 'Alerts, newest first'),
          h('thead', null, h('tr', null, headings.map((label) => h('th', { scope: 'col' }, label === 'Actions' ? h('span', { class: 'visually-hidden' }, label) : label)))),
          h('tbody', null, answer.alerts.map(alertRow)))));
    } catch (failure) {
      if (failure.status !== 401) list.replaceChildren(h('p', { class: 'notice error', role: 'alert' }, failure.message));
    }
  };
  hideBox.addEventListener('change', () => {
    // In the URL, so a reload or a shared link keeps the view.
    navigate(`${BASE}/alerts${hideBox.checked ? '?unacknowledged=true' : ''}`, { replace: true });
    document.getElementById('hide-acknowledged')?.focus();
  });
  load();
  // Rules match in the background: show new alerts while the page is open.
  const timer = setInterval(() => { if (!document.hidden) load({ refresh: true }); }, 3_000);
  cleanup = () => clearInterval(timer);
  focusHeading(main);
}

// ------------------------------------------------------------------ access keys

function renderKeys(main) {
  add(main, h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Access keys'),
    h('p', { class: 'lead' }, 'Keys sign API calls and console sign-ins. A secret is shown once, when its key is created.'))));
  if (session.role !== 'admin') {
    add(main, h('p', { class: 'notice', role: 'alert' }, `Managing keys needs an admin key; this session's key has the ${session.role} role.`));
    focusHeading(main);
    return;
  }
  const role = h('select', { id: 'new-role' }, [['read', 'read — look up events'], ['ingest', 'ingest — write events'], ['admin', 'admin — everything']].map(([value, label]) => h('option', { value }, label)));
  const account = h('input', { id: 'new-account', inputmode: 'numeric', placeholder: session.accountId, pattern: '[0-9]{12}', maxlength: '12', 'aria-describedby': 'account-hint' });
  const created = h('div', { 'aria-live': 'polite' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create key');
  const form = h('form', { class: 'create-form' },
    h('div', { class: 'field' }, h('label', { for: 'new-role' }, 'Role'), role),
    h('div', { class: 'field' }, h('label', { for: 'new-account' }, 'Account ID'), account, h('span', { id: 'account-hint', class: 'visually-hidden' }, 'Twelve digits; empty means this key\'s account')),
    submit);
  const tbody = h('tbody');
  const list = h('div', null, h('p', { class: 'loading', role: 'status' }, 'Loading keys…'));
  add(main, h('div', { class: 'keys-grid' },
    h('section', { class: 'card', 'aria-labelledby': 'create-heading' }, h('h2', { id: 'create-heading' }, 'Create a key'), form, error, created),
    h('section', { class: 'card', 'aria-labelledby': 'list-heading' }, h('h2', { id: 'list-heading' }, 'Keys'), list)));

  const load = async () => {
    try {
      const answer = await api('/keys');
      const keys = [...answer.keys].sort((left, right) => (left.status === right.status ? right.createdAt.localeCompare(left.createdAt) : left.status === 'Active' ? -1 : 1));
      tbody.replaceChildren(...keys.map(keyRow));
      list.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'keys' },
        h('caption', { class: 'visually-hidden' }, 'Access keys'),
        h('thead', null, h('tr', null, ['Access key ID', 'Role', 'Account', 'Status', 'Created', ''].map((label) => h('th', { scope: 'col' }, label)))),
        tbody)));
    } catch (failure) {
      if (failure.status !== 401) list.replaceChildren(h('p', { class: 'notice error', role: 'alert' }, failure.message));
    }
  };
  const keyRow = (key) => {
    const revoke = key.status === 'Active' ? h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke ${key.accessKeyId}` }, 'Revoke') : null;
    revoke?.addEventListener('click', async () => {
      const own = key.accessKeyId === session.accessKeyId;
      const question = `Revoke ${key.accessKeyId}? Its signatures, token and console sessions stop working at once.${own ? ' This is the key you are signed in with: you will be signed out.' : ''}`;
      if (!window.confirm(question)) return;
      revoke.disabled = true;
      try {
        await api(`/keys/${encodeURIComponent(key.accessKeyId)}`, { method: 'DELETE' });
        announce(`${key.accessKeyId} revoked`);
        if (own) signedOut('You revoked the key you were signed in with.');
        else load();
      } catch (failure) {
        revoke.disabled = false;
        error.textContent = failure.message;
      }
    });
    return h('tr', null,
      h('td', { class: 'mono', 'data-label': 'Access key ID' }, key.accessKeyId, key.accessKeyId === session.accessKeyId ? h('span', { class: 'muted' }, ' (you)') : null),
      h('td', { 'data-label': 'Role' }, key.role),
      h('td', { class: 'mono', 'data-label': 'Account' }, key.accountId),
      h('td', { 'data-label': 'Status' }, h('span', { class: `badge ${key.status === 'Active' ? 'ok' : 'error'}` }, key.status), key.revokedAt ? h('span', { class: 'muted' }, ` ${formatTime(key.revokedAt).slice(0, 16)}`) : null),
      h('td', { 'data-label': 'Created' }, formatTime(key.createdAt).slice(0, 16)),
      h('td', null, revoke));
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const accountId = account.value.trim();
    if (accountId && !/^\d{12}$/.test(accountId)) {
      error.textContent = 'An account ID is exactly 12 digits.';
      account.focus();
      return;
    }
    submit.disabled = true;
    try {
      const key = await api('/keys', { method: 'POST', body: accountId ? { role: role.value, accountId } : { role: role.value } });
      const items = [['Access key ID', key.accessKeyId], ['Secret access key', key.secretAccessKey]];
      if (key.token) items.push(['Bearer token', key.token]);
      created.replaceChildren(h('div', { class: 'created' },
        h('strong', null, `Created a ${key.role} key for account ${key.accountId}. Copy the secret now: it is not shown again.`),
        h('dl', null, items.map(([label, value]) => [h('dt', null, label), h('dd', null, value), copyButton('Copy', value)]))));
      load();
    } catch (failure) {
      error.textContent = failure.message;
    } finally {
      submit.disabled = false;
    }
  });
  load();
  focusHeading(main);
}

render();
