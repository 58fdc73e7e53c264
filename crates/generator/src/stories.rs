//! The classic investigation stories, woven into the background stream so the console and
//! lookups have something to find:
//!
//! 1. **Who deleted the table?** IAM user [`DELETE_TABLE_USER`] signs in to the console
//!    from [`DELETE_TABLE_IP`], lists and describes DynamoDB tables, then deletes
//!    [`DELETE_TABLE_NAME`]; the orders Lambda then fails with ResourceNotFoundException.
//! 2. **Who launched these instances?** User [`LAUNCH_USER`] creates the CloudFormation
//!    stack [`LAUNCH_STACK`]; CloudFormation then launches [`LAUNCH_INSTANCES`] EC2
//!    instances with bob's credentials, so each RunInstances record names bob and carries
//!    `invokedBy` [`LAUNCH_INVOKED_BY`].
//!
//! 3. **Who is hammering the API?** (a call-rate spike for Insights) The role
//!    [`CALL_SPIKE_ROLE`] writes [`CALL_SPIKE_CALLS`] SSM parameters
//!    ([`CALL_SPIKE_EVENT_NAME`]) within one minute.
//! 4. **Who is probing the secrets?** (an error spike for Insights) IAM user
//!    [`ERROR_SPIKE_USER`] is refused ([`ERROR_SPIKE_ERROR_CODE`]) on
//!    [`ERROR_SPIKE_CALLS`] [`ERROR_SPIKE_EVENT_NAME`] calls within one minute.
//!
//! All happen in the primary account and region, at fixed fractions of the window.

use std::sync::Arc;

use crate::json::first_field;
use crate::record::{
    Call, Identity, assumed_role_identity, ec2_instances_request, ec2_instances_response, hex,
    iam_user_identity, public_ip, resources_json, str_seed, uuid, write_record,
};
use crate::rng::{Rng, hash};
use crate::{GeneratorConfig, TimedRecord, format_event_time};

pub const DELETE_TABLE_USER: &str = "alice";
pub const DELETE_TABLE_IP: &str = "203.0.113.7";
pub const DELETE_TABLE_NAME: &str = "orders";
pub const DELETE_TABLE_EVENT_NAME: &str = "DeleteTable";
pub const LAUNCH_USER: &str = "bob";
pub const LAUNCH_STACK: &str = "web-fleet";
pub const LAUNCH_INVOKED_BY: &str = "cloudformation.amazonaws.com";
pub const LAUNCH_INSTANCES: usize = 3;
pub const CALL_SPIKE_ROLE: &str = "ci-deployer";
pub const CALL_SPIKE_EVENT_NAME: &str = "PutParameter";
pub const CALL_SPIKE_EVENT_SOURCE: &str = "ssm.amazonaws.com";
pub const CALL_SPIKE_CALLS: usize = 60;
pub const ERROR_SPIKE_USER: &str = "eve";
pub const ERROR_SPIKE_EVENT_NAME: &str = "GetSecretValue";
pub const ERROR_SPIKE_EVENT_SOURCE: &str = "secretsmanager.amazonaws.com";
pub const ERROR_SPIKE_ERROR_CODE: &str = "AccessDenied";
pub const ERROR_SPIKE_CALLS: usize = 40;
/// Records the stories add to the stream.
pub const EVENT_COUNT: usize = 8 + LAUNCH_INSTANCES + 3 + CALL_SPIKE_CALLS + ERROR_SPIKE_CALLS;

/// Where in the window each story starts (fraction of the window).
const DELETE_TABLE_AT: f64 = 0.62;
const LAUNCH_AT: f64 = 0.41;
const CALL_SPIKE_AT: f64 = 0.83;
const ERROR_SPIKE_AT: f64 = 0.91;

const CONSOLE: &str = "console.amazonaws.com";
const CLI: &str = "aws-cli/2.15.30 md/awscrt#0.19.19 ua/2.0 os/macos#23.4.0 md/arch#arm64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/prompt#off md/command#cloudformation.create-stack";

