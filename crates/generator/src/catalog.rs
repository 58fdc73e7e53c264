//! Who calls what: the accounts, regions, principals and API operations of a generated
//! trail, with the weights that make a few of each dominate.
//!
//! The mix is shaped on the real corpus (`../shared/corpus/cloudtrail`): S3 and KMS data
//! traffic dominates, much of it from automation (`AWSService` principals and roles that
//! services assume, with `invokedBy`); a long tail of management calls follows; errors are
//! concentrated (AccessDenied from a few misconfigured principals, API-specific errors).

/// The accounts besides the primary one (staging, then a security/log account).
pub const OTHER_ACCOUNTS: [&str; 2] = ["210987654321", "345678901234"];
/// Account weights: primary, staging, security.
pub const ACCOUNT_WEIGHTS: [f64; 3] = [0.75, 0.2, 0.05];
/// Regions besides the primary one, in falling order of traffic.
pub const OTHER_REGIONS: [&str; 4] = ["us-west-2", "eu-west-1", "ap-southeast-2", "us-east-1"];
/// Region weights: primary, then the first three of [`OTHER_REGIONS`] that differ from it.
pub const REGION_WEIGHTS: [f64; 4] = [0.72, 0.14, 0.09, 0.05];
/// Global services record their calls in us-east-1 whatever the caller's region.
pub const GLOBAL_REGION: &str = "us-east-1";

/// People and automation users, heaviest first. `alice` and `bob` are the stories' users;
/// they also do ordinary work, from their usual addresses.
pub const USER_NAMES: [&str; 48] = [
    "terraform",
    "ci-deploy",
    "backup-agent",
    "carol",
    "dave",
    "datadog-reader",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "alice",
    "judy",
    "bob",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "yusuf",
    "zoe",
    "amir",
    "bianca",
    "chen",
    "dmitri",
    "elena",
    "farah",
    "goran",
    "hana",
    "ingrid",
    "jamal",
    "kenji",
    "lena",
    "marco",
    "nadia",
    "oscar",
    "priya",
    "quinn",
    "rosa",
    "sven",
    "tariq",
    "uma",
    "vera",
    "wei",
];
/// Extra users beyond the named ones: `contractor-NN`, the long tail.
pub const EXTRA_USERS: usize = 102;

/// How a role is used, which decides its session names, addresses and agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKind {
    /// A Lambda execution role: sessions are function names, calls come from AWS addresses.
    Lambda,
    /// An ECS task role: sessions are task ids, calls come from private VPC addresses.
    EcsTask,
    /// An EC2 instance profile: sessions are instance ids.
    Ec2Instance,
    /// AWS IAM Identity Center (SSO) permission sets: sessions are people's e-mail.
    Sso,
    /// A CI system assuming a deploy role through web identity.
    Ci,
    /// A service-linked role: the service acts (`invokedBy`).
    ServiceLinked(&'static str),
    /// A third-party integration reading the account.
    Integration,
}

pub struct Role {
    pub name: &'static str,
    pub kind: RoleKind,
    /// Session names used with this role (functions, SSO users, fixed names).
    pub sessions: &'static [&'static str],
}

