// The AWS SDK for JavaScript v3 (@aws-sdk/client-cloudtrail, pinned in package.json)
// against a real `opentrail serve`: LookupEvents with every attribute and time filters,
// the paginator, modelled errors as the SDK's typed exceptions with their HTTP statuses,
// the trail API, ListPublicKeys. The SDK sends the short X-Amz-Target form
// (`CloudTrail_20131101.<Operation>`), which is what these tests exercise on every call.
//
// The client is configured the way the README tells a user to: endpoint, region and the
// credentials file the server wrote (AWS_SHARED_CREDENTIALS_FILE, read by the SDK's
// default credential chain). No mocks and no timing assertions.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';

import {
  CloudTrailClient,
  CloudTrailServiceException,
  CreateTrailCommand,
  DeleteTrailCommand,
  GetEventConfigurationCommand,
  GetTrailStatusCommand,
  InvalidLookupAttributesException,
  InvalidMaxResultsException,
  InvalidNextTokenException,
  InvalidTimeRangeException,
  ListPublicKeysCommand,
  LookupEventsCommand,
  StartLoggingCommand,
  StopLoggingCommand,
  TrailNotFoundException,
  paginateLookupEvents,
} from '@aws-sdk/client-cloudtrail';

import { ACCOUNT_ID, OpenTrail, REGION, cloudTrailEvent, newWindow, uniq, waitFor } from './harness.mjs';

let server;
let client;

before(async () => {
  // Trails deliver and digest every second, so ListPublicKeys has a key to report quickly.
  server = await new OpenTrail(undefined, { OPENTRAIL_DELIVERY_INTERVAL_SECS: '1', OPENTRAIL_DIGEST_INTERVAL_SECS: '1' }).start();
  for (const name of Object.keys(process.env)) if (name.startsWith('AWS_')) delete process.env[name];
  process.env.AWS_SHARED_CREDENTIALS_FILE = server.credentialsFile;
  process.env.AWS_CONFIG_FILE = '/dev/null';
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  client = new CloudTrailClient({ endpoint: server.endpoint, region: REGION, maxAttempts: 1 });
});

after(async () => {
  client?.destroy();
  await server?.stop();
});

async function lookup(input) {
  const events = [];
  for await (const page of paginateLookupEvents({ client, pageSize: 50 }, input)) events.push(...page.Events);
  return events;
}

// Runs `call`, which must fail with `type`; returns the error.
async function rejectsWith(call, type, status) {
  const error = await call().then(
    (output) => assert.fail(`expected ${type.name}, got ${JSON.stringify(output)}`),
    (caught) => caught,
  );
  assert.ok(error instanceof type, `${error.name}: ${error.message} is not a ${type.name}`);
  assert.ok(error instanceof CloudTrailServiceException);
  assert.equal(error.name, type.name);
  assert.equal(error.$metadata.httpStatusCode, status);
  assert.ok(error.$metadata.requestId, 'the error carries the request id');
  return error;
}

