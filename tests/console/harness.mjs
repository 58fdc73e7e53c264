// The pieces the console tests stand on: a real `opentrail serve` on a temporary data
// directory and a free loopback port, keys made with the real CLI, seed events sent to
// POST /v1/events with an ingest key's bearer token, and Debian's Chromium driven by
// playwright-core (never a downloaded browser).

import { spawn, execFile } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rename, rm, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '..', '..');
export const screenshotDir = process.env.CONSOLE_SCREENSHOT_DIR || path.join(repo, 'target', 'console-screenshots');
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

// Flags for a headless Chromium on a machine without network: background networking,
// component updates and sync would otherwise try to reach the internet at every start.
export const chromiumArgs = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

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

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

export class OpenTrail {
  constructor(bin) {
    this.bin = bin;
    this.logs = [];
  }

  // With `rules`, the server watches an empty rules directory (`--rules`) that
  // addRules() fills later.
  async start({ rules = false } = {}) {
    this.dataDir = await mkdtemp(path.join(tmpdir(), 'opentrail-console-'));
    this.port = await freePort();
    const args = ['serve', '--data-dir', path.join(this.dataDir, 'data'), '--listen', `127.0.0.1:${this.port}`];
    if (rules) {
      this.rulesDir = path.join(this.dataDir, 'rules');
      await mkdir(this.rulesDir);
      args.push('--rules', this.rulesDir);
    }
    this.url = `http://127.0.0.1:${this.port}`;
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('OPENTRAIL_') && !name.startsWith('AWS_')));
    env.RUST_LOG = env.RUST_LOG || 'warn';
    // Trails deliver within a second, so the trails test sees a last delivery quickly.
    env.OPENTRAIL_DELIVERY_INTERVAL_SECS = '1';
    // A 5-minute Insights baseline, so the Insights test needs minutes of history, not 7 days.
    env.OPENTRAIL_INSIGHTS_BASELINE_MINUTES = '5';
    this.process = spawn(this.bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [this.process.stdout, this.process.stderr]) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => { this.logs.push(chunk); if (this.logs.length > 2000) this.logs.shift(); });
    }
    let exited = null;
    this.process.on('exit', (code) => { exited = code; });
    this.process.on('error', (error) => { exited = String(error); });
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (exited !== null) throw new Error(`opentrail serve exited with ${exited}:\n${this.logs.join('')}`);
      try {
        const response = await fetch(`${this.url}/health`);
        if (response.ok) break;
      } catch { /* not listening yet */ }
      await sleep(100);
    }
    this.admin = await this.readCredentials();
    this.ingestKey = await this.createKey('ingest');
    this.readKey = await this.createKey('read');
    return this;
  }

  async stop() {
    if (this.process && this.process.exitCode === null) {
      const exited = new Promise((resolve) => this.process.once('exit', resolve));
      this.process.kill('SIGTERM');
      await Promise.race([exited, sleep(15_000)]);
      if (this.process.exitCode === null) this.process.kill('SIGKILL');
    }
    if (this.dataDir) await rm(this.dataDir, { recursive: true, force: true });
  }

  async readCredentials() {
    const text = await readFile(path.join(this.dataDir, 'data', 'credentials'), 'utf8');
    const value = (name) => new RegExp(`^${name}\\s*=\\s*(\\S+)`, 'm').exec(text)?.[1];
    return { accessKeyId: value('aws_access_key_id'), secretAccessKey: value('aws_secret_access_key') };
  }

  // `opentrail keys create` through the real CLI, signed with the admin credentials.
  async createKey(role) {
    const { stdout } = await run(this.bin, ['keys', 'create', '--role', role, '--endpoint', this.url, '--data-dir', path.join(this.dataDir, 'data'), '--output', 'json'], {
      env: Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('OPENTRAIL_') && !name.startsWith('AWS_'))),
    });
    return JSON.parse(stdout);
  }

  // Copies starter rules (rules/cloudtrail/NAME) into the watched rules directory, each
  // renamed into place whole, so the server never reads half a file. It reloads the
  // directory within a few seconds.
  async addRules(names) {
    for (const name of names) {
      const partial = path.join(this.rulesDir, `${name}.partial`);
      await copyFile(path.join(repo, 'rules', 'cloudtrail', name), partial);
      await rename(partial, path.join(this.rulesDir, name));
    }
  }

  // POST /v1/events with the ingest key's bearer token; answers after fsync.
  async ingest(records) {
    const response = await fetch(`${this.url}/v1/events`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${this.ingestKey.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ Records: records }),
    });
    const answer = await response.json();
    if (!response.ok || answer.failed.length) throw new Error(`ingest failed: ${response.status} ${JSON.stringify(answer)}`);
    return answer;
  }

  // One call of the AWS JSON 1.1 control plane (`POST /`, `X-Amz-Target`) as the aws CLI
  // makes it, signed with SigV4 and the admin credentials: its answer.
  async cloudtrail(operation, body = {}) {
    const payload = JSON.stringify(body);
    const headers = signV4({
      url: `${this.url}/`,
      region: 'us-east-1',
      service: 'cloudtrail',
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `CloudTrail_20131101.${operation}` },
      body: payload,
      key: this.admin,
    });
    const response = await fetch(`${this.url}/`, { method: 'POST', headers, body: payload });
    const answer = await response.json();
    if (!response.ok) throw new Error(`${operation} failed: ${response.status} ${JSON.stringify(answer)}`);
    return answer;
  }

  // `opentrail ingest FILE`: the real CLI, signing with SigV4 and the admin credentials
  // in DATA_DIR/credentials.
  async ingestFile(file) {
    const { stdout } = await run(this.bin, ['ingest', file, '--endpoint', this.url, '--data-dir', path.join(this.dataDir, 'data')], {
      env: Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('OPENTRAIL_') && !name.startsWith('AWS_'))),
    });
    return stdout;
  }
}

