// End-to-end tests of the web console in Debian's Chromium against a real
// `opentrail serve`. They follow the classic investigation: someone deleted the DynamoDB
// table `orders`; who was it, from where, and by hand or by automation?
//
// Run with scripts/console-test (it builds the binary, installs Chromium and npm deps).
// OPENTRAIL_BIN names the binary; screenshots go to target/console-screenshots/.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chromium } from 'playwright-core';

import {
  OpenTrail, chromiumArgs, chromiumPath, cloudFormationRunInstances, ensureScreenshotDir, repo,
  parameterWrites, screenshotDir, seedEvents,
} from './harness.mjs';

const bin = process.env.OPENTRAIL_BIN || path.join(repo, 'target', 'debug', 'opentrail');
const SEEDED = 300;

let server;
let browser;
let admin; // { context, page } signed in as the admin, 1280 px wide
const externalRequests = [];
const pageErrors = [];

async function newPage(width = 1280, height = 860) {
  const context = await browser.newContext({ viewport: { width, height }, acceptDownloads: true, timezoneId: 'UTC', locale: 'en-US' });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  // The console must make no request outside its own origin.
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith(server.url) && !url.startsWith('data:') && !url.startsWith('blob:')) externalRequests.push(url);
  });
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  page.on('console', (message) => {
    // A CSP violation or a script error, not a 401 the page expects and handles.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) pageErrors.push(message.text());
  });
  return { context, page };
}

async function signIn(page, key) {
  await page.goto(`${server.url}/console/`);
  await page.waitForURL(/\/console\/sign-in/);
  await page.getByLabel('Access key ID').fill(key.accessKeyId);
  await page.getByLabel('Secret access key').fill(key.secretAccessKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/console\/events/);
  await page.locator('table.events tbody tr').first().waitFor();
}