describe('LookupEvents', () => {
  test('every lookup attribute finds the event, and only it, with its fields typed', async () => {
    const window = newWindow();
    const table = uniq('orders-');
    const accessKeyId = `AKIA${uniq('').toUpperCase()}XXXX`.slice(0, 20);
    const user = uniq('alice-');
    const eventName = uniq('DeleteTable');
    const eventSource = `${uniq('svc')}.amazonaws.com`;
    const tableArn = `arn:aws:dynamodb:${REGION}:${ACCOUNT_ID}:table/${table}`;
    const target = cloudTrailEvent({
      eventName,
      eventTime: window.at(10),
      eventSource,
      user,
      accessKeyId,
      readOnly: false,
      resources: [{ ARN: tableArn, accountId: ACCOUNT_ID, type: 'AWS::DynamoDB::Table' }],
    });
    // In the same hour, an event that shares no attribute value with the target.
    const decoy = cloudTrailEvent({
      eventName: uniq('GetObject'),
      eventTime: window.at(20),
      eventSource: 's3.amazonaws.com',
      user: uniq('bob-'),
      accessKeyId: 'AKIAEXAMPLEBOB000001',
      readOnly: true,
      resources: [{ ARN: `arn:aws:s3:::${uniq('bucket-')}`, accountId: ACCOUNT_ID, type: 'AWS::S3::Bucket' }],
    });
    const [targetId] = await server.ingest([target, decoy]);

    const attributes = {
      EventId: targetId,
      EventName: eventName,
      ReadOnly: 'false',
      Username: user,
      ResourceType: 'AWS::DynamoDB::Table',
      // CloudTrail's ResourceName is the resource's ARN (resources[].ARN).
      ResourceName: tableArn,
      EventSource: eventSource,
      AccessKeyId: accessKeyId,
    };
    for (const [AttributeKey, AttributeValue] of Object.entries(attributes)) {
      const output = await client.send(new LookupEventsCommand({
        LookupAttributes: [{ AttributeKey, AttributeValue }], StartTime: window.start, EndTime: window.end,
      }));
      assert.equal(output.$metadata.httpStatusCode, 200);
      assert.deepEqual(output.Events.map((event) => event.EventId), [targetId], `${AttributeKey}=${AttributeValue}`);
      const [event] = output.Events;
      assert.ok(event.EventTime instanceof Date, 'EventTime arrives as a Date');
      assert.equal(event.EventTime.getTime(), window.at(10).getTime());
      assert.equal(event.EventName, eventName);
      assert.equal(event.EventSource, eventSource);
      assert.equal(event.Username, user);
      assert.equal(event.AccessKeyId, accessKeyId);
      assert.equal(event.ReadOnly, 'false');
      assert.deepEqual(event.Resources, [{ ResourceType: 'AWS::DynamoDB::Table', ResourceName: tableArn }]);
      assert.deepEqual(JSON.parse(event.CloudTrailEvent), { ...target, eventID: targetId });
    }
    // The decoy is in the window too: ReadOnly=true finds it alone.
    const readOnly = await lookup({ LookupAttributes: [{ AttributeKey: 'ReadOnly', AttributeValue: 'true' }], StartTime: window.start, EndTime: window.end });
    assert.deepEqual(readOnly.map((event) => event.EventName), [decoy.eventName]);
  });

  test('StartTime and EndTime (Date values) bound the results, newest first', async () => {
    const window = newWindow();
    const eventName = uniq('PutItem');
    const ids = await server.ingest([10, 20, 30, 40].map((minutes) => cloudTrailEvent({ eventName, eventTime: window.at(minutes) })));
    const byName = [{ AttributeKey: 'EventName', AttributeValue: eventName }];

    const all = await lookup({ LookupAttributes: byName, StartTime: window.start, EndTime: window.end });
    assert.deepEqual(all.map((event) => event.EventId), [...ids].reverse());
    const times = all.map((event) => event.EventTime.getTime());
    assert.deepEqual(times, [...times].sort((a, b) => b - a));

    const middle = await lookup({ LookupAttributes: byName, StartTime: window.at(15), EndTime: window.at(35) });
    assert.deepEqual(middle.map((event) => event.EventId), [ids[2], ids[1]]);
    // Both bounds are inclusive, as CloudTrail's.
    const exact = await lookup({ LookupAttributes: byName, StartTime: window.at(20), EndTime: window.at(20) });
    assert.deepEqual(exact.map((event) => event.EventId), [ids[1]]);
    const before = await lookup({ LookupAttributes: byName, StartTime: window.start, EndTime: window.at(5) });
    assert.deepEqual(before, []);
  });

  test('paginateLookupEvents follows NextToken through every page', async () => {
    const window = newWindow();
    const eventName = uniq('UpdateItem');
    const ids = await server.ingest(Array.from({ length: 7 }, (_, i) => cloudTrailEvent({ eventName, eventTime: window.at(i + 1) })));
    const pages = [];
    for await (const page of paginateLookupEvents({ client, pageSize: 2 }, {
      LookupAttributes: [{ AttributeKey: 'EventName', AttributeValue: eventName }], StartTime: window.start, EndTime: window.end,
    })) {
      pages.push(page);
    }
    assert.deepEqual(pages.map((page) => page.Events.length), [2, 2, 2, 1]);
    assert.ok(pages.slice(0, -1).every((page) => typeof page.NextToken === 'string' && page.NextToken.length > 0));
    assert.equal(pages.at(-1).NextToken, undefined);
    assert.deepEqual(pages.flatMap((page) => page.Events.map((event) => event.EventId)), [...ids].reverse());
  });

  test('modelled errors arrive as the SDK\'s typed exceptions with their HTTP status', async () => {
    const error = await rejectsWith(() => client.send(new LookupEventsCommand({ MaxResults: 51 })), InvalidMaxResultsException, 400);
    assert.equal(error.$fault, 'client');
    await rejectsWith(() => client.send(new LookupEventsCommand({
      LookupAttributes: [{ AttributeKey: 'EventName', AttributeValue: 'A' }, { AttributeKey: 'Username', AttributeValue: 'B' }],
    })), InvalidLookupAttributesException, 400);
    const window = newWindow();
    await rejectsWith(() => client.send(new LookupEventsCommand({ StartTime: window.end, EndTime: window.start })), InvalidTimeRangeException, 400);
    await rejectsWith(() => client.send(new LookupEventsCommand({ NextToken: 'not-a-token' })), InvalidNextTokenException, 400);
  });
});

