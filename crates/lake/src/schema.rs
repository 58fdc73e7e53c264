//! The table every event data store is: CloudTrail Lake's columns, the lower-case record
//! fields (`../shared/cloudtrail-spec.md` §7.1), nested objects as structs, free-form
//! objects (`requestparameters`, …) as `map<string,string>` whose nested values are JSON
//! text, and `eventjson`, the whole record.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// The table's schema (one instance, shared).
pub fn lake_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(build_schema);
    Arc::clone(&SCHEMA)
}

/// Columns a sealed segment's Parquet holds under the same name and type; a query that
/// needs only these never reads a record of a segment.
pub const SEGMENT_COLUMNS: [&str; 10] = [
    "eventid",
    "eventname",
    "eventsource",
    "eventtime",
    "recipientaccountid",
    "awsregion",
    "eventcategory",
    "readonly",
    "sourceipaddress",
    "errorcode",
];

/// Columns derived from the record as the store derives them (`readonly` inferred when the
/// record has none, `eventcategory` defaulting to `Management`), so that a column reads
/// the same from a segment's Parquet and from a record.
pub(crate) fn is_derived_column(name: &str) -> bool {
    SEGMENT_COLUMNS.contains(&name)
}

pub(crate) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn structure(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}

fn string_map(name: &str) -> Field {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, true),
        ])),
        false,
    );
    Field::new(name, DataType::Map(Arc::new(entries), false), true)
}

fn build_schema() -> SchemaRef {
    let issuer = |name: &str| {
        structure(
            name,
            vec![
                text("type"),
                text("principalid"),
                text("arn"),
                text("accountid"),
                text("username"),
            ],
        )
    };
    let session_context = structure(
        "sessioncontext",
        vec![
            structure(
                "attributes",
                vec![
                    Field::new("creationdate", timestamp_type(), true),
                    text("mfaauthenticated"),
                ],
            ),
            issuer("sessionissuer"),
            structure(
                "webidfederationdata",
                vec![text("federatedprovider"), string_map("attributes")],
            ),
            text("sourceidentity"),
            text("ec2roledelivery"),
            text("ec2issuedinvpc"),
        ],
    );
    let user_identity = structure(
        "useridentity",
        vec![
            text("type"),
            text("principalid"),
            text("arn"),
            text("accountid"),
            text("accesskeyid"),
            text("username"),
            session_context,
            text("invokedby"),
            text("identityprovider"),
            text("credentialid"),
            structure("onbehalfof", vec![text("userid"), text("identitystorearn")]),
        ],
    );
    let resource = Field::new(
        "item",
        DataType::Struct(Fields::from(vec![
            text("accountid"),
            text("type"),
            text("arn"),
            text("arnprefix"),
        ])),
        true,
    );
    Arc::new(Schema::new(vec![
        text("eventversion"),
        user_identity,
        Field::new("eventtime", timestamp_type(), true),
        text("eventsource"),
        text("eventname"),
        text("awsregion"),
        text("sourceipaddress"),
        text("useragent"),
        text("errorcode"),
        text("errormessage"),
        string_map("requestparameters"),
        string_map("responseelements"),
        string_map("additionaleventdata"),
        text("requestid"),
        text("eventid"),
        Field::new("readonly", DataType::Boolean, true),
        Field::new("resources", DataType::List(Arc::new(resource)), true),
        text("eventtype"),
        text("apiversion"),
        Field::new("managementevent", DataType::Boolean, true),
        text("recipientaccountid"),
        string_map("serviceeventdetails"),
        text("sharedeventid"),
        text("annotation"),
        text("vpcendpointid"),
        text("vpcendpointaccountid"),
        text("eventcategory"),
        structure(
            "addendum",
            vec![
                text("reason"),
                text("updatedfields"),
                text("originalrequestid"),
                text("originaleventid"),
            ],
        ),
        text("sessioncredentialfromconsole"),
        text("edgedevicedetails"),
        structure(
            "tlsdetails",
            vec![
                text("tlsversion"),
                text("ciphersuite"),
                text("clientprovidedhostheader"),
            ],
        ),
        text("eventjson"),
    ]))
}
