//! The rule features OpenTrail refuses, checked on a parsed rule before it is compiled
//! (the list, with reasons, is in the crate docs). Correlation and filter documents are
//! refused where a file's documents are sorted (`load.rs`).

use rsigma_parser::{Detection, Modifier, SigmaRule};

/// One refused feature of a rule: why, and text to search the file for to find its line.
pub(crate) struct Refused {
    pub reason: String,
    pub needle: Option<String>,
}

pub(crate) const CORRELATION_REASON: &str = "correlation rules are refused: they count or \
     order events across a time window, and OpenTrail matches each event on its own";
pub(crate) const AGGREGATION_REASON: &str = "aggregations in a condition (`| count() …`) \
     are refused: they count events across a time window, and OpenTrail matches each event \
     on its own";
pub(crate) const FILTER_REASON: &str = "Sigma filter documents are refused: they rewrite \
     other rules; write the exclusion into the rule's own condition";

/// Every refused feature `rule` uses.
pub(crate) fn refused_features(rule: &SigmaRule) -> Vec<Refused> {
    let mut refused = Vec::new();
    if rule.id.as_deref().is_none_or(|id| id.trim().is_empty()) {
        refused.push(Refused {
            reason: "the rule has no `id`: alerts name their rule by id (use a UUID)".to_owned(),
            needle: None,
        });
    }
    if rule.detection.timeframe.is_some() {
        refused.push(Refused {
            reason: "`timeframe` (an aggregation over a time window) is refused: OpenTrail \
                     matches each event on its own"
                .to_owned(),
            needle: Some("timeframe:".to_owned()),
        });
    }
    let mut names: Vec<&String> = rule.detection.named.keys().collect();
    // The map's order is random; refusals are reported in a stable order.
    names.sort();
    for name in names {
        if let Some(detection) = rule.detection.named.get(name) {
            screen_detection(detection, &mut refused);
        }
    }
    refused
}

fn screen_detection(detection: &Detection, refused: &mut Vec<Refused>) {
    match detection {
        Detection::AllOf(items) => {
            for item in items {
                if item.field.has_modifier(Modifier::Expand) {
                    refused.push(Refused {
                        reason: "the `expand` modifier is refused: its placeholders are \
                                 filled by a processing pipeline, and OpenTrail has none"
                            .to_owned(),
                        needle: Some("|expand".to_owned()),
                    });
                }
            }
        }
        Detection::AnyOf(detections) => {
            for inner in detections {
                screen_detection(inner, refused);
            }
        }
        Detection::Keywords(_) => {}
        Detection::ArrayMatch { field, .. } => refused.push(array_block(field)),
        Detection::And(_) | Detection::Conditional { .. } => refused.push(array_block("[")),
    }
}

fn array_block(needle: &str) -> Refused {
    Refused {
        reason: "array blocks (`field[any]:`, `field[all]:`) are refused: they are an rsigma \
                 extension, not Sigma, so a rule using them would not run in a SIEM"
            .to_owned(),
        needle: Some(needle.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> SigmaRule {
        let mut collection = rsigma_parser::parse_sigma_yaml(yaml).expect("parses");
        assert!(collection.errors.is_empty(), "{:?}", collection.errors);
        collection.rules.remove(0)
    }

    #[test]
    fn refused_features_are_each_named() {
        let parsed = rule(
            "title: t\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel:\n    \
             eventName|expand: '%names%'\n  timeframe: 5m\n  condition: sel\n",
        );
        let reasons: Vec<String> = refused_features(&parsed)
            .into_iter()
            .map(|refused| refused.reason)
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].contains("no `id`"));
        assert!(reasons[1].contains("timeframe"));
        assert!(reasons[2].contains("expand"));
    }
}
