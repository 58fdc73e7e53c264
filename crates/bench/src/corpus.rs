//! The generated events' shape next to the real corpus's (`--corpus DIR`, read in place):
//! record size and the shares that matter to storage and lookups.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Shape {
    pub events: usize,
    pub mean_bytes: f64,
    pub event_sources: usize,
    pub event_names: usize,
    pub top_event_source_share: f64,
    pub read_only_share: f64,
    pub data_event_share: f64,
    pub error_share: f64,
    pub invoked_by_share: f64,
}

/// The shape of records given as JSON texts.
pub fn shape_of<'a>(records: impl Iterator<Item = &'a str>) -> Shape {
    let mut shape = Shape::default();
    let mut bytes = 0usize;
    let mut sources: HashMap<String, usize> = HashMap::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let (mut read_only, mut data, mut errors, mut invoked_by) = (0usize, 0usize, 0usize, 0usize);
    for text in records {
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        shape.events += 1;
        // Compact size: the corpus files are pretty-printed in places.
        bytes += serde_json::to_string(&value).map_or(text.len(), |compact| compact.len());
        if let Some(source) = value["eventSource"].as_str() {
            *sources.entry(source.to_owned()).or_default() += 1;
        }
        if let Some(name) = value["eventName"].as_str() {
            *names.entry(name.to_owned()).or_default() += 1;
        }
        read_only += usize::from(value["readOnly"] == true || value["readOnly"] == "true");
        data += usize::from(value["eventCategory"] == "Data");
        errors += usize::from(value.get("errorCode").is_some_and(|code| !code.is_null()));
        invoked_by += usize::from(value["userIdentity"].get("invokedBy").is_some());
    }
    let n = shape.events.max(1) as f64;
    shape.mean_bytes = bytes as f64 / n;
    shape.event_sources = sources.len();
    shape.event_names = names.len();
    shape.top_event_source_share = sources.values().copied().max().unwrap_or(0) as f64 / n;
    shape.read_only_share = read_only as f64 / n;
    shape.data_event_share = data as f64 / n;
    shape.error_share = errors as f64 / n;
    shape.invoked_by_share = invoked_by as f64 / n;
    shape
}

/// Every record of the corpus: `{"Records":[…]}`, arrays and single objects, plain or gz.
pub fn read_corpus(dir: &Path) -> Vec<String> {
    let mut records = Vec::new();
    let mut pending: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Ok(raw) = std::fs::read(&path) else {
                continue;
            };
            let text = if name.ends_with(".gz") {
                let mut text = Vec::new();
                if flate2::read::GzDecoder::new(&raw[..])
                    .read_to_end(&mut text)
                    .is_err()
                {
                    continue;
                }
                text
            } else if name.ends_with(".json") || name.ends_with(".cloudtrail") {
                raw
            } else {
                continue;
            };
            let Ok(value) = serde_json::from_slice::<Value>(&text) else {
                continue;
            };
            let list = match value {
                Value::Object(mut object) if object.contains_key("Records") => {
                    match object.remove("Records") {
                        Some(Value::Array(list)) => list,
                        _ => Vec::new(),
                    }
                }
                Value::Array(list) => list,
                other @ Value::Object(_) => vec![other],
                _ => Vec::new(),
            };
            records.extend(
                list.iter()
                    .filter_map(|record| serde_json::to_string(record).ok()),
            );
        }
    }
    records
}