/// The story records, sorted by time.
pub(crate) fn build(
    config: &GeneratorConfig,
    account: &Arc<str>,
    region: &Arc<str>,
) -> Vec<TimedRecord> {
    let mut rng = Rng::fork(config.seed, 2);
    let mut records = Vec::with_capacity(EVENT_COUNT);
    let at = |fraction: f64, offset_s: i64| {
        let time =
            config.start_ms + (config.duration_ms as f64 * fraction) as i64 + offset_s * 1000;
        time - time.rem_euclid(1000)
    };
    let mut push =
        |time_ms: i64, region_name: &str, identity: &Identity, call: &Call<'_>, rng: &mut Rng| {
            let mut json = String::with_capacity(2048);
            let event_id = uuid(rng);
            write_record(
                &mut json,
                &format_event_time(time_ms),
                account,
                region_name,
                &event_id,
                identity,
                call,
            );
            records.push(TimedRecord {
                time_ms,
                account_id: Arc::clone(account),
                region: Arc::from(region_name),
                json,
            });
        };

    // Story 1: alice deletes the orders table from 203.0.113.7.
    let start = at(DELETE_TABLE_AT, 0);
    let login_time = format_event_time(start);
    let alice_seed = hash(&[str_seed(account), str_seed(DELETE_TABLE_USER), 0xa11ce]);
    let console_alice = Identity {
        json: iam_user_identity(
            account,
            DELETE_TABLE_USER,
            alice_seed,
            Some((start as u64, &login_time)),
            None,
        ),
        source_ip: DELETE_TABLE_IP.to_owned(),
        user_agent: CONSOLE.to_owned(),
    };
    let login_identity = Identity {
        json: format!(
            "{{\"type\":\"IAMUser\",\"principalId\":\"AIDA{}\",\"arn\":\"arn:aws:iam::{account}:user/{DELETE_TABLE_USER}\",\"accountId\":\"{account}\",\"userName\":\"{DELETE_TABLE_USER}\"}}",
            crate::record::id16(hash(&[alice_seed, 1]))
        ),
        source_ip: DELETE_TABLE_IP.to_owned(),
        user_agent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36".to_owned(),
    };
    let mut login = call(
        "signin.amazonaws.com",
        "ConsoleLogin",
        false,
        false,
        &mut rng,
    );
    login.event_type = "AwsConsoleSignIn";
    login.response = "{\"ConsoleLogin\":\"Success\"}".to_owned();
    login.additional = Some("{\"LoginTo\":\"https://console.aws.amazon.com/console/home\",\"MobileVersion\":\"No\",\"MFAUsed\":\"Yes\"}".to_owned());
    login.tls_host = Some("signin.aws.amazon.com".to_owned());
    push(start, "us-east-1", &login_identity, &login, &mut rng);

    let table_arn = format!("arn:aws:dynamodb:{region}:{account}:table/{DELETE_TABLE_NAME}");
    let mut list = call(
        "dynamodb.amazonaws.com",
        "ListTables",
        true,
        false,
        &mut rng,
    );
    list.tls_host = Some(format!("dynamodb.{region}.amazonaws.com"));
    push(
        at(DELETE_TABLE_AT, 41),
        region,
        &console_alice,
        &list,
        &mut rng,
    );

    let mut describe = call(
        "dynamodb.amazonaws.com",
        "DescribeTable",
        true,
        false,
        &mut rng,
    );
    describe.request = format!("{{\"tableName\":\"{DELETE_TABLE_NAME}\"}}");
    describe.resources = resources_json(account, &[("AWS::DynamoDB::Table", &table_arn)]);
    describe.tls_host = Some(format!("dynamodb.{region}.amazonaws.com"));
    push(
        at(DELETE_TABLE_AT, 77),
        region,
        &console_alice,
        &describe,
        &mut rng,
    );

    let mut delete = call(
        "dynamodb.amazonaws.com",
        DELETE_TABLE_EVENT_NAME,
        false,
        false,
        &mut rng,
    );
    delete.request = format!("{{\"tableName\":\"{DELETE_TABLE_NAME}\"}}");
    delete.response = format!(
        "{{\"tableDescription\":{{\"tableName\":\"{DELETE_TABLE_NAME}\",\"tableStatus\":\"DELETING\",\"tableArn\":\"{table_arn}\",\"tableId\":\"{}\",\"itemCount\":0,\"tableSizeBytes\":0,\"provisionedThroughput\":{{\"numberOfDecreasesToday\":0,\"readCapacityUnits\":0,\"writeCapacityUnits\":0}},\"billingModeSummary\":{{\"billingMode\":\"PAY_PER_REQUEST\"}}}}}}",
        uuid(&mut rng)
    );
    delete.resources = resources_json(account, &[("AWS::DynamoDB::Table", &table_arn)]);
    delete.tls_host = Some(format!("dynamodb.{region}.amazonaws.com"));
    push(
        at(DELETE_TABLE_AT, 118),
        region,
        &console_alice,
        &delete,
        &mut rng,
    );

    // The application notices: its Lambda can no longer find the table.
    for (i, name) in ["GetItem", "PutItem", "GetItem", "Query"]
        .iter()
        .enumerate()
    {
        let time_ms = at(DELETE_TABLE_AT, 160 + 37 * i as i64);
        let session = "orders-api-get";
        let key_seed = hash(&[
            str_seed(account),
            str_seed(session),
            (time_ms / 3_600_000) as u64,
        ]);
        let identity = Identity {
            json: assumed_role_identity(
                account,
                "orders-api-lambda-role",
                session,
                key_seed,
                &format_event_time(time_ms - 60_000),
                None,
            ),
            source_ip: format!("3.{}.{}.{}", 80 + i, 17, 200 + i),
            user_agent: crate::catalog::LAMBDA_AGENT.to_owned(),
        };
        let mut failure = call(
            "dynamodb.amazonaws.com",
            name,
            *name != "PutItem",
            true,
            &mut rng,
        );
        failure.request = format!(
            "{{\"tableName\":\"{DELETE_TABLE_NAME}\",\"key\":{{\"pk\":\"ORDER#{}\",\"sk\":\"ITEM#0\"}}}}",
            48_213 + i
        );
        failure.error = Some((
            "ResourceNotFoundException",
            "Requested resource not found".to_owned(),
        ));
        failure.resources = resources_json(account, &[("AWS::DynamoDB::Table", &table_arn)]);
        failure.tls_host = Some(format!("dynamodb.{region}.amazonaws.com"));
        push(time_ms, region, &identity, &failure, &mut rng);
    }

    // Story 2: bob's stack launches instances through CloudFormation.
    let launch = at(LAUNCH_AT, 0);
    let bob_seed = hash(&[str_seed(account), str_seed(LAUNCH_USER), 0xb0b]);
    let bob_ip = public_ip(bob_seed);
    let bob = Identity {
        json: iam_user_identity(account, LAUNCH_USER, bob_seed, None, None),
        source_ip: bob_ip.clone(),
        user_agent: CLI.to_owned(),
    };
    let stack_id = format!(
        "arn:aws:cloudformation:{region}:{account}:stack/{LAUNCH_STACK}/{}",
        uuid(&mut rng)
    );
    let mut create = call(
        "cloudformation.amazonaws.com",
        "CreateStack",
        false,
        false,
        &mut rng,
    );
    create.request = format!(
        "{{\"stackName\":\"{LAUNCH_STACK}\",\"templateURL\":\"https://acme-cfn-templates.s3.amazonaws.com/{LAUNCH_STACK}.yaml\",\"parameters\":[{{\"parameterKey\":\"InstanceCount\",\"parameterValue\":\"{LAUNCH_INSTANCES}\"}},{{\"parameterKey\":\"InstanceType\",\"parameterValue\":\"t3.medium\"}}],\"capabilities\":[\"CAPABILITY_IAM\"],\"tags\":[{{\"key\":\"Owner\",\"value\":\"{LAUNCH_USER}\"}}]}}"
    );
    create.response = format!("{{\"stackId\":\"{stack_id}\"}}");
    create.tls_host = Some(format!("cloudformation.{region}.amazonaws.com"));
    push(launch, region, &bob, &create, &mut rng);

    let session_created = format_event_time(launch);
    let bob_via_cloudformation = Identity {
        json: iam_user_identity(
            account,
            LAUNCH_USER,
            bob_seed,
            Some((launch as u64, &session_created)),
            Some(LAUNCH_INVOKED_BY),
        ),
        source_ip: LAUNCH_INVOKED_BY.to_owned(),
        user_agent: LAUNCH_INVOKED_BY.to_owned(),
    };
    let mut instances = Vec::with_capacity(LAUNCH_INSTANCES);
    for i in 0..LAUNCH_INSTANCES {
        let instance = format!("i-0{}", hex(hash(&[config.seed, 0x1a, i as u64]), 16));
        let time_ms = at(LAUNCH_AT, 23 + i as i64);
        let mut run = call("ec2.amazonaws.com", "RunInstances", false, false, &mut rng);
        run.request = ec2_instances_request("RunInstances", &instance, &mut rng);
        run.response = ec2_instances_response(
            "RunInstances",
            &instance,
            account,
            region,
            time_ms,
            &mut rng,
        );
        run.resources = resources_json(
            account,
            &[(
                "AWS::EC2::Instance",
                &format!("arn:aws:ec2:{region}:{account}:instance/{instance}"),
            )],
        );
        run.tls_host = None;
        push(time_ms, region, &bob_via_cloudformation, &run, &mut rng);
        instances.push(instance);
    }
    let mut tags = call("ec2.amazonaws.com", "CreateTags", false, false, &mut rng);
    let mut request = String::from("{\"resourcesSet\":{\"items\":[");
    for (i, instance) in instances.iter().enumerate() {
        if i > 0 {
            request.push(',');
        }
        request.push('{');
        first_field(&mut request, "resourceId", instance);
        request.push('}');
    }
    request.push_str(
        "]},\"tagSet\":{\"items\":[{\"key\":\"aws:cloudformation:stack-name\",\"value\":\"",
    );
    request.push_str(LAUNCH_STACK);
    request.push_str("\"}]}}");
    tags.request = request;
    tags.response = format!("{{\"requestId\":\"{}\",\"_return\":true}}", uuid(&mut rng));
    tags.tls_host = None;
    push(
        at(LAUNCH_AT, 29),
        region,
        &bob_via_cloudformation,
        &tags,
        &mut rng,
    );

    let mut describe_stack = call(
        "cloudformation.amazonaws.com",
        "DescribeStacks",
        true,
        false,
        &mut rng,
    );
    let mut request = String::from("{");
    first_field(&mut request, "stackName", LAUNCH_STACK);
    request.push('}');
    describe_stack.request = request;
    describe_stack.tls_host = Some(format!("cloudformation.{region}.amazonaws.com"));
    push(at(LAUNCH_AT, 95), region, &bob, &describe_stack, &mut rng);

    // Story 3: the ci-deployer role writes a burst of SSM parameters in one minute.
    let spike = at(CALL_SPIKE_AT, 0);
    let spike = spike - spike.rem_euclid(60_000);
    let deployer_seed = hash(&[str_seed(account), str_seed(CALL_SPIKE_ROLE), 0xc1]);
    let deployer = Identity {
        json: assumed_role_identity(
            account,
            CALL_SPIKE_ROLE,
            "pipeline-4711",
            deployer_seed,
            &format_event_time(spike - 300_000),
            None,
        ),
        source_ip: public_ip(deployer_seed),
        user_agent: CLI.replace("cloudformation.create-stack", "ssm.put-parameter"),
    };
    for i in 0..CALL_SPIKE_CALLS {
        let mut put = call(
            CALL_SPIKE_EVENT_SOURCE,
            CALL_SPIKE_EVENT_NAME,
            false,
            false,
            &mut rng,
        );
        put.request = format!(
            "{{\"name\":\"/deploy/web/param-{i:03}\",\"type\":\"String\",\"overwrite\":true}}"
        );
        put.response = "{\"version\":2,\"tier\":\"Standard\"}".to_owned();
        put.tls_host = Some(format!("ssm.{region}.amazonaws.com"));
        let time_ms = spike + (i as i64 * 59_000) / CALL_SPIKE_CALLS as i64;
        push(time_ms, region, &deployer, &put, &mut rng);
    }

    // Story 4: eve is refused secret after secret, within one minute.
    let probe = at(ERROR_SPIKE_AT, 0);
    let probe = probe - probe.rem_euclid(60_000);
    let eve_seed = hash(&[str_seed(account), str_seed(ERROR_SPIKE_USER), 0xe7e]);
    let eve = Identity {
        json: iam_user_identity(account, ERROR_SPIKE_USER, eve_seed, None, None),
        source_ip: public_ip(eve_seed),
        user_agent: CLI.replace(
            "cloudformation.create-stack",
            "secretsmanager.get-secret-value",
        ),
    };
    for i in 0..ERROR_SPIKE_CALLS {
        let mut get = call(
            ERROR_SPIKE_EVENT_SOURCE,
            ERROR_SPIKE_EVENT_NAME,
            true,
            false,
            &mut rng,
        );
        get.request = format!("{{\"secretId\":\"prod/db/password-{i:02}\"}}");
        get.error = Some((
            ERROR_SPIKE_ERROR_CODE,
            format!(
                "User: arn:aws:iam::{account}:user/{ERROR_SPIKE_USER} is not authorized to perform: secretsmanager:GetSecretValue on resource: prod/db/password-{i:02} because no identity-based policy allows the secretsmanager:GetSecretValue action"
            ),
        ));
        get.tls_host = Some(format!("secretsmanager.{region}.amazonaws.com"));
        let time_ms = probe + (i as i64 * 59_000) / ERROR_SPIKE_CALLS as i64;
        push(time_ms, region, &eve, &get, &mut rng);
    }

    records.sort_by_key(|record| record.time_ms);
    records
}

/// A call with the envelope defaults; the story fills in the rest.
fn call<'a>(
    source: &'a str,
    name: &'a str,
    read_only: bool,
    data: bool,
    rng: &mut Rng,
) -> Call<'a> {
    let request_id = uuid(rng);
    Call {
        event_version: "1.09",
        source,
        name,
        read_only,
        data,
        event_type: "AwsApiCall",
        request: "null".to_owned(),
        response: "null".to_owned(),
        additional: None,
        resources: String::new(),
        error: None,
        tls_host: None,
        shared_event_id: None,
        vpc_endpoint: None,
        request_id,
    }
}
