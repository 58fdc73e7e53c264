//! [`Trails`]: the trail operations the server exposes, and the background workers.
//!
//! Rules (spec §2.2):
//! - A trail belongs to one account and has a home region (where it was created). It is
//!   visible in its home region and, when multi-region, as a shadow trail everywhere.
//! - A name resolves among the caller's trails visible in the caller's region (the home
//!   trail first); an ARN resolves among the caller's trails in any region.
//! - Changes (update, delete, start, stop, selectors) must happen in the home region.
//! - Names are unique per account among trails visible in a region; at most
//!   [`TrailsOptions::trails_per_region_max`] trails are visible per account and region.
//! - A trail is not logging until StartLogging.
//! - Insights selectors (PutInsightSelectors) need the events they analyse: write
//!   management events for `ApiCallRateInsight` on management events, any management
//!   events for `ApiErrorRateInsight`, data events for either on data events. Turning
//!   Insights on delivers Insights recorded from then on (nothing is back-filled); turning
//!   them off forgets the Insights worker's cursor, so it never holds retention back.
//!
//! Workers: each trail's delivery, digest and stream workers are the supervisor's
//! (`supervisor.rs`); every change to a trail is published to them. [`Trails::shutdown`]
//! signals every worker and waits for them; it must run before the store closes.

use std::path::PathBuf;
use std::sync::Arc;

use opentrail_store::{LogConsumer, Store};

use crate::delivery::{DeliveryContext, DeliveryKind, load_state};
use crate::destinations::{DestinationError, Destinations};
use crate::digest::DigestContext;
use crate::digest_keys::{DigestKeys, PublicKeyInfo};
use crate::error::TrailsError;
use crate::manifest::Manifest;
use crate::model::{
    EventSelectors, InsightSelector, LoggingHistory, SnsTopic, Tag, Trail, TrailSettings, trail_arn,
};
use crate::notify::Notifier;
use crate::options::TrailsOptions;
use crate::registry::{PendingCleanup, TrailRegistry};
use crate::selectors::{logs_data_events, logs_management_events};
use crate::status::{StatusHandle, Statuses, TrailStatus, status_snapshot, update_status};
use crate::streams::{StreamContext, load_stream_status, sink_for};
use crate::supervisor::{Supervisor, WorkerContexts};

/// Tags per resource (CloudTrail's limit).
pub const TAGS_PER_RESOURCE_MAX: usize = 50;
/// Digest signing keys live in `DATA_DIR/digest-keys`.
pub const DIGEST_KEYS_DIR_NAME: &str = "digest-keys";
/// Which trail a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrailRef {
    Name(String),
    Arn {
        region: String,
        account_id: String,
        name: String,
    },
}

impl TrailRef {
    /// How the request named the trail, for error messages.
    pub fn display(&self) -> String {
        match self {
            TrailRef::Name(name) => name.clone(),
            TrailRef::Arn {
                region,
                account_id,
                name,
            } => trail_arn(region, account_id, name),
        }
    }
}

/// Who is asking: the caller's account and signing region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub account_id: String,
    pub region: String,
}

/// What CreateTrail asks for, validated and with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTrail {
    pub name: String,
    pub s3_bucket_name: String,
    pub s3_key_prefix: Option<String>,
    /// A topic name or ARN.
    pub sns_topic_name: Option<String>,
    pub include_global_service_events: bool,
    pub is_multi_region_trail: bool,
    pub enable_log_file_validation: bool,
    pub cloud_watch_logs_log_group_arn: Option<String>,
    pub cloud_watch_logs_role_arn: Option<String>,
    pub recursive_logging: bool,
    pub tags: Vec<Tag>,
}

/// What UpdateTrail may change: `None` keeps a setting; `Some(None)` clears an optional
/// one (the API's empty string).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrailUpdate {
    pub s3_bucket_name: Option<String>,
    pub s3_key_prefix: Option<Option<String>>,
    pub sns_topic_name: Option<Option<String>>,
    pub include_global_service_events: Option<bool>,
    pub is_multi_region_trail: Option<bool>,
    pub enable_log_file_validation: Option<bool>,
    pub cloud_watch_logs_log_group_arn: Option<Option<String>>,
    pub cloud_watch_logs_role_arn: Option<Option<String>>,
    pub recursive_logging: Option<bool>,
}