/// Roles, heaviest first.
pub const ROLES: [Role; 16] = [
    Role {
        name: "orders-api-lambda-role",
        kind: RoleKind::Lambda,
        sessions: &["orders-api-create", "orders-api-get", "orders-api-list"],
    },
    Role {
        name: "eks-node-group-role",
        kind: RoleKind::Ec2Instance,
        sessions: &[],
    },
    Role {
        name: "payments-ecs-task-role",
        kind: RoleKind::EcsTask,
        sessions: &[],
    },
    Role {
        name: "AWSServiceRoleForConfig",
        kind: RoleKind::ServiceLinked("config.amazonaws.com"),
        sessions: &["AWSConfig-Describe"],
    },
    Role {
        name: "datadog-integration-role",
        kind: RoleKind::Integration,
        sessions: &["DatadogAWSIntegration"],
    },
    Role {
        name: "AWSReservedSSO_AdministratorAccess_1b74cd717d47002b",
        kind: RoleKind::Sso,
        sessions: &[
            "carol@example.com",
            "dave@example.com",
            "grace@example.com",
            "ivan@example.com",
        ],
    },
    Role {
        name: "image-resize-lambda-role",
        kind: RoleKind::Lambda,
        sessions: &["image-resize"],
    },
    Role {
        name: "AWSServiceRoleForAutoScaling",
        kind: RoleKind::ServiceLinked("autoscaling.amazonaws.com"),
        sessions: &["AutoScaling"],
    },
    Role {
        name: "github-actions-deploy",
        kind: RoleKind::Ci,
        sessions: &["GitHubActions"],
    },
    Role {
        name: "AWSReservedSSO_ReadOnlyAccess_a1d5b7c93e2f4860",
        kind: RoleKind::Sso,
        sessions: &[
            "erin@example.com",
            "heidi@example.com",
            "judy@example.com",
            "olivia@example.com",
            "peggy@example.com",
        ],
    },
    Role {
        name: "AWSServiceRoleForECS",
        kind: RoleKind::ServiceLinked("ecs.amazonaws.com"),
        sessions: &["ecs-service-scheduler"],
    },
    Role {
        name: "web-instance-role",
        kind: RoleKind::Ec2Instance,
        sessions: &[],
    },
    Role {
        name: "AWSServiceRoleForAmazonGuardDuty",
        kind: RoleKind::ServiceLinked("guardduty.amazonaws.com"),
        sessions: &["GuardDuty"],
    },
    Role {
        name: "reports-batch-ecs-task-role",
        kind: RoleKind::EcsTask,
        sessions: &[],
    },
    Role {
        name: "OrganizationAccountAccessRole",
        kind: RoleKind::Sso,
        sessions: &["frank", "walter"],
    },
    Role {
        name: "AWSServiceRoleForAmazonInspector2",
        kind: RoleKind::ServiceLinked("inspector2.amazonaws.com"),
        sessions: &["MandoService2842426183934887787"],
    },
];

/// Buckets, heaviest first (the trail's own log bucket is written by CloudTrail itself).
pub const BUCKETS: [&str; 12] = [
    "acme-app-assets",
    "acme-cloudtrail-logs",
    "acme-data-lake-raw",
    "acme-vpc-flow-logs",
    "acme-backups",
    "acme-data-lake-curated",
    "acme-terraform-state",
    "acme-ml-training",
    "acme-customer-uploads",
    "acme-static-site",
    "acme-athena-results",
    "acme-audit-exports",
];
pub const TABLES: [&str; 8] = [
    "orders",
    "sessions",
    "customers",
    "inventory",
    "payments",
    "feature-flags",
    "audit-index",
    "carts",
];
pub const FUNCTIONS: [&str; 8] = [
    "orders-api-create",
    "orders-api-get",
    "orders-api-list",
    "image-resize",
    "nightly-report",
    "slack-notifier",
    "token-authorizer",
    "cleanup-sessions",
];
pub const QUEUES: [&str; 5] = [
    "orders-events",
    "image-jobs",
    "payments-retry",
    "email-outbox",
    "orders-events-dlq",
];
pub const SECRETS: [&str; 6] = [
    "prod/orders/db",
    "prod/payments/stripe",
    "prod/datadog/api-key",
    "staging/orders/db",
    "prod/github/deploy-token",
    "prod/smtp",
];
pub const PARAMETERS: [&str; 6] = [
    "/prod/orders/feature-flags",
    "/prod/payments/endpoint",
    "/prod/shared/vpc-id",
    "/staging/orders/feature-flags",
    "/prod/images/max-size",
    "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
];
pub const LOG_GROUPS: [&str; 6] = [
    "/aws/lambda/orders-api-create",
    "/aws/lambda/orders-api-get",
    "/ecs/payments",
    "/aws/lambda/image-resize",
    "/ecs/reports-batch",
    "/aws/eks/prod/cluster",
];