// AWS Signature Version 4 for a POST with a JSON body: the headers to send (Host is the
// URL's, as fetch sends it).
function signV4({ url, region, service, headers, body, key, now = new Date() }) {
  const sha256 = (data) => createHash('sha256').update(data).digest('hex');
  const hmac = (secret, data) => createHmac('sha256', secret).update(data).digest();
  const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const day = amzDate.slice(0, 8);
  const signed = { ...headers, host: new URL(url).host, 'x-amz-date': amzDate };
  const names = Object.keys(signed).map((name) => name.toLowerCase()).sort();
  const lower = Object.fromEntries(Object.entries(signed).map(([name, value]) => [name.toLowerCase(), String(value).trim()]));
  const canonical = ['POST', new URL(url).pathname, '', ...names.map((name) => `${name}:${lower[name]}`), '', names.join(';'), sha256(body)].join('\n');
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  const signingKey = ['aws4_request'].reduce((secret, part) => hmac(secret, part),
    hmac(hmac(hmac(`AWS4${key.secretAccessKey}`, day), region), service));
  const signature = createHmac('sha256', signingKey).update(toSign).digest('hex');
  const sent = { ...headers, 'x-amz-date': amzDate };
  sent.authorization = `AWS4-HMAC-SHA256 Credential=${key.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
  return sent;
}

// ------------------------------------------------------------------ seed data

// `count` write calls of SSM PutParameter by `user`, spread over the minute starting at
// `minuteMs`: the baseline and the burst of the Insights test.
export function parameterWrites(minuteMs, count, user, idPrefix) {
  return Array.from({ length: count }, (_, index) => ({
    eventVersion: '1.11',
    userIdentity: { type: 'IAMUser', principalId: `AIDA${user.toUpperCase()}EXAMPLE`, arn: `arn:aws:iam::${ACCOUNT}:user/${user}`, accountId: ACCOUNT, userName: user },
    eventTime: new Date(minuteMs + Math.floor((index * 55_000) / count)).toISOString().replace(/\.\d+Z$/, 'Z'),
    eventSource: 'ssm.amazonaws.com',
    eventName: 'PutParameter',
    awsRegion: 'us-east-1',
    sourceIPAddress: '198.51.100.77',
    userAgent: 'aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.debian.12',
    requestParameters: { name: `/app/${user}/${index}`, overwrite: true },
    responseElements: { version: 2 },
    eventID: `${idPrefix}-${String(index).padStart(4, '0')}`,
    readOnly: false,
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: ACCOUNT,
    eventCategory: 'Management',
  }));
}

const ACCOUNT = '123456789012';

// A small deterministic generator, so every run seeds the same events.
function generator(seed) {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const USERS = [
  { type: 'IAMUser', userName: 'alice', key: 'AKIAEXAMPLEALICE0001' },
  { type: 'IAMUser', userName: 'bob', key: 'AKIAEXAMPLEBOB000001' },
  { type: 'IAMUser', userName: 'carol', key: 'AKIAEXAMPLECAROL0001' },
  { type: 'AssumedRole', role: 'ci-deployer', session: 'deploy-bot', key: 'ASIAEXAMPLEDEPLOY001' },
  { type: 'Root', key: 'AKIAEXAMPLEROOT00001' },
];

const CALLS = [
  { source: 's3.amazonaws.com', names: ['GetObject', 'PutObject', 'ListBuckets', 'DeleteObject'], resource: (n) => ({ type: 'AWS::S3::Bucket', ARN: `arn:aws:s3:::reports-${n % 4}` }) },
  { source: 'ec2.amazonaws.com', names: ['DescribeInstances', 'StartInstances', 'StopInstances', 'TerminateInstances'], resource: (n) => ({ type: 'AWS::EC2::Instance', ARN: `arn:aws:ec2:us-east-1:${ACCOUNT}:instance/i-0${(1000000 + n).toString(16)}` }) },
  { source: 'iam.amazonaws.com', names: ['CreateUser', 'AttachRolePolicy', 'ListRoles', 'CreateAccessKey'], resource: (n) => ({ type: 'AWS::IAM::User', ARN: `arn:aws:iam::${ACCOUNT}:user/intern-${n % 5}` }) },
  { source: 'sts.amazonaws.com', names: ['AssumeRole', 'GetCallerIdentity'], resource: null },
  { source: 'kms.amazonaws.com', names: ['Decrypt', 'GenerateDataKey'], resource: (n) => ({ type: 'AWS::KMS::Key', ARN: `arn:aws:kms:us-east-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-${String(100000000000 + (n % 3)).padStart(12, '0')}` }) },
  { source: 'dynamodb.amazonaws.com', names: ['DescribeTable', 'CreateTable', 'UpdateTable', 'PutItem'], resource: (n) => ({ type: 'AWS::DynamoDB::Table', ARN: `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/${['customers', 'sessions', 'inventory'][n % 3]}` }) },
  { source: 'lambda.amazonaws.com', names: ['UpdateFunctionCode20150331v2', 'GetFunction'], resource: (n) => ({ type: 'AWS::Lambda::Function', ARN: `arn:aws:lambda:us-east-1:${ACCOUNT}:function:billing-${n % 2}` }) },
];

const AGENTS = [
  'aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.debian.12',
  'Boto3/1.34.11 md/Botocore#1.34.11 ua/2.0 os/linux#6.1 lang/python#3.11.6',
  'AWS Internal',
  'APN/1.0 HashiCorp/1.0 Terraform/1.6.6 (+https://www.terraform.io) terraform-provider-aws/5.31.0',
  'aws-sdk-go-v2/1.24.0 os/linux lang/go#1.21.5',
];

export function seedEvents(count, now = Date.now()) {
  const random = generator(42);
  const pick = (list) => list[Math.floor(random() * list.length)];
  const records = [];
  for (let index = 0; index < count; index += 1) {
    const call = pick(CALLS);
    const name = pick(call.names);
    const user = pick(USERS);
    const time = new Date(now - Math.floor(random() * 7 * 86400e3) - 60_000);
    const identity = user.type === 'AssumedRole'
      ? { type: 'AssumedRole', principalId: `AROAEXAMPLEDEPLOY:${user.session}`, arn: `arn:aws:sts::${ACCOUNT}:assumed-role/${user.role}/${user.session}`, accountId: ACCOUNT, accessKeyId: user.key,
        sessionContext: { sessionIssuer: { type: 'Role', principalId: 'AROAEXAMPLEDEPLOY', arn: `arn:aws:iam::${ACCOUNT}:role/${user.role}`, accountId: ACCOUNT, userName: user.role } } }
      : user.type === 'Root'
        ? { type: 'Root', principalId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:root`, accountId: ACCOUNT, accessKeyId: user.key }
        : { type: 'IAMUser', principalId: `AIDA${user.userName.toUpperCase()}EXAMPLE`, arn: `arn:aws:iam::${ACCOUNT}:user/${user.userName}`, accountId: ACCOUNT, accessKeyId: user.key, userName: user.userName };
    const failed = random() < 0.1;
    const record = {
      eventVersion: '1.11',
      userIdentity: identity,
      eventTime: time.toISOString().replace(/\.\d+Z$/, 'Z'),
      eventSource: call.source,
      eventName: name,
      awsRegion: random() < 0.8 ? 'us-east-1' : 'eu-west-1',
      sourceIPAddress: `${random() < 0.5 ? '198.51.100' : '192.0.2'}.${1 + Math.floor(random() * 250)}`,
      userAgent: pick(AGENTS),
      requestParameters: null,
      responseElements: null,
      requestID: `SEED${String(index).padStart(6, '0')}`,
      eventID: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`,
      readOnly: /^(Get|List|Describe)/.test(name),
      eventType: 'AwsApiCall',
      managementEvent: true,
      recipientAccountId: ACCOUNT,
      eventCategory: 'Management',
    };
    if (call.resource) record.resources = [{ accountId: ACCOUNT, ...call.resource(index) }];
    if (failed) {
      record.errorCode = pick(['AccessDenied', 'ThrottlingException', 'ValidationException']);
      record.errorMessage = 'The request was refused.';
    }
    records.push(record);
  }
  return records;
}

// CloudFormation launching an instance on bob's behalf: the identity is bob's, and
// invokedBy says a service did it for him.
export function cloudFormationRunInstances(now = Date.now()) {
  return {
    eventVersion: '1.11',
    userIdentity: { type: 'IAMUser', principalId: 'AIDABOBEXAMPLE', arn: `arn:aws:iam::${ACCOUNT}:user/bob`, accountId: ACCOUNT, accessKeyId: 'ASIAEXAMPLEBOBCFN001', userName: 'bob', invokedBy: 'cloudformation.amazonaws.com' },
    eventTime: new Date(now - 2 * 3600e3).toISOString().replace(/\.\d+Z$/, 'Z'),
    eventSource: 'ec2.amazonaws.com',
    eventName: 'RunInstances',
    awsRegion: 'us-east-1',
    sourceIPAddress: 'cloudformation.amazonaws.com',
    userAgent: 'cloudformation.amazonaws.com',
    requestParameters: { instanceType: 't3.micro', minCount: 1, maxCount: 1 },
    responseElements: { instancesSet: { items: [{ instanceId: 'i-0cfn1234567890abc' }] } },
    requestID: 'CFNRUNINSTANCES00001',
    eventID: '7c1f0f1e-0b0a-4c3e-9a55-cf0000000001',
    readOnly: false,
    resources: [{ accountId: ACCOUNT, type: 'AWS::EC2::Instance', ARN: `arn:aws:ec2:us-east-1:${ACCOUNT}:instance/i-0cfn1234567890abc` }],
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: ACCOUNT,
    eventCategory: 'Management',
  };
}

export async function ensureScreenshotDir() {
  await mkdir(screenshotDir, { recursive: true });
}