/// One Insights type a trail has turned on, with where it applies: what the Insights
/// analysis asks ([`Trails::insight_selections`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsightSelection {
    pub account_id: String,
    pub home_region: String,
    /// A multi-region trail: Insights in every region of the account.
    pub all_regions: bool,
    /// `ApiCallRateInsight` or `ApiErrorRateInsight`.
    pub insight_type: String,
    /// `Management` and/or `Data`.
    pub event_categories: Vec<String>,
    /// Whether the trail is logging now (a stopped trail delivers nothing new).
    pub logging: bool,
}

/// The handle the server keeps. Cheap to clone.
#[derive(Clone)]
pub struct Trails {
    inner: Arc<Inner>,
}

struct Inner {
    registry: TrailRegistry,
    store: Store,
    options: TrailsOptions,
    destinations: Arc<Destinations>,
    digest_keys: Arc<DigestKeys>,
    notifier: Notifier,
    statuses: Arc<Statuses>,
    supervisor: Supervisor,
}

impl Trails {
    /// Opens the registry and finishes interrupted deletions. Blocking. Workers start
    /// with [`Trails::start`].
    pub fn open(store: Store, options: TrailsOptions) -> Result<Trails, TrailsError> {
        let trails_dir = options.data_dir.join("trails");
        let registry = TrailRegistry::open(&trails_dir)?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(|error| TrailsError::Task(format!("cannot build the HTTP client: {error}")))?;
        let notifier = Notifier::new(http.clone(), options.sns_topics.clone());
        let digest_keys = DigestKeys::open(
            &options.data_dir.join(DIGEST_KEYS_DIR_NAME),
            options.digest.key_rotation,
        )?;
        let destinations = Arc::new(Destinations::new(Arc::clone(&options.destination)));
        let digest_keys = Arc::new(digest_keys);
        let statuses = Arc::new(Statuses::default());
        let contexts = WorkerContexts {
            delivery: Arc::new(DeliveryContext {
                store: store.clone(),
                destinations: Arc::clone(&destinations),
                notifier: notifier.clone(),
                options: options.delivery.clone(),
                default_account_id: options.default_account_id.clone(),
            }),
            digest: Arc::new(DigestContext {
                store: store.clone(),
                destinations: Arc::clone(&destinations),
                keys: Arc::clone(&digest_keys),
                options: options.digest.clone(),
            }),
            stream: Arc::new(StreamContext {
                store: store.clone(),
                client: http,
                options: options.streams.clone(),
                default_account_id: options.default_account_id.clone(),
            }),
            log_groups: options.log_groups.clone(),
        };
        let supervisor = Supervisor::new(contexts, trails_dir, Arc::clone(&statuses));
        let trails = Trails {
            inner: Arc::new(Inner {
                destinations,
                digest_keys,
                registry,
                store,
                notifier,
                options,
                statuses,
                supervisor,
            }),
        };
        trails.finish_cleanups()?;
        trails.forget_stale_insights_cursors()?;
        for trail in trails.inner.registry.trails() {
            let status = trails.status_handle(&trail.id);
            let trail_dir = trails.trail_dir(&trail.id);
            match load_state(&trail_dir) {
                Ok(state) => {
                    update_status(&status, |current| current.restore_delivery(&state.status))
                }
                Err(error) => {
                    tracing::error!(trail = trail.arn().as_str(), %error, "cannot read the delivery state")
                }
            }
            load_stream_status(&trail_dir, &status);
        }
        Ok(trails)
    }

    /// The destinations (buckets) trails deliver to.
    pub fn destinations(&self) -> Arc<Destinations> {
        Arc::clone(&self.inner.destinations)
    }

    pub fn options(&self) -> &TrailsOptions {
        &self.inner.options
    }

    /// A trail's state directory: `DATA_DIR/trails/<trail id>`.
    pub fn trail_dir(&self, trail_id: &str) -> PathBuf {
        self.inner.options.data_dir.join("trails").join(trail_id)
    }

    /// The manifest of delivered files of a trail (for the digest writer).
    pub fn manifest(&self, trail_id: &str) -> Manifest {
        Manifest::new(&self.trail_dir(trail_id))
    }

    /// Every trail, in creation order.
    pub fn all_trails(&self) -> Vec<Trail> {
        self.inner.registry.trails()
    }