describe('the trail API', () => {
  test('CreateTrail, StartLogging, GetTrailStatus, StopLogging, DeleteTrail', async () => {
    const name = uniq('sdk-js-');
    const bucket = uniq('audit-');
    const created = await client.send(new CreateTrailCommand({ Name: name, S3BucketName: bucket }));
    assert.equal(created.Name, name);
    assert.equal(created.S3BucketName, bucket);
    assert.equal(created.TrailARN, `arn:aws:cloudtrail:${REGION}:${ACCOUNT_ID}:trail/${name}`);

    await client.send(new StartLoggingCommand({ Name: name }));
    const logging = await client.send(new GetTrailStatusCommand({ Name: created.TrailARN }));
    assert.equal(logging.IsLogging, true);
    assert.ok(logging.StartLoggingTime instanceof Date, 'StartLoggingTime arrives as a Date');

    await client.send(new StopLoggingCommand({ Name: name }));
    const stopped = await client.send(new GetTrailStatusCommand({ Name: name }));
    assert.equal(stopped.IsLogging, false);
    assert.ok(stopped.StopLoggingTime instanceof Date, 'StopLoggingTime arrives as a Date');
    assert.ok(stopped.StopLoggingTime >= stopped.StartLoggingTime);

    await client.send(new DeleteTrailCommand({ Name: name }));
    await rejectsWith(() => client.send(new GetTrailStatusCommand({ Name: name })), TrailNotFoundException, 404);
    await rejectsWith(() => client.send(new DeleteTrailCommand({ Name: name })), TrailNotFoundException, 404);

    // OpenTrail records the SDK's calls as CloudTrail events of its own (self-audit).
    const recorded = await waitFor(async () => {
      const events = (await lookup({ LookupAttributes: [{ AttributeKey: 'EventSource', AttributeValue: 'cloudtrail.amazonaws.com' }] }))
        .filter((event) => JSON.stringify(JSON.parse(event.CloudTrailEvent).requestParameters ?? {}).includes(name));
      const names = new Set(events.map((event) => event.EventName));
      return ['CreateTrail', 'StartLogging', 'StopLogging', 'DeleteTrail'].every((call) => names.has(call)) && events;
    }, 'the self-audit records of the trail calls');
    const create = recorded.find((event) => event.EventName === 'CreateTrail');
    assert.equal(create.EventSource, 'cloudtrail.amazonaws.com');
    assert.match(JSON.parse(create.CloudTrailEvent).userAgent, /aws-sdk-js/);
  });

  test('ListPublicKeys returns the key that signed a digest file, as DER bytes with Date validity', async () => {
    const name = uniq('signed-');
    const bucket = uniq('digests-');
    await client.send(new CreateTrailCommand({ Name: name, S3BucketName: bucket, EnableLogFileValidation: true }));
    await client.send(new StartLoggingCommand({ Name: name }));
    try {
      const digestFile = await waitFor(async () => (await server.bucketFiles(bucket)).find((file) => file.includes('CloudTrail-Digest') && file.endsWith('.json.gz')), 'a digest file');
      const digest = JSON.parse(gunzipSync(await readFile(digestFile)).toString('utf8'));

      const now = Date.now();
      const output = await client.send(new ListPublicKeysCommand({ StartTime: new Date(now - 3600_000), EndTime: new Date(now + 2 * 3600_000) }));
      assert.equal(output.PublicKeyList.length, 1, JSON.stringify(output));
      const [key] = output.PublicKeyList;
      assert.equal(key.Fingerprint, digest.digestPublicKeyFingerprint);
      assert.ok(key.Value instanceof Uint8Array, 'Value arrives as bytes (base64-decoded by the SDK)');
      assert.equal(key.Value[0], 0x30, 'a DER SEQUENCE (PKCS#1 RSAPublicKey)');
      // OpenTrail's fingerprint: the first 16 bytes of the DER key's SHA-256, in hex.
      assert.equal(createHash('sha256').update(key.Value).digest('hex').slice(0, 32), key.Fingerprint);
      assert.ok(key.ValidityStartTime instanceof Date && key.ValidityEndTime instanceof Date);
      assert.ok(key.ValidityStartTime.getTime() <= now && now < key.ValidityEndTime.getTime());

      // A window before the key existed has none.
      const early = await client.send(new ListPublicKeysCommand({ StartTime: new Date(now - 400 * 24 * 3600_000), EndTime: new Date(now - 399 * 24 * 3600_000) }));
      assert.deepEqual(early.PublicKeyList ?? [], []);
    } finally {
      await client.send(new StopLoggingCommand({ Name: name }));
      await client.send(new DeleteTrailCommand({ Name: name }));
    }
  });
});

describe('dispatch', () => {
  test('an operation OpenTrail does not implement is UnknownOperationException (400)', async () => {
    const error = await client.send(new GetEventConfigurationCommand({ TrailName: 'anything' })).then(
      (output) => assert.fail(`expected an error, got ${JSON.stringify(output)}`),
      (caught) => caught,
    );
    assert.ok(error instanceof CloudTrailServiceException);
    assert.equal(error.name, 'UnknownOperationException');
    assert.equal(error.$metadata.httpStatusCode, 400);
    assert.match(error.message, /GetEventConfiguration/);
  });
});
