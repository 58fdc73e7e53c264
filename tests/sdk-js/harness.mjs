// What the SDK tests stand on: a real `opentrail serve` on a temporary data directory and a
// free loopback port, its admin credentials read from DATA_DIR/credentials (as a user
// would point AWS_SHARED_CREDENTIALS_FILE at it), an ingest key made with the real CLI,
// and CloudTrail records sent to POST /v1/events with that key's bearer token.

import { spawn, execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '..', '..');
export const ACCOUNT_ID = '111122223333';
export const REGION = 'us-east-1';

export function opentrailBin() {
  return process.env.OPENTRAIL_BIN || path.join(repo, 'target', 'debug', 'opentrail');
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// The environment without the host's AWS and OpenTrail settings.
function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('OPENTRAIL_') && !name.startsWith('AWS_')));
}

export class OpenTrail {
  constructor(bin = opentrailBin(), extraEnv = {}) {
    this.bin = bin;
    this.extraEnv = extraEnv;
    this.logs = [];
  }

  async start() {
    this.tempDir = await mkdtemp(path.join(tmpdir(), 'opentrail-sdk-js-'));
    this.dataDir = path.join(this.tempDir, 'data');
    this.credentialsFile = path.join(this.dataDir, 'credentials');
    this.port = await freePort();
    this.endpoint = `http://127.0.0.1:${this.port}`;
    const env = { ...cleanEnv(), RUST_LOG: process.env.RUST_LOG || 'warn', OPENTRAIL_ACCOUNT_ID: ACCOUNT_ID, OPENTRAIL_REGION: REGION, ...this.extraEnv };
    this.process = spawn(this.bin, ['serve', '--data-dir', this.dataDir, '--listen', `127.0.0.1:${this.port}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [this.process.stdout, this.process.stderr]) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => { this.logs.push(chunk); if (this.logs.length > 2000) this.logs.shift(); });
    }
    let exited = null;
    this.process.on('exit', (code) => { exited = code; });
    this.process.on('error', (error) => { exited = String(error); });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (exited !== null) throw new Error(`opentrail serve exited with ${exited}:\n${this.logs.join('')}`);
      try {
        const response = await fetch(`${this.endpoint}/health`);
        if (response.ok) break;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) throw new Error(`/health did not answer within 60 s:\n${this.logs.join('')}`);
      await sleep(100);
    }
    this.admin = await this.readCredentials();
    this.ingestKey = await this.createKey('ingest');
    return this;
  }

  async stop() {
    if (this.process && this.process.exitCode === null) {
      const exited = new Promise((resolve) => this.process.once('exit', resolve));
      this.process.kill('SIGTERM');
      let timer;
      const timeout = new Promise((resolve) => { timer = setTimeout(resolve, 15_000); });
      await Promise.race([exited, timeout]);
      clearTimeout(timer); // else the timer keeps node (and the test run) alive for 15 s
      if (this.process.exitCode === null) this.process.kill('SIGKILL');
    }
    if (this.tempDir) await rm(this.tempDir, { recursive: true, force: true });
  }

  // The [default] profile of DATA_DIR/credentials, which the server writes on first start.
  async readCredentials() {
    const text = await readFile(this.credentialsFile, 'utf8');
    const value = (name) => new RegExp(`^${name}\\s*=\\s*(\\S+)`, 'm').exec(text)?.[1];
    const credentials = { accessKeyId: value('aws_access_key_id'), secretAccessKey: value('aws_secret_access_key') };
    if (!credentials.accessKeyId || !credentials.secretAccessKey) throw new Error(`no admin key in ${this.credentialsFile}:\n${text}`);
    return credentials;
  }

  // `opentrail keys create` through the real CLI, signed with the admin credentials.
  async createKey(role) {
    const { stdout } = await run(this.bin, ['keys', 'create', '--role', role, '--endpoint', this.endpoint, '--data-dir', this.dataDir, '--output', 'json'], { env: cleanEnv() });
    return JSON.parse(stdout);
  }

  // POST /v1/events with the ingest key's bearer token; answers after fsync. Returns the
  // event ids in the order sent.
  async ingest(records) {
    const response = await fetch(`${this.endpoint}/v1/events`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${this.ingestKey.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ Records: records }),
    });
    const answer = await response.json();
    if (!response.ok || answer.failed.length || answer.accepted.length !== records.length) {
      throw new Error(`ingest failed: ${response.status} ${JSON.stringify(answer)}`);
    }
    return answer.accepted.map((accepted) => accepted.eventId);
  }

  // Every file under DATA_DIR/buckets/<bucket> (trails write there without an S3 endpoint).
  async bucketFiles(bucket) {
    const root = path.join(this.dataDir, 'buckets', bucket);
    try {
      const entries = await readdir(root, { recursive: true, withFileTypes: true });
      return entries.filter((entry) => entry.isFile()).map((entry) => path.join(entry.parentPath ?? entry.path, entry.name));
    } catch (error) {
      if (error.code === 'ENOENT') return [];
      throw error;
    }
  }

  serverLogs() {
    return this.logs.join('').slice(-6000);
  }
}

// Polls until `probe()` returns a truthy value (bounded; no timing is asserted).
export async function waitFor(probe, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

export const uniq = (prefix) => `${prefix}${randomUUID().replaceAll('-', '').slice(0, 12)}`;

// CloudTrail's eventTime format: whole seconds, UTC, `Z`.
export const iso = (date) => date.toISOString().replace(/\.\d{3}Z$/, 'Z');

let windowCounter = 0;
const windowAnchor = (() => {
  const now = new Date();
  now.setUTCMinutes(0, 0, 0);
  return now.getTime() - 2 * 24 * 3600_000;
})();

// A whole hour in the past that no other test of this run uses, so time-bounded lookups see
// only the events a test placed in it (and never the self-audit events, which happen now).
export function newWindow() {
  windowCounter += 1;
  const start = new Date(windowAnchor - windowCounter * 3600_000);
  return { start, end: new Date(start.getTime() + 3600_000), at: (minutes) => new Date(start.getTime() + minutes * 60_000) };
}

// A complete CloudTrail record (eventVersion 1.11) of an IAM user's API call.
export function cloudTrailEvent({
  eventName, eventTime, eventSource = 'dynamodb.amazonaws.com', user = 'alice', accessKeyId = 'AKIAEXAMPLEALICE0001',
  readOnly = false, resources = [], sourceIPAddress = '203.0.113.7', eventId = randomUUID(),
}) {
  return {
    eventVersion: '1.11',
    userIdentity: {
      type: 'IAMUser', principalId: 'AIDAEXAMPLE', arn: `arn:aws:iam::${ACCOUNT_ID}:user/${user}`, accountId: ACCOUNT_ID, userName: user, accessKeyId,
    },
    eventTime: iso(eventTime),
    eventSource,
    eventName,
    awsRegion: REGION,
    sourceIPAddress,
    userAgent: 'aws-sdk-js/3.1137.0',
    requestParameters: null,
    responseElements: null,
    requestID: randomUUID(),
    eventID: eventId,
    readOnly,
    resources,
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: ACCOUNT_ID,
    eventCategory: 'Management',
  };
}