    fn status_handle(&self, trail_id: &str) -> StatusHandle {
        self.inner.statuses.handle(trail_id)
    }

    /// Removes what deleted trails left behind (cursors, state directories). Blocking.
    fn finish_cleanups(&self) -> Result<(), TrailsError> {
        let cleanups = self.inner.registry.snapshot().cleanups.clone();
        for cleanup in &cleanups {
            for consumer in &cleanup.consumers {
                self.inner.store.delete_cursor(consumer)?;
            }
            let dir = self.trail_dir(&cleanup.trail_id);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(TrailsError::Write { path: dir, source }),
            }
        }
        if !cleanups.is_empty() {
            self.inner.registry.mutate(|contents| {
                contents.cleanups.retain(|pending| {
                    !cleanups
                        .iter()
                        .any(|done| done.trail_id == pending.trail_id)
                });
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Removes the Insights cursor of trails without Insights selectors: a crash between
    /// saving it (PutInsightSelectors turning Insights on) and recording the selectors, or
    /// between recording their removal and deleting it, would otherwise leave a cursor
    /// that holds retention back for ever. Blocking.
    fn forget_stale_insights_cursors(&self) -> Result<(), TrailsError> {
        for trail in self.inner.registry.snapshot().trails.iter() {
            if trail.has_insight_selectors() {
                continue;
            }
            let consumer = trail.insights_consumer();
            // Each deletion rewrites the store's meta file, so only existing ones.
            if self.inner.store.load_cursor(&consumer)? > 0 {
                self.inner.store.delete_cursor(&consumer)?;
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ workers

    /// Starts the workers of every trail on the current tokio runtime.
    pub fn start(&self) {
        self.inner.supervisor.start(self.inner.registry.trails());
    }

    /// Signals every worker to stop and waits for them (each finishes or abandons its
    /// current step; an abandoned batch is redone at the next start).
    pub async fn shutdown(&self) {
        self.inner.supervisor.shutdown().await;
    }

    /// The digest signing keys of this server.
    pub fn digest_keys(&self) -> Arc<DigestKeys> {
        Arc::clone(&self.inner.digest_keys)
    }

    /// ListPublicKeys: the digest public keys of `region` valid at some time in
    /// `[start_ms, end_ms]`.
    pub fn list_public_keys(&self, region: &str, start_ms: i64, end_ms: i64) -> Vec<PublicKeyInfo> {
        self.inner.digest_keys.public_keys(region, start_ms, end_ms)
    }

    /// Tells a trail's workers about its new version.
    async fn publish(&self, changed: &Trail) {
        // The registry's current version, not the caller's: two concurrent changes may
        // publish in the other order than they were written, and the last word must be
        // the registry's.
        let Some(current) = self
            .inner
            .registry
            .trails()
            .into_iter()
            .find(|trail| trail.id == changed.id)
        else {
            return;
        };
        self.inner.supervisor.publish(&current).await;
    }

    // ------------------------------------------------------------------ lookups

    fn resolve(
        &self,
        trails: &[Trail],
        scope: &Scope,
        reference: &TrailRef,
    ) -> Result<Trail, TrailsError> {
        let found = match reference {
            TrailRef::Name(name) => trails
                .iter()
                .filter(|trail| trail.account_id == scope.account_id && &trail.name == name)
                .filter(|trail| trail.is_visible_in(&scope.region))
                .min_by_key(|trail| trail.home_region != scope.region),
            TrailRef::Arn {
                region,
                account_id,
                name,
            } => trails.iter().find(|trail| {
                account_id == &scope.account_id
                    && &trail.account_id == account_id
                    && &trail.home_region == region
                    && &trail.name == name
            }),
        };
        found
            .cloned()
            .ok_or_else(|| TrailsError::NotFound(unknown_trail_message(reference, scope)))
    }

    /// A trail the caller may see (shadow trails included).
    pub fn get_trail(&self, scope: &Scope, reference: &TrailRef) -> Result<Trail, TrailsError> {
        self.resolve(&self.inner.registry.trails(), scope, reference)
    }

    /// DescribeTrails: the named trails (unknown names are left out, as in CloudTrail),
    /// or every trail visible in the region (shadow trails only when asked).
    pub fn describe_trails(
        &self,
        scope: &Scope,
        references: &[TrailRef],
        include_shadow_trails: bool,
    ) -> Vec<Trail> {
        let trails = self.inner.registry.trails();
        if references.is_empty() {
            return trails
                .into_iter()
                .filter(|trail| trail.account_id == scope.account_id)
                .filter(|trail| {
                    trail.home_region == scope.region
                        || (include_shadow_trails && trail.is_visible_in(&scope.region))
                })
                .collect();
        }
        let mut found: Vec<Trail> = Vec::new();
        for reference in references {
            if let Ok(trail) = self.resolve(&trails, scope, reference)
                && !found.iter().any(|seen| seen.id == trail.id)
            {
                found.push(trail);
            }
        }
        found
    }

    /// ListTrails: every trail of the account, in every region.
    pub fn list_trails(&self, account_id: &str) -> Vec<Trail> {
        self.inner
            .registry
            .trails()
            .into_iter()
            .filter(|trail| trail.account_id == account_id)
            .collect()
    }

    /// GetTrailStatus.
    pub fn status(
        &self,
        scope: &Scope,
        reference: &TrailRef,
    ) -> Result<(Trail, TrailStatus), TrailsError> {
        let trail = self.get_trail(scope, reference)?;
        let status = status_snapshot(&self.status_handle(&trail.id));
        Ok((trail, status))
    }

    /// Every Insights selector of every trail, with its trail's account, regions and
    /// logging state. Reads a snapshot of the registry: cheap enough to ask every few
    /// seconds.
    pub fn insight_selections(&self) -> Vec<InsightSelection> {
        self.inner
            .registry
            .snapshot()
            .trails
            .iter()
            .flat_map(|trail| {
                trail
                    .insight_selectors
                    .iter()
                    .map(move |selector| InsightSelection {
                        account_id: trail.account_id.clone(),
                        home_region: trail.home_region.clone(),
                        all_regions: trail.settings.is_multi_region_trail,
                        insight_type: selector.insight_type.clone(),
                        event_categories: selector.event_categories.clone(),
                        logging: trail.logging.is_logging,
                    })
            })
            .collect()
    }

    /// The status handle of a trail, for the digest writer to report into.
    pub fn status_of(&self, trail_id: &str) -> StatusHandle {
        self.status_handle(trail_id)
    }

    // ------------------------------------------------------------------ changes

    fn check_notification_and_streams(
        &self,
        sns_topic: Option<&SnsTopic>,
        log_group: Option<&str>,
    ) -> Result<(), TrailsError> {
        if let Some(topic) = sns_topic
            && !self.inner.notifier.is_configured(topic)
        {
            return Err(TrailsError::SnsTopicNotConfigured(topic.given.clone()));
        }
        if let Some(log_group) = log_group
            && sink_for(&self.inner.options.log_groups, log_group).is_none()
        {
            return Err(TrailsError::LogGroupNotConfigured(log_group.to_owned()));
        }
        Ok(())
    }

    async fn prepare_bucket(&self, bucket: &str) -> Result<(), TrailsError> {
        self.inner
            .destinations
            .prepare_bucket(bucket)
            .await
            .map_err(|error| match error {
                DestinationError::BucketDoesNotExist { bucket } => {
                    TrailsError::BucketDoesNotExist(bucket)
                }
                other => TrailsError::DestinationUnavailable(other.to_string()),
            })
    }

    /// The log position now: StartLogging/StopLogging record it.
    async fn last_seq(&self) -> Result<u64, TrailsError> {
        let store = self.inner.store.clone();
        let stats = crate::consumer::blocking(move || store.stats()).await?;
        Ok(stats.last_seq)
    }

    async fn mutate<R: Send + 'static>(
        &self,
        change: impl FnOnce(&mut crate::registry::RegistryContents) -> Result<R, TrailsError>
        + Send
        + 'static,
    ) -> Result<R, TrailsError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.registry.mutate(change))
            .await
            .map_err(|error| TrailsError::Task(error.to_string()))?
    }

    /// CreateTrail.
    pub async fn create_trail(&self, scope: &Scope, new: NewTrail) -> Result<Trail, TrailsError> {
        let sns_topic = new
            .sns_topic_name
            .as_deref()
            .map(|given| sns_topic(given, &scope.region, &scope.account_id));
        self.check_notification_and_streams(
            sns_topic.as_ref(),
            new.cloud_watch_logs_log_group_arn.as_deref(),
        )?;
        if new.tags.len() > TAGS_PER_RESOURCE_MAX {
            return Err(TrailsError::TagsLimitExceeded {
                limit: TAGS_PER_RESOURCE_MAX,
            });
        }
        self.check_create_rules(&self.inner.registry.trails(), scope, &new)?;
        self.prepare_bucket(&new.s3_bucket_name).await?;
        let trail = Trail {
            id: uuid::Uuid::new_v4().to_string(),
            name: new.name.clone(),
            account_id: scope.account_id.clone(),
            home_region: scope.region.clone(),
            settings: TrailSettings {
                s3_bucket_name: new.s3_bucket_name,
                s3_key_prefix: new.s3_key_prefix,
                sns_topic,
                include_global_service_events: new.include_global_service_events,
                is_multi_region_trail: new.is_multi_region_trail,
                log_file_validation_enabled: new.enable_log_file_validation,
                cloud_watch_logs_log_group_arn: new.cloud_watch_logs_log_group_arn,
                cloud_watch_logs_role_arn: new.cloud_watch_logs_role_arn,
                recursive_logging: new.recursive_logging,
            },
            selectors: EventSelectors::Default,
            tags: dedup_tags(new.tags),
            logging: LoggingHistory::default(),
            created_time_ms: jiff::Timestamp::now().as_millisecond(),
            insight_selectors: Vec::new(),
        };
        let this = self.clone();
        let scope_for_check = scope.clone();
        let to_insert = trail.clone();
        let new_for_check = NewTrail {
            name: trail.name.clone(),
            is_multi_region_trail: trail.settings.is_multi_region_trail,
            ..blank_new_trail()
        };
        self.mutate(move |contents| {
            // Checked again under the write lock: a concurrent CreateTrail may have won.
            this.check_create_rules(&contents.trails, &scope_for_check, &new_for_check)?;
            contents.trails.push(to_insert);
            Ok(())
        })
        .await?;
        self.publish(&trail).await;
        tracing::info!(trail = trail.arn().as_str(), "trail created");
        Ok(trail)
    }

    fn check_create_rules(
        &self,
        trails: &[Trail],
        scope: &Scope,
        new: &NewTrail,
    ) -> Result<(), TrailsError> {
        let account_trails = trails
            .iter()
            .filter(|trail| trail.account_id == scope.account_id);
        for existing in account_trails.clone() {
            let overlaps = existing.is_visible_in(&scope.region) || new.is_multi_region_trail;
            if existing.name == new.name && overlaps {
                return Err(TrailsError::AlreadyExists(new.name.clone()));
            }
        }
        let visible = account_trails
            .filter(|trail| trail.is_visible_in(&scope.region))
            .count();
        let limit = self.inner.options.trails_per_region_max;
        if visible >= limit {
            return Err(TrailsError::LimitExceeded {
                account_id: scope.account_id.clone(),
                region: scope.region.clone(),
                limit,
            });
        }
        Ok(())
    }

    /// Resolves a trail for a change that must happen in its home region.
    fn resolve_for_change(
        &self,
        scope: &Scope,
        reference: &TrailRef,
    ) -> Result<Trail, TrailsError> {
        let trail = self.get_trail(scope, reference)?;
        if trail.home_region != scope.region {
            return Err(TrailsError::InvalidHomeRegion {
                arn: trail.arn(),
                home_region: trail.home_region,
            });
        }
        Ok(trail)
    }

    /// Replaces the trail with id `trail_id` by `change(trail)` in the registry.
    async fn change_trail(
        &self,
        trail_id: &str,
        change: impl FnOnce(&mut Trail) -> Result<(), TrailsError> + Send + 'static,
    ) -> Result<Trail, TrailsError> {
        let trail_id = trail_id.to_owned();
        let changed = self
            .mutate(move |contents| {
                let trail = contents
                    .trails
                    .iter_mut()
                    .find(|trail| trail.id == trail_id)
                    .ok_or_else(|| TrailsError::NotFound(trail_id.clone()))?;
                change(trail)?;
                Ok(trail.clone())
            })
            .await?;
        self.publish(&changed).await;
        Ok(changed)
    }

    /// UpdateTrail.
    pub async fn update_trail(
        &self,
        scope: &Scope,
        reference: &TrailRef,
        update: TrailUpdate,
    ) -> Result<Trail, TrailsError> {
        let trail = self.resolve_for_change(scope, reference)?;
        let sns_topic = update.sns_topic_name.as_ref().map(|given| {
            given
                .as_deref()
                .map(|given| sns_topic(given, &trail.home_region, &trail.account_id))
        });
        self.check_notification_and_streams(
            sns_topic.as_ref().and_then(Option::as_ref),
            update
                .cloud_watch_logs_log_group_arn
                .as_ref()
                .and_then(|group| group.as_deref()),
        )?;
        if let Some(bucket) = &update.s3_bucket_name {
            self.prepare_bucket(bucket).await?;
        }
        let log_group_added = matches!(
            &update.cloud_watch_logs_log_group_arn,
            Some(Some(group)) if trail.settings.cloud_watch_logs_log_group_arn.as_deref() != Some(group.as_str())
        );
        if log_group_added {
            self.start_stream_cursor_at_now(&trail).await?;
        }
        let updated = self
            .change_trail(&trail.id, move |trail| {
                let settings = &mut trail.settings;
                if let Some(bucket) = update.s3_bucket_name {
                    settings.s3_bucket_name = bucket;
                }
                if let Some(prefix) = update.s3_key_prefix {
                    settings.s3_key_prefix = prefix;
                }
                if let Some(topic) = sns_topic {
                    settings.sns_topic = topic;
                }
                if let Some(value) = update.include_global_service_events {
                    settings.include_global_service_events = value;
                }
                if let Some(value) = update.is_multi_region_trail {
                    settings.is_multi_region_trail = value;
                }
                if let Some(value) = update.enable_log_file_validation {
                    settings.log_file_validation_enabled = value;
                }
                if let Some(group) = update.cloud_watch_logs_log_group_arn {
                    settings.cloud_watch_logs_log_group_arn = group;
                }
                if let Some(role) = update.cloud_watch_logs_role_arn {
                    settings.cloud_watch_logs_role_arn = role;
                }
                if let Some(value) = update.recursive_logging {
                    settings.recursive_logging = value;
                }
                Ok(())
            })
            .await?;
        if updated.settings.cloud_watch_logs_log_group_arn.is_none()
            && trail.settings.cloud_watch_logs_log_group_arn.is_some()
        {
            let store = self.inner.store.clone();
            let consumer = updated.stream_consumer();
            crate::consumer::blocking(move || store.delete_cursor(&consumer)).await?;
        }
        Ok(updated)
    }

    /// A log group added to a trail streams events from now on (CloudTrail does not
    /// back-fill a new log group).
    async fn start_stream_cursor_at_now(&self, trail: &Trail) -> Result<(), TrailsError> {
        let last_seq = self.last_seq().await?;
        let log = LogConsumer::new(self.inner.store.clone(), trail.stream_consumer());
        crate::consumer::save_cursor(&log, last_seq).await
    }

    /// DeleteTrail. Delivered files stay in the bucket.
    pub async fn delete_trail(
        &self,
        scope: &Scope,
        reference: &TrailRef,
    ) -> Result<(), TrailsError> {
        let trail = self.resolve_for_change(scope, reference)?;
        self.inner.supervisor.stop_trail(&trail.id).await;
        let trail_id = trail.id.clone();
        let consumers = vec![
            trail.delivery_consumer(),
            trail.stream_consumer(),
            trail.insights_consumer(),
        ];
        self.mutate(move |contents| {
            contents.trails.retain(|existing| existing.id != trail_id);
            contents.cleanups.push(PendingCleanup {
                trail_id,
                consumers,
            });
            Ok(())
        })
        .await?;
        let this = self.clone();
        crate::consumer::blocking(move || this.finish_cleanups()).await?;
        self.inner.statuses.remove(&trail.id);
        tracing::info!(trail = trail.arn().as_str(), "trail deleted");
        Ok(())
    }

    /// StartLogging: events accepted from now on are delivered.
    pub async fn start_logging(
        &self,
        scope: &Scope,
        reference: &TrailRef,
    ) -> Result<Trail, TrailsError> {
        let trail = self.resolve_for_change(scope, reference)?;
        if trail.logging.is_logging {
            return Ok(trail);
        }
        let last_seq = self.last_seq().await?;
        // Periods every consumer has passed are dropped, so the history stays short.
        let store = self.inner.store.clone();
        let mut consumers = vec![trail.delivery_consumer()];
        if trail.settings.cloud_watch_logs_log_group_arn.is_some() {
            consumers.push(trail.stream_consumer());
        }
        if trail.has_insight_selectors() {
            consumers.push(trail.insights_consumer());
        }
        let delivered_through = tokio::task::spawn_blocking(move || -> Result<u64, TrailsError> {
            let mut through = u64::MAX;
            for consumer in &consumers {
                through = through.min(store.load_cursor(consumer)?);
            }
            Ok(through)
        })
        .await
        .map_err(|error| TrailsError::Task(error.to_string()))??;
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let started = self
            .change_trail(&trail.id, move |trail| {
                trail.logging.prune_through(delivered_through);
                trail.logging.start(last_seq, now_ms);
                Ok(())
            })
            .await?;
        tracing::info!(
            trail = started.arn().as_str(),
            after_seq = last_seq,
            "trail logging started"
        );
        Ok(started)
    }

    /// StopLogging: events accepted from now on are not delivered; those accepted before
    /// still are.
    pub async fn stop_logging(
        &self,
        scope: &Scope,
        reference: &TrailRef,
    ) -> Result<Trail, TrailsError> {
        let trail = self.resolve_for_change(scope, reference)?;
        if !trail.logging.is_logging {
            return Ok(trail);
        }
        let last_seq = self.last_seq().await?;
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let stopped = self
            .change_trail(&trail.id, move |trail| {
                trail.logging.stop(last_seq, now_ms);
                Ok(())
            })
            .await?;
        tracing::info!(
            trail = stopped.arn().as_str(),
            through_seq = last_seq,
            "trail logging stopped"
        );
        Ok(stopped)
    }

    /// PutEventSelectors: replaces the trail's selectors (either kind replaces the other).
    pub async fn put_event_selectors(
        &self,
        scope: &Scope,
        reference: &TrailRef,
        selectors: EventSelectors,
    ) -> Result<Trail, TrailsError> {
        let trail = self.resolve_for_change(scope, reference)?;
        self.change_trail(&trail.id, move |trail| {
            trail.selectors = selectors;
            Ok(())
        })
        .await
    }

    /// PutInsightSelectors: replaces the trail's Insights selectors; an empty list turns
    /// Insights off. Types and categories are the protocol's to validate; this checks the
    /// trail logs the events they analyse.
    pub async fn put_insight_selectors(
        &self,
        scope: &Scope,
        reference: &TrailRef,
        selectors: Vec<InsightSelector>,
    ) -> Result<Trail, TrailsError> {
        let trail = self.resolve_for_change(scope, reference)?;
        check_insights_have_their_events(&trail, &selectors)?;
        if !trail.has_insight_selectors() && !selectors.is_empty() {
            self.start_insights_at_now(&trail).await?;
        }
        let updated = self
            .change_trail(&trail.id, move |trail| {
                trail.insight_selectors = selectors;
                Ok(())
            })
            .await?;
        // Publishing has stopped the Insights worker (after its last flush).
        if trail.has_insight_selectors() && !updated.has_insight_selectors() {
            self.forget_insights_delivery(&updated).await?;
        }
        Ok(updated)
    }

    /// Insights turned on are delivered from now on (CloudTrail does not back-fill them):
    /// the cursor starts at the end of the log, and a plan left by an earlier period of
    /// Insights is dropped.
    async fn start_insights_at_now(&self, trail: &Trail) -> Result<(), TrailsError> {
        self.forget_insights_delivery(trail).await?;
        let last_seq = self.last_seq().await?;
        let log = LogConsumer::new(self.inner.store.clone(), trail.insights_consumer());
        crate::consumer::save_cursor(&log, last_seq).await
    }

    /// Removes the Insights worker's cursor and plan (its worker is not running).
    async fn forget_insights_delivery(&self, trail: &Trail) -> Result<(), TrailsError> {
        let store = self.inner.store.clone();
        let consumer = trail.insights_consumer();
        let plan = self
            .trail_dir(&trail.id)
            .join(DeliveryKind::Insights.state_file_name());
        crate::consumer::blocking(move || -> Result<(), TrailsError> {
            store.delete_cursor(&consumer)?;
            match std::fs::remove_file(&plan) {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(TrailsError::Write { path: plan, source }),
            }
        })
        .await
    }

    /// AddTags: sets (or overwrites) tags on a trail named by ARN.
    pub async fn add_tags(
        &self,
        scope: &Scope,
        reference: &TrailRef,
        tags: Vec<Tag>,
    ) -> Result<(), TrailsError> {
        let trail = self.get_trail(scope, reference)?;
        self.change_trail(&trail.id, move |trail| {
            for tag in dedup_tags(tags) {
                match trail
                    .tags
                    .iter_mut()
                    .find(|existing| existing.key == tag.key)
                {
                    Some(existing) => existing.value = tag.value,
                    None => trail.tags.push(tag),
                }
            }
            if trail.tags.len() > TAGS_PER_RESOURCE_MAX {
                return Err(TrailsError::TagsLimitExceeded {
                    limit: TAGS_PER_RESOURCE_MAX,
                });
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// RemoveTags: removes tags by key.
    pub async fn remove_tags(
        &self,
        scope: &Scope,
        reference: &TrailRef,
        keys: Vec<String>,
    ) -> Result<(), TrailsError> {
        let trail = self.get_trail(scope, reference)?;
        self.change_trail(&trail.id, move |trail| {
            trail.tags.retain(|tag| !keys.contains(&tag.key));
            Ok(())
        })
        .await
        .map(|_| ())
    }
}

/// Insights analyse events the trail logs (PutInsightSelectors' rule): refused with
/// [`TrailsError::InvalidInsightSelectors`] when the trail's event selectors leave them
/// out.
fn check_insights_have_their_events(
    trail: &Trail,
    insight_selectors: &[InsightSelector],
) -> Result<(), TrailsError> {
    for selector in insight_selectors {
        for category in &selector.event_categories {
            let needed = match (category.as_str(), selector.insight_type.as_str()) {
                ("Management", "ApiCallRateInsight") => {
                    (!logs_management_events(&trail.selectors, true)).then_some("write management")
                }
                ("Management", _) => {
                    (!logs_management_events(&trail.selectors, false)).then_some("management")
                }
                ("Data", _) => (!logs_data_events(&trail.selectors)).then_some("data"),
                _ => None,
            };
            if let Some(events) = needed {
                return Err(TrailsError::InvalidInsightSelectors(format!(
                    "{} on {category} events needs trail {} to log {events} events; change its event selectors first (PutEventSelectors).",
                    selector.insight_type,
                    trail.arn()
                )));
            }
        }
    }
    Ok(())
}

/// CloudTrail's message for an unknown trail.
fn unknown_trail_message(reference: &TrailRef, scope: &Scope) -> String {
    let arn = match reference {
        TrailRef::Name(name) => trail_arn(&scope.region, &scope.account_id, name),
        arn @ TrailRef::Arn { .. } => arn.display(),
    };
    format!("Unknown trail: {arn} for the user: {}", scope.account_id)
}

/// A topic as given (name or ARN), with its ARN.
fn sns_topic(given: &str, region: &str, account_id: &str) -> SnsTopic {
    let arn = if given.starts_with("arn:") {
        given.to_owned()
    } else {
        format!("arn:aws:sns:{region}:{account_id}:{given}")
    };
    SnsTopic {
        given: given.to_owned(),
        arn,
    }
}

/// The last value of each key wins, keys keep their first position.
fn dedup_tags(tags: Vec<Tag>) -> Vec<Tag> {
    let mut unique: Vec<Tag> = Vec::with_capacity(tags.len());
    for tag in tags {
        match unique.iter_mut().find(|existing| existing.key == tag.key) {
            Some(existing) => existing.value = tag.value,
            None => unique.push(tag),
        }
    }
    unique
}

fn blank_new_trail() -> NewTrail {
    NewTrail {
        name: String::new(),
        s3_bucket_name: String::new(),
        s3_key_prefix: None,
        sns_topic_name: None,
        include_global_service_events: true,
        is_multi_region_trail: false,
        enable_log_file_validation: false,
        cloud_watch_logs_log_group_arn: None,
        cloud_watch_logs_role_arn: None,
        recursive_logging: true,
        tags: Vec::new(),
    }
}
