//! Insights as the server runs them: which are on is read from the trails' Insights
//! selectors (PutInsightSelectors), so the analysis runs while any trail asks for it and
//! reports only for the accounts, regions, types and categories some trail selected.

use std::sync::Arc;

use opentrail_insights::{
    InsightType, Insights, InsightsOptions, InsightsScope, Settings, SourceCategory,
};
use opentrail_store::Store;
use opentrail_trails::Trails;

use crate::config::Config;

/// Where Insights keep their snapshot and metrics, under the data dir.
pub const INSIGHTS_DIR_NAME: &str = "insights";

/// Insights over `store`, on when the trails say so. The worker starts with the server.
pub fn open_insights(config: &Config, store: &Store, trails: &Trails) -> Arc<Insights> {
    Arc::new(Insights::new(
        store.clone(),
        InsightsOptions {
            dir: config.data_dir.join(INSIGHTS_DIR_NAME),
            settings: Settings::with_baseline_minutes(i64::from(config.insights_baseline_minutes)),
        },
        Arc::new(TrailsInsightsScope::new(trails.clone())),
    ))
}

/// The trails' Insights selectors, asked afresh each time (a cheap registry snapshot), so
/// PutInsightSelectors takes effect at the next scan.
pub struct TrailsInsightsScope {
    trails: Trails,
}

impl TrailsInsightsScope {
    pub fn new(trails: Trails) -> TrailsInsightsScope {
        TrailsInsightsScope { trails }
    }
}

impl InsightsScope for TrailsInsightsScope {
    fn any_enabled(&self) -> bool {
        self.trails
            .insight_selections()
            .iter()
            .any(|selection| selection.logging)
    }

    fn is_enabled(
        &self,
        account_id: &str,
        region: &str,
        insight_type: InsightType,
        category: SourceCategory,
    ) -> bool {
        self.trails.insight_selections().iter().any(|selection| {
            selection.logging
                && selection.account_id == account_id
                && (selection.all_regions || selection.home_region == region)
                && selection.insight_type == insight_type.as_str()
                && selection
                    .event_categories
                    .iter()
                    .any(|selected| selected == category.as_str())
        })
    }
}
