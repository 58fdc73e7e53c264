//! Lookups, whichever API asks: the one place a request's lookup becomes a store
//! [`LookupQuery`] (account scoping, cursor decoding, lane), and the store call itself.

use opentrail_protocol::AwsError;
use opentrail_protocol::lookup_events::ValidatedLookup;
use opentrail_protocol::native::NativeLookup;
use opentrail_store::{EventLane, LookupQuery, PageCursor};

use crate::api_error::ApiError;
use crate::auth::Caller;
use crate::state::AppState;

/// The store query of a native lookup (`GET /v1/events`, the console): any filters, the
/// account it names if the caller may see it, any region.
pub fn native_query(
    state: &AppState,
    caller: &Caller,
    lookup: &NativeLookup,
) -> Result<LookupQuery, ApiError> {
    Ok(LookupQuery {
        account_id: scoped_account(state, caller, lookup.account.as_deref())?,
        region: lookup.region.clone(),
        lane: lane(lookup.insight),
        filters: lookup.filters.clone(),
        start_time_ms: lookup.start_ms,
        end_time_ms: lookup.end_ms,
        limit: lookup.limit,
        cursor: decode_page_cursor(lookup.decode_cursor()?)?,
    })
}

/// The store query of a LookupEvents call: at most one attribute, the region the call was
/// signed for, as CloudTrail's event history is regional.
pub fn lookup_events_query(
    state: &AppState,
    caller: &Caller,
    lookup: &ValidatedLookup,
) -> Result<LookupQuery, ApiError> {
    Ok(LookupQuery {
        account_id: scoped_account(state, caller, None)?,
        region: Some(caller.region.clone()),
        lane: lane(lookup.insight),
        filters: lookup.attribute.clone().into_iter().collect(),
        start_time_ms: lookup.start_ms,
        end_time_ms: lookup.end_ms,
        limit: lookup.max_results,
        cursor: decode_page_cursor(lookup.decode_cursor()?)?,
    })
}

fn lane(insight: bool) -> EventLane {
    if insight {
        EventLane::Insight
    } else {
        EventLane::Standard
    }
}

/// Which account a caller's lookup covers: its own; for an admin of the default account,
/// every account, or the one it names.
pub fn scoped_account(
    state: &AppState,
    caller: &Caller,
    requested: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let sees_every_account = caller.is_admin_of_default_account(&state.config.account_id);
    match requested {
        Some(account) if sees_every_account || account == caller.account_id => {
            Ok(Some(account.to_owned()))
        }
        Some(_) => Err(ApiError(AwsError::access_denied(
            "Only an admin key of the default account may look up another account's events.",
        ))),
        None if sees_every_account => Ok(None),
        None => Ok(Some(caller.account_id.clone())),
    }
}

/// A cursor from a client is untrusted bytes: anything that is not a store cursor is an
/// invalid token, never a panic.
fn decode_page_cursor(bytes: Option<Vec<u8>>) -> Result<Option<PageCursor>, ApiError> {
    bytes
        .map(|bytes| {
            PageCursor::from_bytes(&bytes).ok_or_else(|| {
                ApiError(AwsError::invalid_next_token(
                    "The pagination token is invalid.",
                ))
            })
        })
        .transpose()
}

/// Runs a store lookup off the async threads (it may read from disk).
pub async fn run_lookup(
    state: &AppState,
    query: LookupQuery,
) -> Result<opentrail_store::LookupPage, ApiError> {
    let store = state.store.clone();
    let started = std::time::Instant::now();
    let page = tokio::task::spawn_blocking(move || store.lookup(&query))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    metrics::histogram!("opentrail_lookup_seconds").record(started.elapsed().as_secs_f64());
    Ok(page)
}
