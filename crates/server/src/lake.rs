//! CloudTrail Lake in the server: the event data stores and the queries over them, kept
//! under `DATA_DIR/lake` (`routes/lake.rs` answers the API).

use std::time::Duration;

use opentrail_lake::data_stores::{DataStoreError, EventDataStore, EventDataStores};
use opentrail_lake::queries::{Queries, QueryOptions};
use opentrail_lake::{Lake, LakeOptions};
use opentrail_store::Store;

use crate::config::Config;
use crate::error::ServeError;

/// Where event data stores, query results and spill files live, under the data directory.
pub const LAKE_DIR_NAME: &str = "lake";

/// The event data stores and their queries. Cheap to clone.
#[derive(Clone)]
pub struct LakeService {
    pub data_stores: EventDataStores,
    pub queries: Queries,
}

impl LakeService {
    /// The account's event data stores that `statement` names by id: each must exist in
    /// the account (else `NotFound`, as another account's does) and be enabled.
    pub fn stores_named(
        &self,
        account_id: &str,
        region: &str,
        statement: &str,
    ) -> Result<Vec<EventDataStore>, DataStoreError> {
        let stores = self.data_stores.list(account_id, region);
        opentrail_lake::data_store_ids_in(statement)
            .into_iter()
            .map(|id| {
                let store = stores
                    .iter()
                    .find(|store| store.id == id)
                    .ok_or_else(|| DataStoreError::NotFound(id.clone()))?;
                if store.is_enabled() {
                    Ok(store.clone())
                } else {
                    Err(DataStoreError::Inactive(id))
                }
            })
            .collect()
    }
}

/// Where SQL finds the events the store's retention dropped: the archive the server
/// moves them to (`DATA_DIR/archive`), for the server and for `opentrail query` alike.
pub fn archive_dir(config: &Config) -> std::path::PathBuf {
    config.data_dir.join(crate::app::ARCHIVE_DIR_NAME)
}

/// Opens (creating) `DATA_DIR/lake`. Blocking.
pub fn open_lake(config: &Config, store: &Store) -> Result<LakeService, ServeError> {
    let lake_dir = config.data_dir.join(LAKE_DIR_NAME);
    let spill_dir = lake_dir.join("spill");
    let lake_error = |detail: String| ServeError::Lake {
        path: lake_dir.clone(),
        detail,
    };
    std::fs::create_dir_all(&spill_dir).map_err(|error| lake_error(error.to_string()))?;
    let options = LakeOptions {
        memory_limit_bytes: usize::try_from(u64::from(config.lake_memory_limit_mb) << 20)
            .unwrap_or(usize::MAX),
        spill_dir: Some(spill_dir),
        archive_dir: Some(archive_dir(config)),
        ..LakeOptions::default()
    };
    let lake = Lake::new(store.clone(), options).map_err(|error| lake_error(error.to_string()))?;
    let data_stores =
        EventDataStores::open(&lake_dir).map_err(|error| lake_error(error.to_string()))?;
    let query_options = QueryOptions {
        time_limit: Duration::from_secs(u64::from(config.lake_query_timeout_secs)),
        ..QueryOptions::default()
    };
    let queries = Queries::open(
        lake,
        &lake_dir.join("queries"),
        query_options,
        jiff::Timestamp::now().as_millisecond(),
    )
    .map_err(|error| lake_error(error.to_string()))?;
    Ok(LakeService {
        data_stores,
        queries,
    })
}
