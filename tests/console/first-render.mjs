// Measures how fast the console's Event history renders its first page on an existing data
// directory (for example the 10M-event one `opentrail-bench --keep` leaves behind). A
// measurement, not a test: it prints figures and asserts nothing about time.
//
//   node tests/console/first-render.mjs --data-dir DIR [--bin target/release/opentrail] [--loads 20]
//        [--view 'eventSource=dynamodb.amazonaws.com&resourceName=orders' ...]
//
// It starts `opentrail serve` on DIR, signs in with the admin key from DIR/credentials, then
// loads each view `--loads` times in a fresh navigation and reports, per view, the time from
// the start of the navigation to the first table row in the DOM (p50, p95, max), and the
// row count. The views are the default page and pages filtered the way an investigation
// filters them. Filter values come from the first page, so they exist in any data dir.

import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

import { chromiumArgs, chromiumPath, repo } from './harness.mjs';

const { values: options } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    bin: { type: 'string', default: path.join(repo, 'target', 'release', 'opentrail') },
    loads: { type: 'string', default: '20' },
    port: { type: 'string', default: '18765' },
    // Extra views, as the query string of /console/events (e.g. `eventSource=s3.amazonaws.com`).
    view: { type: 'string', multiple: true, default: [] },
  },
});
if (!options['data-dir']) {
  console.error('usage: node tests/console/first-render.mjs --data-dir DIR [--bin FILE] [--loads N]');
  process.exit(2);
}
const dataDir = options['data-dir'];
const loads = Number(options.loads);
const url = `http://127.0.0.1:${options.port}`;

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

async function startServer() {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('OPENTRAIL_') && !name.startsWith('AWS_')));
  env.RUST_LOG = env.RUST_LOG || 'warn';
  const server = spawn(options.bin, ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${options.port}`], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`opentrail serve exited with ${server.exitCode}`);
    try {
      if ((await fetch(`${url}/health`)).ok) return server;
    } catch { /* not listening yet */ }
    await sleep(200);
  }
  throw new Error('opentrail serve did not become healthy');
}

async function adminKey() {
  const text = await readFile(path.join(dataDir, 'credentials'), 'utf8');
  const value = (name) => new RegExp(`^${name}\\s*=\\s*(\\S+)`, 'm').exec(text)?.[1];
  return { accessKeyId: value('aws_access_key_id'), secretAccessKey: value('aws_secret_access_key') };
}

function percentile(sorted, fraction) {
  return sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * fraction))];
}

async function measure(page, name, query) {
  const times = [];
  let rows = 0;
  for (let i = 0; i < loads; i += 1) {
    const started = performance.now();
    await page.goto(`${url}/console/events${query}`, { waitUntil: 'commit' });
    await page.locator('table.events tbody tr').first().waitFor();
    times.push(performance.now() - started);
    rows = await page.locator('table.events tbody tr').count();
  }
  times.sort((a, b) => a - b);
  const row = { view: name, query, rows, p50_ms: percentile(times, 0.5), p95_ms: percentile(times, 0.95), max_ms: times[times.length - 1] };
  console.log(`| ${name} | ${rows} | ${row.p50_ms.toFixed(0)} | ${row.p95_ms.toFixed(0)} | ${row.max_ms.toFixed(0)} |`);
  return row;
}

const server = await startServer();
const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, timezoneId: 'UTC', locale: 'en-US' });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  const key = await adminKey();
  await page.goto(`${url}/console/`);
  await page.getByLabel('Access key ID').fill(key.accessKeyId);
  await page.getByLabel('Secret access key').fill(key.secretAccessKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/console\/events/);
  await page.locator('table.events tbody tr').first().waitFor();

  // Filter values that exist: taken from the newest event, through the console's own API.
  const newest = await page.evaluate(async () => {
    const response = await fetch('/console/api/events?limit=1', { credentials: 'same-origin' });
    if (!response.ok) return null;
    const body = await response.json();
    return (body.events || body.rows || [])[0] || null;
  });
  const views = [['default view (any time, no filter)', '']];
  for (const name of ['eventSource', 'eventName', 'username']) {
    if (newest?.[name]) views.push([`filtered by ${name}`, `?${name}=${encodeURIComponent(newest[name])}`]);
  }
  for (const query of options.view) views.push([`filtered: ${query}`, `?${query}`]);
  console.log(`# first render of /console/events, ${loads} loads per view, data dir ${dataDir}`);
  console.log('| view | rows | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|');
  for (const [name, query] of views) await measure(page, name, query);
} finally {
  await browser.close();
  server.kill('SIGTERM');
}