async function shot(page, name, options = {}) {
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`), ...options });
}

async function rowTexts(page) {
  return page.locator('table.events tbody tr').evaluateAll((rows) => rows.map((row) => row.innerText.replace(/\s+/g, ' ')));
}

describe('OpenTrail console', () => {
  before(async () => {
    await ensureScreenshotDir();
    // Rules are loaded by the Alerts test; until then the rules directory is empty.
    server = await new OpenTrail(bin).start({ rules: true });
    await server.ingestFile(path.join(repo, 'examples', 'delete-table.json'));
    await server.ingest([cloudFormationRunInstances()]);
    await server.ingest(seedEvents(SEEDED));
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
    admin = await newPage();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('signs in with an access key and refuses a wrong secret', async () => {
    const { page } = admin;
    await page.goto(`${server.url}/console/`);
    await page.waitForURL(/\/console\/sign-in/);
    await shot(page, 'sign-in');
    await page.getByLabel('Access key ID').fill(server.admin.accessKeyId);
    await page.getByLabel('Secret access key').fill('not-the-secret');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'wrong' }).waitFor();
    assert.match(page.url(), /sign-in/);

    await page.getByLabel('Secret access key').fill(server.admin.secretAccessKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/console\/events/);
    await page.locator('table.events tbody tr').first().waitFor();
    assert.equal(await page.locator('table.events tbody tr').count(), 50, 'a first page of 50');
    await shot(page, 'history');
    const overflow = await page.locator('.table-wrap').evaluate((wrap) => wrap.scrollWidth - wrap.clientWidth);
    const widths = await page.locator('table.events thead th').evaluateAll((cells) => cells.map((cell) => `${cell.innerText}=${Math.round(cell.getBoundingClientRect().width)}`));
    assert.ok(overflow <= 0, `every column fits at 1280 px (${overflow}px too wide: ${widths.join(', ')})`);
    const cookies = await admin.context.cookies();
    const sessionCookie = cookies.find((cookie) => cookie.name === 'opentrail_session');
    assert.ok(sessionCookie, 'a session cookie');
    assert.equal(sessionCookie.httpOnly, true);
    assert.equal(sessionCookie.sameSite, 'Strict');
    assert.equal(await page.evaluate(() => document.cookie.includes('opentrail_session')), false, 'not readable by scripts');
  });

  it('renders the first page of the history, newest first', async (t) => {
    const { page } = admin;
    const started = Date.now();
    await page.goto(`${server.url}/console/events`);
    await page.locator('table.events tbody tr').first().waitFor();
    // Reported, never asserted: this machine is shared, and timings belong to the bench.
    t.diagnostic(`first page rendered in ${Date.now() - started} ms`);
    const times = await page.locator('table.events tbody time').evaluateAll((nodes) => nodes.map((node) => node.getAttribute('datetime')));
    assert.equal(times.length, 50, 'one page of 50 events before any scrolling');
    assert.deepEqual(times, [...times].sort().reverse(), 'newest first');
  });

  it('pages through the history with infinite scroll', async () => {
    const { page } = admin;
    await page.locator('.table-foot').scrollIntoViewIfNeeded();
    await page.waitForFunction(() => document.querySelectorAll('table.events tbody tr').length >= 100);
    const times = await page.locator('table.events tbody time').evaluateAll((nodes) => nodes.map((node) => node.getAttribute('datetime')));
    const sorted = [...times].sort().reverse();
    assert.deepEqual(times, sorted, 'newest first');
  });

  it('filters by event source and resource name to find the DeleteTable event', async () => {
    const { page } = admin;
    await page.goto(`${server.url}/console/events`);
    await page.getByLabel('Filter 1: attribute').selectOption('eventSource');
    await page.getByLabel('Filter 1: value').fill('dynamodb.amazonaws.com');
    await page.getByRole('button', { name: '+ Add filter' }).click();
    await page.getByLabel('Filter 2: attribute').selectOption('resourceName');
    await page.getByLabel('Filter 2: value').fill('orders');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL(/eventSource=dynamodb.amazonaws.com&resourceName=orders/);
    await page.locator('table.events tbody tr').first().waitFor();
    const rows = await rowTexts(page);
    assert.equal(rows.length, 1, `only the DeleteTable event: ${rows.join(' | ')}`);
    assert.match(rows[0], /DeleteTable/);
    assert.match(rows[0], /alice/);
    assert.match(rows[0], /203\.0\.113\.7/);
    assert.match(rows[0], /DynamoDB::Table/);
    assert.equal(await page.locator('td.col-rtype').first().getAttribute('title'), 'AWS::DynamoDB::Table', 'the full type on hover');
    assert.equal(await page.locator('td.col-source').first().getAttribute('title'), 'dynamodb.amazonaws.com');
    admin.filteredUrl = page.url();
    admin.filteredRows = rows;
    await shot(page, 'history-filtered');
  });

  it('combines a time preset, write-only and errors-only, and custom dates', async () => {
    const { page } = admin;
    await page.goto(`${server.url}/console/events`);
    await page.getByLabel('Time range').selectOption('7d');
    await page.getByLabel('Read or write').selectOption('false');
    await page.getByLabel('Errors only').check();
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL(/range=7d&readOnly=false&errors=1/);
    await page.locator('table.events tbody tr').first().waitFor();
    const errors = await page.locator('table.events tbody td.col-error').allInnerTexts();
    assert.ok(errors.length > 0 && errors.every((text) => /\w+/.test(text) && text !== '—'), `only failed calls: ${errors}`);
    const names = await page.locator('table.events tbody td.col-name').allInnerTexts();
    assert.ok(names.every((name) => !/^(Get|List|Describe)/.test(name)), `only writes: ${names}`);

    await page.goto(`${server.url}/console/events`);
    await page.getByLabel('Time range').selectOption('custom');
    await page.getByLabel('From (UTC)').fill('2026-11-25T09:14:00');
    await page.getByLabel('To (UTC)').fill('2026-11-25T09:14:10');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL(/start=2026-11-25T09%3A14%3A00Z&end=2026-11-25T09%3A14%3A10Z/);
    await page.locator('table.events tbody tr').first().waitFor();
    assert.deepEqual(await page.locator('table.events tbody td.col-name').allInnerTexts(), ['DeleteTable']);
  });

  it('opens the event detail: the IP, the IAM user, and how it was done', async () => {
    const { page } = admin;
    await page.goto(admin.filteredUrl);
    await page.getByRole('link', { name: 'DeleteTable' }).click();
    await page.waitForURL(/\/console\/event\?/);
    const summary = page.locator('section.summary');
    await summary.waitFor();
    const text = await summary.innerText();
    assert.match(text, /203\.0\.113\.7/);
    assert.match(text, /alice/);
    assert.match(text, /IAMUser/);
    assert.match(text, /CLI/, 'made with the aws CLI');
    assert.match(text, /arn:aws:dynamodb:us-east-1:123456789012:table\/orders/);
    const userLink = summary.getByRole('link', { name: 'alice', exact: true });
    assert.match(await userLink.getAttribute('href'), /username=alice/);
    const json = await page.locator('pre.json').innerText();
    assert.match(json, /"eventName": "DeleteTable"/);
    assert.ok(await page.locator('pre.json .k').count() > 10, 'keys are highlighted');
    await shot(page, 'detail', { fullPage: true });

    await userLink.click();
    await page.waitForURL(/\/console\/events\?username=alice/);
    await page.locator('table.events tbody tr').first().waitFor();
    const rows = await rowTexts(page);
    assert.ok(rows.every((row) => row.includes('alice')), 'the link filters to the same user');
  });

  it('works from the keyboard and labels every control', async () => {
    const { page } = admin;
    await page.goto(admin.filteredUrl);
    await page.locator('table.events tbody tr').first().waitFor();
    const unlabelled = await page.locator('form.filters select, form.filters input:not([type=hidden])').evaluateAll((controls) =>
      controls.filter((control) => !(control.labels && control.labels.length) && !control.getAttribute('aria-label')).map((control) => control.outerHTML));
    assert.deepEqual(unlabelled, []);
    assert.equal(await page.locator('a.skip-link').getAttribute('href'), '#main');
    await page.getByLabel('Filter 2: value').focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(/resourceName=orders/);
    await page.getByRole('link', { name: 'DeleteTable' }).focus();
    await page.keyboard.press('Enter');
    await page.locator('section.summary').waitFor();
    assert.match(page.url(), /\/console\/event\?/);
  });

  it('reproduces a view from a URL with filters', async () => {
    const { context } = admin;
    const page = await context.newPage();
    await page.goto(admin.filteredUrl);
    await page.locator('table.events tbody tr').first().waitFor();
    assert.deepEqual(await rowTexts(page), admin.filteredRows);
    assert.equal(await page.getByLabel('Filter 1: value').inputValue(), 'dynamodb.amazonaws.com');
    assert.equal(await page.getByLabel('Filter 2: value').inputValue(), 'orders');
    await page.close();
  });

  it('exports the filtered view and the whole history as CSV, without a 50-event cap', async () => {
    const { page } = admin;
    await page.goto(admin.filteredUrl);
    await page.locator('table.events tbody tr').first().waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#export-csv').click()]);
    assert.match(download.suggestedFilename(), /^opentrail-events-.*\.csv$/);
    const csv = await readFile(await download.path(), 'utf8');
    const lines = csv.trim().split('\r\n');
    assert.equal(lines[0], 'Event time,Event name,User name,Event source,Resource type,Resource name,Source IP address,Error code,Invoked by,Read only,Access key ID,AWS region,Account ID,Event ID');
    assert.equal(lines.length, 2);
    assert.equal(lines[1], '"2026-11-25T09:14:03Z","DeleteTable","alice","dynamodb.amazonaws.com","AWS::DynamoDB::Table","arn:aws:dynamodb:us-east-1:123456789012:table/orders","203.0.113.7","","","false","AKIAEXAMPLEALICE0001","us-east-1","123456789012","2f6f2b6e-1c3a-4a8e-9d0b-5e7f3a1c9d20"');

    await page.goto(`${server.url}/console/events`);
    await page.locator('table.events tbody tr').first().waitFor();
    const [all] = await Promise.all([page.waitForEvent('download'), page.locator('#export-csv').click()]);
    const allLines = (await readFile(await all.path(), 'utf8')).trim().split('\r\n');
    assert.ok(allLines.length - 1 >= SEEDED + 2, `every event, not a page: ${allLines.length - 1}`);

    const [json] = await Promise.all([page.waitForEvent('download'), page.locator('#export-json').click()]);
    const records = JSON.parse(await readFile(await json.path(), 'utf8')).Records;
    assert.ok(records.length >= SEEDED + 2, `every event as JSON: ${records.length}`);
    assert.ok(records.some((record) => record.eventID === '2f6f2b6e-1c3a-4a8e-9d0b-5e7f3a1c9d20'));
  });

  it('shows automation: RunInstances by CloudFormation on behalf of bob', async () => {
    const { page } = admin;
    await page.goto(`${server.url}/console/events?eventName=RunInstances`);
    await page.locator('table.events tbody tr').first().waitFor();
    const rows = await rowTexts(page);
    assert.equal(rows.length, 1);
    assert.match(rows[0], /bob/);
    assert.match(rows[0], /cloudformation/);
    await page.getByRole('link', { name: 'RunInstances' }).click();
    const summary = page.locator('section.summary');
    await summary.waitFor();
    const text = await summary.innerText();
    assert.match(text, /Automation/);
    assert.match(text, /cloudformation\.amazonaws\.com acted on behalf of bob/);
    assert.match(text, /bob/);
    await shot(page, 'detail-automation');
  });

  it('shows a new event live, within 2 seconds, without a reload', async (t) => {
    const { page } = admin;
    await page.goto(`${server.url}/console/events?eventSource=dynamodb.amazonaws.com`);
    await page.locator('table.events tbody tr').first().waitFor();
    const navigations = [];
    page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) navigations.push(frame.url()); });
    const live = {
      ...cloudFormationRunInstances(),
      eventSource: 'dynamodb.amazonaws.com',
      eventName: 'DeleteBackup',
      eventID: `live-${Date.now()}`,
      eventTime: new Date().toISOString(),
      userIdentity: { type: 'IAMUser', accountId: '123456789012', userName: 'mallory', arn: 'arn:aws:iam::123456789012:user/mallory' },
      sourceIPAddress: '198.51.100.66',
      resources: [{ type: 'AWS::DynamoDB::Backup', ARN: 'arn:aws:dynamodb:us-east-1:123456789012:table/orders/backup/01' }],
    };
    await server.ingest([live]);
    const acknowledged = Date.now();
    const row = page.locator('table.events tbody tr', { hasText: 'DeleteBackup' });
    await row.waitFor({ timeout: 2000 });
    const latency = Date.now() - acknowledged;
    t.diagnostic(`the live event appeared ${latency} ms after its ingest was acknowledged`);
    assert.ok(latency < 2000, `appeared after ${latency} ms`);
    assert.match(await row.innerText(), /mallory/);
    assert.deepEqual(navigations, [], 'no reload');
    // A late event with an old eventTime, outside what is loaded, must not break the view.
    await server.ingest([{ ...live, eventID: `late-${Date.now()}`, eventName: 'DeleteBackup', eventTime: '2020-01-01T00:00:00Z' }]);
    await page.waitForTimeout(1500);
    assert.equal(await page.locator('table.events tbody tr', { hasText: 'DeleteBackup' }).count() >= 1, true);
  });

  it('manages keys as an admin: list, create, revoke', async () => {
    const { page } = admin;
    page.on('dialog', (dialog) => dialog.accept());
    await page.getByRole('link', { name: 'Access keys' }).click();
    await page.waitForURL(/\/console\/keys/);
    await page.locator('table.keys tbody tr').first().waitFor();
    const before = await page.locator('table.keys tbody tr').count();
    assert.ok(before >= 3, 'admin, ingest and read keys');
    await page.getByLabel('Role').selectOption('read');
    await page.getByRole('button', { name: 'Create key' }).click();
    const created = page.locator('.created');
    await created.waitFor();
    const createdText = await created.innerText();
    assert.match(createdText, /Secret access key/);
    await page.waitForFunction((count) => document.querySelectorAll('table.keys tbody tr').length === count + 1, before);
    await shot(page, 'keys', { fullPage: true });
    const newId = /OTAK\w+/.exec(createdText)?.[0];
    assert.ok(newId, createdText);
    await page.getByRole('button', { name: `Revoke ${newId}` }).click();
    await page.locator('table.keys tbody tr', { hasText: newId }).filter({ hasText: 'Revoked' }).waitFor();
  });

  it('does not show the keys page to a read key, and the server refuses it too', async () => {
    const reader = await newPage();
    await signIn(reader.page, server.readKey);
    const nav = reader.page.getByRole('navigation', { name: 'Main' });
    assert.equal(await nav.getByRole('link', { name: 'Access keys' }).count(), 0);
    await reader.page.goto(`${server.url}/console/keys`);
    await reader.page.getByRole('alert').filter({ hasText: 'admin key' }).waitFor();
    assert.equal(await reader.page.locator('table.keys').count(), 0);
    const answer = await reader.context.request.get(`${server.url}/console/api/keys`);
    assert.equal(answer.status(), 403);
    await reader.context.close();
  });

  it('manages trails as an admin: create, start, see it logging, stop; a read key only sees them', async () => {
    const { page } = admin;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Trails' }).click();
    await page.waitForURL(/\/console\/trails/);
    await page.getByLabel('Trail name').fill('console-trail');
    await page.getByLabel('Bucket').fill('console-bucket');
    await page.getByLabel('Key prefix').fill('audit');
    assert.equal(await page.getByLabel('Log file validation (digest files)').isChecked(), true);
    await page.getByRole('button', { name: 'Create trail' }).click();
    const row = page.locator('table.trails tbody tr[data-name="console-trail"]');
    await row.getByText('Stopped').waitFor();
    assert.match(await row.innerText(), /console-bucket\/audit/);
    await page.getByRole('button', { name: 'Start logging for console-trail' }).click();
    await row.getByText('Logging', { exact: true }).waitFor();
    assert.match(await row.innerText(), /since \d{4}-\d\d-\d\d \d\d:\d\d/);
    // An event arriving while it logs is delivered (the harness sets a 1 s interval); the
    // page refreshes the status by itself and shows when.
    await server.ingest(seedEvents(1).map((record) => ({ ...record, eventID: crypto.randomUUID() })));
    await row.locator('td[data-label="Last delivery"] time').waitFor({ timeout: 20_000 });
    assert.match(await row.locator('td[data-label="Last error"]').innerText(), /None/);
    await shot(page, 'trails', { fullPage: true });
    // Keyboard focus stays on the trail's button, which now stops it.
    const focused = await page.evaluate(() => document.activeElement?.getAttribute('aria-label'));
    assert.equal(focused, 'Stop logging for console-trail');
    await page.getByRole('button', { name: 'Stop logging for console-trail' }).click();
    await row.getByText('Stopped').waitFor();
    // A duplicate name shows the API's own error in the form.
    await page.getByLabel('Trail name').fill('console-trail');
    await page.getByLabel('Bucket').fill('console-bucket');
    await page.getByRole('button', { name: 'Create trail' }).click();
    await page.getByRole('alert').filter({ hasText: 'already exists' }).waitFor();

    const reader = await newPage();
    await signIn(reader.page, server.readKey);
    await reader.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Trails' }).click();
    const readerRow = reader.page.locator('table.trails tbody tr[data-name="console-trail"]');
    await readerRow.getByText('Stopped').waitFor();
    assert.equal(await reader.page.getByRole('button', { name: 'Create trail' }).count(), 0, 'no create form');
    assert.equal(await reader.page.getByLabel('Trail name').count(), 0, 'no create form');
    assert.equal(await reader.page.locator('table.trails button').count(), 0, 'no start or stop buttons');
    await reader.page.getByText('needs an admin key').waitFor();
    // With the session's own CSRF token, so it is the role that the server refuses.
    const refused = await reader.page.evaluate(async () => {
      const { csrfToken } = await (await fetch('/console/api/session')).json();
      const answer = await fetch('/console/api/trails/start', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken }, body: '{"name":"console-trail"}' });
      return [answer.status, (await answer.json()).__type];
    });
    assert.deepEqual(refused, [403, 'AccessDeniedException']);
    await shot(reader.page, 'trails-read', { fullPage: true });
    await reader.context.close();

    const phone = await newPage(390, 844);
    await signIn(phone.page, server.admin);
    await phone.page.goto(`${server.url}/console/trails`);
    await phone.page.locator('table.trails tbody tr[data-name="console-trail"]').waitFor();
    const width = await phone.page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `no horizontal scrolling on trails (${width}px)`);
    await shot(phone.page, 'trails-390', { fullPage: true });
    await phone.context.close();
  });

  it('turns Insights on for a trail and shows the burst as a period on its timeline', async () => {
    const { page } = admin;
    await page.goto(`${server.url}/console/trails`);
    await page.getByLabel('Trail name').fill('insights-trail');
    await page.getByLabel('Bucket').fill('insights-bucket');
    await page.getByRole('button', { name: 'Create trail' }).click();
    const row = page.locator('table.trails tbody tr[data-name="insights-trail"]');
    await row.getByText('Stopped').waitFor();
    await page.getByRole('button', { name: 'Start logging for insights-trail' }).click();
    await row.getByText('Logging', { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Turn on Insights for insights-trail' }).click();
    await page.getByRole('button', { name: 'Turn off Insights for insights-trail' }).waitFor();
    assert.match(await row.locator('td[data-label="Insights"]').innerText(), /On/);
    await shot(page, 'trails-insights', { fullPage: true });

    // Eight quiet minutes (two writes each), then mallory writes 40 in one minute: one batch,
    // as an import would bring them, so the analysis reads history and burst together.
    const burstMinute = Math.floor(Date.now() / 60_000) * 60_000 - 3 * 60_000;
    const records = [];
    for (let minutesBefore = 8; minutesBefore >= 1; minutesBefore -= 1) {
      records.push(...parameterWrites(burstMinute - minutesBefore * 60_000, 2, 'ci', `base-${minutesBefore}`));
    }
    records.push(...parameterWrites(burstMinute, 40, 'mallory', 'burst'));
    await server.ingest(records);

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Insights' }).click();
    await page.waitForURL(/\/console\/insights/);
    const period = page.locator('table.insights tbody tr').filter({ hasText: 'PutParameter' });
    // The analysis closes the burst's minute and the next one a few seconds after they end.
    for (let attempt = 0; attempt < 60 && !(await period.locator('td[data-label="Ended"] time').count()); attempt += 1) {
      await new Promise((resolve) => { setTimeout(resolve, 1_000); });
      await page.reload();
      await page.locator('table.insights, .empty').first().waitFor();
    }
    const text = await period.innerText();
    assert.match(text, /Call rate/);
    assert.match(text, /user\/mallory/, 'the principal that caused it');
    assert.match(text, /40\/min/, 'the burst minute');
    // The timeline: calls per minute, the baseline band, the period shaded.
    const chart = page.locator('.insight-chart svg.timeline');
    await chart.waitFor();
    assert.equal(await chart.locator('rect.period').count(), 1);
    assert.equal(await chart.locator('polygon.band').count(), 1);
    const points = (await chart.locator('polyline.counts').getAttribute('points')).trim().split(' ');
    assert.ok(points.length >= 30, `a point per minute (${points.length})`);
    await shot(page, 'insights', { fullPage: true });
    // The Start record opens in the event detail, with its insightDetails.
    await period.getByRole('link', { name: 'Record' }).click();
    await page.waitForURL(/\/console\/event\?/);
    await page.getByText('AwsCloudTrailInsight').first().waitFor();
    await page.getByText('insightDetails').first().waitFor();
  });

  it('raises alerts from rules, opens the event, acknowledges one and hides it', async () => {
    const { page } = admin;
    await page.goto(`${server.url}/console/events`);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Alerts' }).click();
    await page.waitForURL(/\/console\/alerts/);
    // No rule yet: the page says how to load some.
    const empty = page.locator('.empty');
    await empty.getByText('No detection rules are running').waitFor();
    assert.match(await empty.innerText(), /opentrail serve --rules rules\/cloudtrail/);
    await shot(page, 'alerts-empty');

    // The server reloads its rules directory within seconds; the page refreshes itself and
    // says the rules run. New rules match the events stored from then on.
    await server.addRules(['dynamodb_table_deleted.yml', 's3_bucket_deleted.yml']);
    await empty.getByText('2 rules are matching every event as it arrives.').waitFor({ timeout: 30_000 });
    const writeBy = (user, fields) => ({
      ...cloudFormationRunInstances(),
      userIdentity: { type: 'IAMUser', principalId: `AIDA${user.toUpperCase()}EXAMPLE`, arn: `arn:aws:iam::123456789012:user/${user}`, accountId: '123456789012', accessKeyId: `AKIAEXAMPLE${user.toUpperCase()}01`, userName: user },
      eventTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      sourceIPAddress: '198.51.100.23',
      responseElements: null,
      ...fields,
    });
    await server.ingest([writeBy('mallory', {
      eventSource: 'dynamodb.amazonaws.com',
      eventName: 'DeleteTable',
      eventTime: '2026-11-25T10:02:41Z',
      userAgent: 'aws-cli/2.15.0 Python/3.11.6 Linux/6.1 command/dynamodb.delete-table',
      requestParameters: { tableName: 'invoices' },
      requestID: 'DELETETABLEINVOICES01',
      eventID: '5b0f4c1e-8a2d-4e6f-9c3b-7d1a2e4f6a80',
      resources: [{ accountId: '123456789012', type: 'AWS::DynamoDB::Table', ARN: 'arn:aws:dynamodb:us-east-1:123456789012:table/invoices' }],
    })]);
    const tableAlert = page.locator('table.alerts tbody tr', { hasText: 'DeleteTable' });
    await tableAlert.waitFor({ timeout: 30_000 });
    await server.ingest([writeBy('bob', {
      eventSource: 's3.amazonaws.com',
      eventName: 'DeleteBucket',
      awsRegion: 'eu-west-1',
      userAgent: 'aws-cli/2.15.0 Python/3.11.6 Linux/6.1 command/s3api.delete-bucket',
      requestParameters: { bucketName: 'quarterly-reports' },
      requestID: 'DELETEBUCKET00000001',
      eventID: 'a1e7b0c2-5d4e-4f3a-9b8c-0d1e2f3a4b5c',
      resources: [{ accountId: '123456789012', type: 'AWS::S3::Bucket', ARN: 'arn:aws:s3:::quarterly-reports' }],
    })]);
    const bucketAlert = page.locator('table.alerts tbody tr', { hasText: 'DeleteBucket' });
    await bucketAlert.waitFor({ timeout: 30_000 });

    // Newest first: the bucket's alert came from a later event of the log.
    const rows = await page.locator('table.alerts tbody tr').allInnerTexts();
    assert.equal(rows.length, 2, rows.join(' | '));
    assert.match(rows[0], /DeleteBucket/);
    const tableText = (await tableAlert.innerText()).replace(/\s+/g, ' ');
    for (const expected of [/high/i, /DynamoDB table deleted/, /dynamodb\.amazonaws\.com/, /2026-11-25 10:02:41/, /123456789012/, /us-east-1/, /New/]) {
      assert.match(tableText, expected);
    }
    assert.match((await bucketAlert.innerText()).replace(/\s+/g, ' '), /medium.*S3 bucket deleted.*s3\.amazonaws\.com.*eu-west-1/is);
    // Each level has its colour.
    const colour = (row) => row.locator('.badge.level').evaluate((badge) => getComputedStyle(badge).backgroundColor);
    assert.notEqual(await colour(tableAlert), await colour(bucketAlert));
    await shot(page, 'alerts', { fullPage: true });
    const overflow = await page.locator('.table-wrap').evaluate((wrap) => wrap.scrollWidth - wrap.clientWidth);
    assert.ok(overflow <= 0, `the alerts table fits at 1280 px (${overflow}px too wide)`);

    // The event name opens the event that fired the alert.
    await tableAlert.getByRole('link', { name: 'DeleteTable' }).click();
    await page.waitForURL(/\/console\/event\?/);
    const summary = page.locator('section.summary');
    await summary.waitFor();
    assert.match(await summary.innerText(), /mallory/);
    assert.match(await summary.innerText(), /arn:aws:dynamodb:us-east-1:123456789012:table\/invoices/);
    await page.goBack();
    await page.waitForURL(/\/console\/alerts$/);

    // Acknowledge it: the row says by whom, and the button is gone.
    await tableAlert.getByRole('button', { name: /^Acknowledge "DynamoDB table deleted"/ }).click();
    await tableAlert.getByText('Acknowledged').waitFor();
    assert.match(await tableAlert.innerText(), new RegExp(server.admin.accessKeyId));
    assert.equal(await tableAlert.getByRole('button').count(), 0);
    assert.match(await bucketAlert.innerText(), /New/, 'only that alert');
    await shot(page, 'alerts-acknowledged', { fullPage: true });

    // Hide acknowledged: only the bucket's alert is left, in the URL and after a reload.
    await page.getByLabel('Hide acknowledged').check();
    await page.waitForURL(/\/console\/alerts\?unacknowledged=true/);
    await bucketAlert.waitFor();
    assert.equal(await tableAlert.count(), 0);
    await page.reload();
    await bucketAlert.waitFor();
    assert.equal(await tableAlert.count(), 0);
    assert.equal(await page.getByLabel('Hide acknowledged').isChecked(), true);
    await shot(page, 'alerts-hidden', { fullPage: true });
    await page.getByLabel('Hide acknowledged').uncheck();
    await tableAlert.waitFor();

    // The acknowledgement is in the audit trail like any other management call.
    await page.goto(`${server.url}/console/events?eventName=AcknowledgeAlert`);
    const audited = page.locator('table.events tbody tr');
    await audited.first().waitFor();
    assert.equal(await audited.count(), 1);

    // A read key sees the alerts but cannot acknowledge them, in the page or the API.
    const reader = await newPage();
    await signIn(reader.page, server.readKey);
    await reader.page.goto(`${server.url}/console/alerts`);
    await reader.page.locator('table.alerts tbody tr', { hasText: 'DeleteBucket' }).waitFor();
    assert.equal(await reader.page.locator('table.alerts button').count(), 0);
    await reader.page.getByText('Acknowledging alerts needs an admin key').waitFor();
    const refused = await reader.page.evaluate(async () => {
      const { csrfToken } = await (await fetch('/console/api/session')).json();
      const { alerts } = await (await fetch('/console/api/alerts')).json();
      const bucket = alerts.find((alert) => alert.eventName === 'DeleteBucket');
      const answer = await fetch(`/console/api/alerts/${encodeURIComponent(bucket.alertId)}/acknowledge`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken }, body: '{}' });
      return [answer.status, (await answer.json()).__type];
    });
    assert.deepEqual(refused, [403, 'AccessDeniedException']);
    await reader.context.close();

    const phone = await newPage(390, 844);
    await signIn(phone.page, server.admin);
    await phone.page.goto(`${server.url}/console/alerts`);
    await phone.page.locator('table.alerts tbody tr').first().waitFor();
    const width = await phone.page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `no horizontal scrolling on alerts (${width}px)`);
    await shot(phone.page, 'alerts-390', { fullPage: true });
    await phone.context.close();
  });

  it('is usable at 390 px', async () => {
    const phone = await newPage(390, 844);
    await signIn(phone.page, server.admin);
    const width = await phone.page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `no horizontal scrolling (${width}px)`);
    await shot(phone.page, 'history-390');
    await phone.page.goto(admin.filteredUrl);
    await phone.page.getByRole('link', { name: 'DeleteTable' }).click();
    await phone.page.locator('section.summary').waitFor();
    const detailWidth = await phone.page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(detailWidth <= 390, `no horizontal scrolling on the detail (${detailWidth}px)`);
    await shot(phone.page, 'detail-390', { fullPage: true });
    await phone.context.close();
  });

  it('runs SQL over an event data store: a group-by as a table and a chart, CSV, samples, saved queries, cancel', async () => {
    const created = await server.cloudtrail('CreateEventDataStore', { Name: 'console-events', TerminationProtectionEnabled: false });
    const storeId = created.EventDataStoreArn.split('/').pop();
    const { context, page } = await newPage();
    page.on('dialog', (dialog) => dialog.accept());
    await signIn(page, server.admin);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Query' }).click();
    await page.waitForURL(/\/console\/query/);
    // The picker chose the only store and the editor names it.
    await page.waitForFunction(() => document.getElementById('query-store')?.value.length === 36);
    assert.equal(await page.getByLabel('Event data store').inputValue(), storeId);
    assert.match(await page.getByLabel('SQL statement').inputValue(), new RegExp(storeId));
    const finished = page.locator('#query-status[data-status="FINISHED"]');
    const run = async (sql) => {
      await page.getByLabel('SQL statement').fill(sql);
      await page.getByRole('button', { name: 'Run', exact: true }).click();
      await page.waitForURL(/\/console\/query\?id=/);
      await finished.waitFor({ timeout: 60_000 });
    };

    // A group-by over the seeded events, counted independently here.
    const expected = new Map();
    for (const record of seedEvents(SEEDED)) expected.set(record.eventSource, (expected.get(record.eventSource) || 0) + 1);
    const groupBy = `SELECT eventsource, count(*) AS calls\nFROM ${storeId}\nWHERE eventid LIKE '00000000-0000-4000-8000-%'\nGROUP BY eventsource\nORDER BY calls DESC, eventsource`;
    await run(groupBy);
    assert.match(await page.locator('#query-status').innerText(), /Finished · [\d,]+ events scanned · [\d,]+ matched · .+ scanned · [\d,]+ ms/);
    const table = page.locator('table.results-table');
    await table.waitFor();
    assert.deepEqual(await table.locator('thead th').allInnerTexts(), ['eventsource', 'calls']);
    const rows = await table.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((cell) => cell.innerText)));
    assert.deepEqual(new Map(rows.map(([source, calls]) => [source, Number(calls)])), expected);
    // The chart: a bar per service, in the table's order.
    const bars = page.locator('svg.query-chart rect.bar');
    assert.equal(await bars.count(), expected.size);
    assert.equal(await page.locator('svg.query-chart text.label').first().textContent(), rows[0][0]);
    await shot(page, 'query', { fullPage: true });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the Query page fits at 1280 px (${overflow}px too wide)`);

    // CSV of every row.
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#query-csv').click()]);
    assert.match(download.suggestedFilename(), /^opentrail-query-[0-9a-f]{8}\.csv$/);
    const csv = (await readFile(await download.path(), 'utf8')).trim().split('\r\n');
    assert.equal(csv[0], '"eventsource","calls"');
    assert.deepEqual(csv.slice(1), rows.map(([source, calls]) => `"${source}","${calls}"`));

    // A reload shows the same query: the URL names it.
    await page.reload();
    await finished.waitFor();
    await page.locator('svg.query-chart rect.bar').first().waitFor();
    assert.equal(await page.getByLabel('SQL statement').inputValue(), groupBy);
    assert.equal(await page.locator('table.results-table tbody tr').count(), expected.size);

    // A time bucket and a number: a line.
    await run(`SELECT date_trunc('day', eventtime) AS day, count(*) AS calls\nFROM ${storeId}\nWHERE eventid LIKE '00000000-0000-4000-8000-%'\nGROUP BY 1\nORDER BY 1`);
    await page.locator('svg.query-chart polyline.series').waitFor();
    assert.ok(await page.locator('svg.query-chart circle.point').count() >= 7, 'a point per day of the seeded week');
    assert.equal(await page.locator('svg.query-chart rect.bar').count(), 0);
    await shot(page, 'query-time', { fullPage: true });

    // A sample: its SQL with the store's id filled in; it runs.
    await page.getByLabel('Sample queries').selectOption({ label: 'Top API calls' });
    await page.getByRole('button', { name: 'Use this sample' }).click();
    await page.waitForFunction(() => { const sql = document.getElementById('query-sql')?.value ?? ''; return !sql.includes('$EDS_ID') && sql.includes('LIMIT 25'); });
    const sampleSql = await page.getByLabel('SQL statement').inputValue();
    assert.match(sampleSql, new RegExp(`FROM ${storeId}`));
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.waitForURL(/\/console\/query\?id=/);
    await page.locator('table.results-table thead th', { hasText: 'eventname' }).waitFor({ timeout: 60_000 });
    await finished.waitFor();
    assert.equal(await page.locator('svg.query-chart').count(), 0, 'three columns make no chart');

    // Save, reload, open the saved query.
    await page.getByLabel('SQL statement').fill(groupBy);
    await page.getByLabel('Save as').fill('calls by service');
    await page.getByRole('button', { name: 'Save query' }).click();
    const saved = page.locator('li[data-saved="calls by service"]');
    await saved.waitFor();
    await page.reload();
    await saved.waitFor();
    await page.getByLabel('SQL statement').fill('');
    await saved.getByRole('button', { name: 'calls by service', exact: true }).click();
    assert.equal(await page.getByLabel('SQL statement').inputValue(), groupBy);

    // A query that never ends, cancelled.
    await page.getByLabel('SQL statement').fill(`WITH RECURSIVE forever AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM forever)\nSELECT count(*) AS n FROM forever CROSS JOIN (SELECT count(*) AS c FROM ${storeId}) e`);
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.locator('#query-status[data-status="RUNNING"]').waitFor({ timeout: 30_000 });
    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    await page.locator('#query-status[data-status="CANCELLED"]').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Cancel', exact: true }).isDisabled(), true);
    await page.getByText('The query was cancelled').waitFor();
    // The history lists every query of the page, newest first.
    const history = page.locator('section[aria-labelledby="history-heading"] li');
    await history.first().getByText('cancelled').waitFor();
    assert.ok(await history.count() >= 4, `the history (${await history.count()})`);
    await shot(page, 'query-cancelled', { fullPage: true });
    // From the history, the group-by again, with its results.
    await history.filter({ hasText: "eventsource, count(*) AS calls" }).first().getByRole('button').click();
    await page.locator('svg.query-chart rect.bar').first().waitFor();
    assert.equal(await page.getByLabel('SQL statement').inputValue(), groupBy);

    // The saved query goes.
    await saved.getByRole('button', { name: 'Delete saved query calls by service' }).click();
    await saved.waitFor({ state: 'detached' });

    // StartQuery and CancelQuery are in the audit trail.
    await page.goto(`${server.url}/console/events?eventName=CancelQuery`);
    await page.locator('table.events tbody tr').first().waitFor();
    await context.close();

    const phone = await newPage(390, 844);
    await signIn(phone.page, server.admin);
    await phone.page.goto(`${server.url}/console/query`);
    await phone.page.waitForFunction(() => document.getElementById('query-store')?.value.length === 36);
    await phone.page.getByRole('button', { name: 'Run', exact: true }).click();
    await phone.page.locator('#query-status[data-status="FINISHED"]').waitFor({ timeout: 60_000 });
    await phone.page.locator('table.results-table').waitFor();
    const width = await phone.page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `no horizontal scrolling on the Query page (${width}px)`);
    await shot(phone.page, 'query-390', { fullPage: true });
    await phone.context.close();
  });

  it('records sign-in and sign-out as console sign-in events', async () => {
    const { page } = admin;
    await page.goto(`${server.url}/console/events`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/console\/sign-in/);
    const answer = await admin.context.request.get(`${server.url}/console/api/events`);
    assert.equal(answer.status(), 401, 'the session is gone');
    await signIn(page, server.admin);
    await page.goto(`${server.url}/console/events?eventSource=signin.amazonaws.com`);
    await page.locator('table.events tbody tr').first().waitFor();
    const rows = await rowTexts(page);
    assert.ok(rows.some((row) => row.includes('ConsoleLogout')), rows.join(' | '));
    assert.ok(rows.filter((row) => row.includes('ConsoleLogin')).length >= 3, 'admin twice, readers, phones');
    assert.ok(rows.some((row) => row.includes('ConsoleLogin') && row.includes('FailedAuthentication')), 'the wrong secret too');
  });

  it('made no external requests and raised no script errors', () => {
    assert.deepEqual(externalRequests, []);
    assert.deepEqual(pageErrors, []);
  });
});