/// User agents of people and their tools, heaviest first.
pub const HUMAN_AGENTS: [&str; 8] = [
    "aws-cli/2.15.30 md/awscrt#0.19.19 ua/2.0 os/macos#23.4.0 md/arch#arm64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/prompt#off md/command#s3.cp",
    "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488 Linux/5.10.219-186.866.amzn2int.x86_64 OpenJDK_64-Bit_Server_VM/25.372-b08 java/1.8.0_372 vendor/Oracle_Corporation cfg/retry-mode/standard]",
    "AWS Internal",
    "console.amazonaws.com",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.5.0-1016-aws md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69",
    "APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.42.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.26.0 ua/2.0 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.151.0",
    "aws-cli/2.15.30 md/awscrt#0.19.19 ua/2.0 os/linux#6.1.0-18-amd64 md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/distrib#debian.12 md/prompt#off",
    "aws-sdk-java/2.25.16 Linux/5.10.213-201.855.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy",
];

pub const LAMBDA_AGENT: &str =
    "aws-sdk-nodejs/2.1599.0 linux/v20.12.1 exec-env/AWS_Lambda_nodejs20.x promise";
pub const ECS_AGENT: &str = "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.21.8 md/GOOS#linux md/GOARCH#amd64 exec-env/AWS_ECS_FARGATE api/dynamodb#1.30.3";
pub const EC2_AGENT: &str = "aws-sdk-go/1.50.38 (go1.21.8; linux; amd64) exec-env/AWS_EKS";
pub const INTEGRATION_AGENT: &str = "Datadog/1.0 aws-sdk-go/1.44.327 (go1.20.8; linux; amd64)";

/// Which kind of principal makes a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorClass {
    User,
    Role,
    Service,
    Root,
}

/// How the request and resources of an operation are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    S3Object,
    S3Bucket,
    S3Service,
    Kms,
    AssumeRole,
    NoParameters,
    Ec2Describe,
    Ec2Instances,
    LambdaInvoke,
    LambdaFunction,
    DynamoItem,
    DynamoTable,
    IamUser,
    IamRole,
    LogStream,
    SsmParameter,
    Secret,
    SqsMessage,
    Metrics,
    ConsoleLogin,
    CloudFormation,
    Ecr,
}

/// One API operation of the catalog.
pub struct Operation {
    pub source: &'static str,
    pub name: &'static str,
    pub weight: f64,
    pub read_only: bool,
    /// A data event (`eventCategory` Data, `managementEvent` false).
    pub data: bool,
    /// Weights of [`ActorClass::User`], `Role`, `Service` and `Root` callers.
    pub actors: [f64; 4],
    /// For `Service` callers: the services (`invokedBy`) that make this call.
    pub services: &'static [&'static str],
    /// For `User`/`Role` callers: services that may act on their behalf (`invokedBy`),
    /// and how often.
    pub on_behalf: (&'static [&'static str], f64),
    pub shape: Shape,
    /// API-specific errors: (code, message, probability).
    pub errors: &'static [(&'static str, &'static str, f64)],
}

const NO_SERVICES: &[&str] = &[];

macro_rules! op {
    ($source:expr, $name:expr, $weight:expr, ro = $ro:expr, data = $data:expr, actors = $actors:expr, $shape:expr) => {
        op!(
            $source,
            $name,
            $weight,
            ro = $ro,
            data = $data,
            actors = $actors,
            services = NO_SERVICES,
            behalf = (NO_SERVICES, 0.0),
            $shape,
            errors = &[]
        )
    };
    ($source:expr, $name:expr, $weight:expr, ro = $ro:expr, data = $data:expr, actors = $actors:expr, services = $services:expr, behalf = $behalf:expr, $shape:expr, errors = $errors:expr) => {
        Operation {
            source: $source,
            name: $name,
            weight: $weight,
            read_only: $ro,
            data: $data,
            actors: $actors,
            services: $services,
            on_behalf: $behalf,
            shape: $shape,
            errors: $errors,
        }
    };
}

const S3: &str = "s3.amazonaws.com";
const KMS: &str = "kms.amazonaws.com";
const STS: &str = "sts.amazonaws.com";
const EC2: &str = "ec2.amazonaws.com";
const LAMBDA: &str = "lambda.amazonaws.com";
const DYNAMODB: &str = "dynamodb.amazonaws.com";
const IAM: &str = "iam.amazonaws.com";
const LOGS: &str = "logs.amazonaws.com";
const SSM: &str = "ssm.amazonaws.com";
const SECRETS_MANAGER: &str = "secretsmanager.amazonaws.com";
const SQS: &str = "sqs.amazonaws.com";
const MONITORING: &str = "monitoring.amazonaws.com";
const SIGNIN: &str = "signin.amazonaws.com";
const CLOUDFORMATION: &str = "cloudformation.amazonaws.com";
const ECR: &str = "ecr.amazonaws.com";

const NO_SUCH_KEY: (&str, &str, f64) = ("NoSuchKey", "The specified key does not exist.", 0.02);

/// The operations, with relative weights (they need not sum to anything).
pub const OPERATIONS: &[Operation] = &[
    // S3 data events: the bulk of a real trail, much of it from services.
    op!(
        S3,
        "GetObject",
        16.0,
        ro = true,
        data = true,
        actors = [0.25, 0.45, 0.3, 0.0],
        services = &[
            "s3.amazonaws.com",
            "athena.amazonaws.com",
            "firehose.amazonaws.com"
        ],
        behalf = (&["athena.amazonaws.com"], 0.05),
        Shape::S3Object,
        errors = &[NO_SUCH_KEY]
    ),
    op!(
        S3,
        "PutObject",
        12.0,
        ro = false,
        data = true,
        actors = [0.15, 0.3, 0.55, 0.0],
        services = &[
            "delivery.logs.amazonaws.com",
            "cloudtrail.amazonaws.com",
            "config.amazonaws.com"
        ],
        behalf = (NO_SERVICES, 0.0),
        Shape::S3Object,
        errors = &[]
    ),
    op!(
        S3,
        "HeadObject",
        4.0,
        ro = true,
        data = true,
        actors = [0.1, 0.6, 0.3, 0.0],
        services = &["s3.amazonaws.com", "athena.amazonaws.com"],
        behalf = (NO_SERVICES, 0.0),
        Shape::S3Object,
        errors = &[("NoSuchKey", "Not Found", 0.05)]
    ),
    op!(
        S3,
        "DeleteObject",
        0.8,
        ro = false,
        data = true,
        actors = [0.2, 0.8, 0.0, 0.0],
        Shape::S3Object
    ),
    op!(
        S3,
        "ListObjects",
        1.5,
        ro = true,
        data = true,
        actors = [0.4, 0.6, 0.0, 0.0],
        Shape::S3Bucket
    ),
    // S3 management.
    op!(
        S3,
        "GetBucketAcl",
        5.0,
        ro = true,
        data = false,
        actors = [0.05, 0.15, 0.8, 0.0],
        services = &[
            "cloudtrail.amazonaws.com",
            "delivery.logs.amazonaws.com",
            "config.amazonaws.com"
        ],
        behalf = (NO_SERVICES, 0.0),
        Shape::S3Bucket,
        errors = &[]
    ),
    op!(
        S3,
        "GetBucketLocation",
        1.0,
        ro = true,
        data = false,
        actors = [0.3, 0.7, 0.0, 0.0],
        Shape::S3Bucket
    ),
    op!(
        S3,
        "ListBuckets",
        0.6,
        ro = true,
        data = false,
        actors = [0.6, 0.4, 0.0, 0.0],
        Shape::S3Service
    ),
    op!(
        S3,
        "GetBucketPolicy",
        0.5,
        ro = true,
        data = false,
        actors = [0.3, 0.7, 0.0, 0.0],
        services = NO_SERVICES,
        behalf = (NO_SERVICES, 0.0),
        Shape::S3Bucket,
        errors = &[(
            "NoSuchBucketPolicy",
            "The bucket policy does not exist",
            0.4
        )]
    ),
    op!(
        S3,
        "PutBucketPolicy",
        0.02,
        ro = false,
        data = false,
        actors = [0.8, 0.2, 0.0, 0.0],
        Shape::S3Bucket
    ),
    // KMS, mostly on behalf of S3, Secrets Manager and Lambda.
    op!(
        KMS,
        "Decrypt",
        9.0,
        ro = true,
        data = false,
        actors = [0.1, 0.5, 0.4, 0.0],
        services = &["AWS Internal", "s3.amazonaws.com"],
        behalf = (
            &[
                "s3.amazonaws.com",
                "secretsmanager.amazonaws.com",
                "lambda.amazonaws.com"
            ],
            0.5
        ),
        Shape::Kms,
        errors = &[]
    ),
    op!(
        KMS,
        "GenerateDataKey",
        6.0,
        ro = true,
        data = false,
        actors = [0.05, 0.45, 0.5, 0.0],
        services = &["cloudtrail.amazonaws.com", "s3.amazonaws.com"],
        behalf = (&["s3.amazonaws.com", "secretsmanager.amazonaws.com"], 0.6),
        Shape::Kms,
        errors = &[]
    ),
    op!(
        KMS,
        "Encrypt",
        0.8,
        ro = true,
        data = false,
        actors = [0.1, 0.9, 0.0, 0.0],
        Shape::Kms
    ),
    // STS.
    op!(
        STS,
        "AssumeRole",
        5.0,
        ro = true,
        data = false,
        actors = [0.25, 0.55, 0.2, 0.0],
        services = &[
            "lambda.amazonaws.com",
            "ecs-tasks.amazonaws.com",
            "config.amazonaws.com"
        ],
        behalf = (NO_SERVICES, 0.0),
        Shape::AssumeRole,
        errors = &[]
    ),
    op!(
        STS,
        "GetCallerIdentity",
        2.5,
        ro = true,
        data = false,
        actors = [0.5, 0.5, 0.0, 0.0],
        Shape::NoParameters
    ),
    op!(
        STS,
        "AssumeRoleWithWebIdentity",
        0.6,
        ro = true,
        data = false,
        actors = [0.0, 0.0, 1.0, 0.0],
        services = &["token.actions.githubusercontent.com"],
        behalf = (NO_SERVICES, 0.0),
        Shape::AssumeRole,
        errors = &[]
    ),
    // EC2.
    op!(
        EC2,
        "DescribeInstances",
        3.0,
        ro = true,
        data = false,
        actors = [0.2, 0.8, 0.0, 0.0],
        services = NO_SERVICES,
        behalf = (
            &["autoscaling.amazonaws.com", "inspector2.amazonaws.com"],
            0.2
        ),
        Shape::Ec2Describe,
        errors = &[(
            "Client.UnauthorizedOperation",
            "You are not authorized to perform this operation.",
            0.01
        )]
    ),
    op!(
        EC2,
        "DescribeSecurityGroups",
        1.2,
        ro = true,
        data = false,
        actors = [0.3, 0.7, 0.0, 0.0],
        Shape::Ec2Describe
    ),
    op!(
        EC2,
        "DescribeVolumes",
        0.8,
        ro = true,
        data = false,
        actors = [0.2, 0.8, 0.0, 0.0],
        Shape::Ec2Describe
    ),
    op!(
        EC2,
        "DescribeNetworkInterfaces",
        1.0,
        ro = true,
        data = false,
        actors = [0.1, 0.9, 0.0, 0.0],
        Shape::Ec2Describe
    ),
    op!(
        EC2,
        "DescribeRouteTables",
        0.5,
        ro = true,
        data = false,
        actors = [0.3, 0.7, 0.0, 0.0],
        Shape::Ec2Describe
    ),
    op!(
        EC2,
        "RunInstances",
        0.15,
        ro = false,
        data = false,
        actors = [0.4, 0.6, 0.0, 0.0],
        services = NO_SERVICES,
        behalf = (&["autoscaling.amazonaws.com"], 0.5),
        Shape::Ec2Instances,
        errors = &[(
            "Client.InvalidParameterValue",
            "Value (web-instance-profile) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
            0.05
        )]
    ),
    op!(
        EC2,
        "TerminateInstances",
        0.1,
        ro = false,
        data = false,
        actors = [0.3, 0.7, 0.0, 0.0],
        services = NO_SERVICES,
        behalf = (&["autoscaling.amazonaws.com"], 0.6),
        Shape::Ec2Instances,
        errors = &[]
    ),
    op!(
        EC2,
        "CreateTags",
        0.3,
        ro = false,
        data = false,
        actors = [0.4, 0.6, 0.0, 0.0],
        Shape::Ec2Instances
    ),
    // Lambda.
    op!(
        LAMBDA,
        "Invoke",
        4.0,
        ro = false,
        data = true,
        actors = [0.05, 0.6, 0.35, 0.0],
        services = &[
            "apigateway.amazonaws.com",
            "events.amazonaws.com",
            "sqs.amazonaws.com"
        ],
        behalf = (NO_SERVICES, 0.0),
        Shape::LambdaInvoke,
        errors = &[("TooManyRequestsException", "Rate Exceeded.", 0.01)]
    ),
    op!(
        LAMBDA,
        "GetFunction",
        0.5,
        ro = true,
        data = false,
        actors = [0.4, 0.6, 0.0, 0.0],
        Shape::LambdaFunction
    ),
    op!(
        LAMBDA,
        "UpdateFunctionCode",
        0.05,
        ro = false,
        data = false,
        actors = [0.2, 0.8, 0.0, 0.0],
        Shape::LambdaFunction
    ),
    // DynamoDB data and management.
    op!(
        DYNAMODB,
        "GetItem",
        3.5,
        ro = true,
        data = true,
        actors = [0.02, 0.98, 0.0, 0.0],
        Shape::DynamoItem
    ),
    op!(
        DYNAMODB,
        "PutItem",
        2.0,
        ro = false,
        data = true,
        actors = [0.02, 0.98, 0.0, 0.0],
        services = NO_SERVICES,
        behalf = (NO_SERVICES, 0.0),
        Shape::DynamoItem,
        errors = &[(
            "ConditionalCheckFailedException",
            "The conditional request failed",
            0.03
        )]
    ),
    op!(
        DYNAMODB,
        "Query",
        2.0,
        ro = true,
        data = true,
        actors = [0.05, 0.95, 0.0, 0.0],
        Shape::DynamoItem
    ),
    op!(
        DYNAMODB,
        "UpdateItem",
        1.0,
        ro = false,
        data = true,
        actors = [0.02, 0.98, 0.0, 0.0],
        Shape::DynamoItem
    ),
    op!(
        DYNAMODB,
        "DescribeTable",
        1.0,
        ro = true,
        data = false,
        actors = [0.3, 0.6, 0.1, 0.0],
        services = &["application-autoscaling.amazonaws.com"],
        behalf = (NO_SERVICES, 0.0),
        Shape::DynamoTable,
        errors = &[]
    ),
    op!(
        DYNAMODB,
        "ListTables",
        0.3,
        ro = true,
        data = false,
        actors = [0.6, 0.4, 0.0, 0.0],
        Shape::NoParameters
    ),
    // IAM (global).
    op!(
        IAM,
        "GetUser",
        0.3,
        ro = true,
        data = false,
        actors = [0.7, 0.3, 0.0, 0.0],
        Shape::IamUser
    ),
    op!(
        IAM,
        "ListRoles",
        0.3,
        ro = true,
        data = false,
        actors = [0.4, 0.6, 0.0, 0.0],
        Shape::NoParameters
    ),
    op!(
        IAM,
        "GetRole",
        0.5,
        ro = true,
        data = false,
        actors = [0.3, 0.7, 0.0, 0.0],
        Shape::IamRole
    ),
    op!(
        IAM,
        "ListAttachedRolePolicies",
        0.3,
        ro = true,
        data = false,
        actors = [0.3, 0.7, 0.0, 0.0],
        Shape::IamRole
    ),
    op!(
        IAM,
        "CreateAccessKey",
        0.02,
        ro = false,
        data = false,
        actors = [0.9, 0.1, 0.0, 0.0],
        Shape::IamUser
    ),
    op!(
        IAM,
        "AttachRolePolicy",
        0.03,
        ro = false,
        data = false,
        actors = [0.5, 0.5, 0.0, 0.0],
        Shape::IamRole
    ),
    // Logs, SSM, Secrets Manager, SQS, CloudWatch, ECR.
    op!(
        LOGS,
        "CreateLogStream",
        2.0,
        ro = false,
        data = false,
        actors = [0.0, 1.0, 0.0, 0.0],
        Shape::LogStream
    ),
    op!(
        LOGS,
        "DescribeLogGroups",
        0.5,
        ro = true,
        data = false,
        actors = [0.3, 0.7, 0.0, 0.0],
        Shape::LogStream
    ),
    op!(
        SSM,
        "GetParameter",
        2.0,
        ro = true,
        data = false,
        actors = [0.1, 0.9, 0.0, 0.0],
        services = NO_SERVICES,
        behalf = (NO_SERVICES, 0.0),
        Shape::SsmParameter,
        errors = &[("ParameterNotFound", "Parameter not found.", 0.02)]
    ),
    op!(
        SSM,
        "UpdateInstanceInformation",
        1.0,
        ro = false,
        data = false,
        actors = [0.0, 1.0, 0.0, 0.0],
        Shape::NoParameters
    ),
    op!(
        SECRETS_MANAGER,
        "GetSecretValue",
        1.5,
        ro = true,
        data = false,
        actors = [0.05, 0.95, 0.0, 0.0],
        Shape::Secret
    ),
    op!(
        SQS,
        "SendMessage",
        2.0,
        ro = false,
        data = true,
        actors = [0.0, 0.8, 0.2, 0.0],
        services = &["events.amazonaws.com", "sns.amazonaws.com"],
        behalf = (NO_SERVICES, 0.0),
        Shape::SqsMessage,
        errors = &[]
    ),
    op!(
        SQS,
        "ReceiveMessage",
        2.0,
        ro = true,
        data = true,
        actors = [0.0, 0.7, 0.3, 0.0],
        services = &["lambda.amazonaws.com"],
        behalf = (NO_SERVICES, 0.0),
        Shape::SqsMessage,
        errors = &[]
    ),
    op!(
        MONITORING,
        "GetMetricData",
        1.0,
        ro = true,
        data = false,
        actors = [0.2, 0.8, 0.0, 0.0],
        Shape::Metrics
    ),
    op!(
        MONITORING,
        "DescribeAlarms",
        0.5,
        ro = true,
        data = false,
        actors = [0.3, 0.7, 0.0, 0.0],
        Shape::Metrics
    ),
    op!(
        ECR,
        "GetAuthorizationToken",
        0.5,
        ro = true,
        data = false,
        actors = [0.2, 0.8, 0.0, 0.0],
        Shape::Ecr
    ),
    op!(
        ECR,
        "BatchGetImage",
        0.5,
        ro = true,
        data = false,
        actors = [0.0, 1.0, 0.0, 0.0],
        Shape::Ecr
    ),
    op!(
        CLOUDFORMATION,
        "DescribeStacks",
        0.5,
        ro = true,
        data = false,
        actors = [0.4, 0.6, 0.0, 0.0],
        Shape::CloudFormation
    ),
    op!(
        SIGNIN,
        "ConsoleLogin",
        0.1,
        ro = false,
        data = false,
        actors = [0.7, 0.0, 0.0, 0.3],
        services = NO_SERVICES,
        behalf = (NO_SERVICES, 0.0),
        Shape::ConsoleLogin,
        errors = &[]
    ),
];

/// Whether a service records its calls in us-east-1 (global services).
pub fn is_global(source: &str) -> bool {
    matches!(source, "iam.amazonaws.com" | "signin.amazonaws.com")
}

/// General errors any caller may hit, beyond an operation's own: AccessDenied dominates.
pub const GENERAL_ERRORS: [(&str, f64); 2] =
    [("AccessDenied", 0.03), ("ThrottlingException", 0.004)];

/// Roles whose permissions are wrong: a large share of their calls are denied, which is
/// how AccessDenied concentrates on a few principals in real trails.
pub const MISCONFIGURED_ROLES: [&str; 2] =
    ["reports-batch-ecs-task-role", "image-resize-lambda-role"];
