//! Sample queries, written as CloudTrail Lake users write them, shipped with OpenTrail
//! (`queries/NN-<name>.sql`) and checked against counts made independently over the real
//! corpus (`tests/python/test_lake_sample_queries.py`).
//!
//! A file starts with a header of `--` lines: `-- title: …`, `-- description: …` and one
//! `-- parameter: NAME what it is` per value the user fills in; a header line without a
//! key continues the one before it. The header ends at the first line that is not a
//! comment, and the rest is the SQL. As in the AWS console's samples, the SQL names the
//! table `$EDS_ID`, and each parameter is a `{{NAME}}` placeholder inside quotes.

use crate::error::LakeError;

/// How the SQL names the table, as CloudTrail Lake's samples do.
pub const TABLE_PLACEHOLDER: &str = "$EDS_ID";

/// The sample files, by file name without `.sql`; their number sets the order.
macro_rules! sample_files {
    ($($file:literal),* $(,)?) => {
        [$(($file, include_str!(concat!("../queries/", $file, ".sql")))),*]
    };
}

const SAMPLE_FILES: [(&str, &str); 8] = sample_files!(
    "01-top-api-calls",
    "02-failed-calls-by-error-and-principal",
    "03-console-logins-without-mfa",
    "04-principal-activity-in-time-window",
    "05-calls-from-new-ip-addresses",
    "06-deleted-resources",
    "07-activity-by-invoking-service",
    "08-data-events-on-bucket",
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleQuery {
    /// The file's name without its number and `.sql`, e.g. `top-api-calls`.
    pub name: &'static str,
    pub title: String,
    pub description: String,
    /// The SQL after the header, `$EDS_ID` and the placeholders still in it.
    pub sql: &'static str,
    pub parameters: Vec<SampleParameter>,
}

/// A value the user fills in: `{{NAME}}` in the SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleParameter {
    pub name: String,
    pub description: String,
}

/// Every sample query, in the files' order.
pub fn sample_queries() -> Vec<SampleQuery> {
    SAMPLE_FILES
        .iter()
        .map(|(file, text)| parse_sample(file, text))
        .collect()
}

impl SampleQuery {
    /// The SQL to run: `$EDS_ID` replaced by `table` and every placeholder by its value,
    /// with single quotes doubled, since each placeholder sits inside a quoted string.
    pub fn render(&self, table: &str, parameters: &[(&str, &str)]) -> Result<String, LakeError> {
        if let Some((unknown, _)) = parameters
            .iter()
            .find(|(given, _)| !self.parameters.iter().any(|known| known.name == *given))
        {
            return Err(LakeError::UnknownSampleParameter {
                query: self.name.to_owned(),
                parameter: (*unknown).to_owned(),
            });
        }
        let value_of = |name: &str| {
            parameters
                .iter()
                .find(|(given, _)| *given == name)
                .map(|(_, value)| *value)
                .ok_or_else(|| LakeError::MissingSampleParameter {
                    query: self.name.to_owned(),
                    parameter: name.to_owned(),
                })
        };
        // Checked before substituting, so the error names a declared parameter even
        // when the SQL happens not to reach its placeholder first.
        for parameter in &self.parameters {
            value_of(&parameter.name)?;
        }
        let template = self.sql.replace(TABLE_PLACEHOLDER, table);
        let mut rendered = String::with_capacity(template.len());
        // One pass, so a value holding `{{…}}` is never substituted in turn.
        let mut rest = template.as_str();
        while let Some((before, name, after)) = next_placeholder(rest) {
            rendered.push_str(before);
            rendered.push_str(&value_of(name)?.replace('\'', "''"));
            rest = after;
        }
        rendered.push_str(rest);
        Ok(rendered)
    }
}

/// The text before the first `{{NAME}}` of `text`, the name, and the text after it.
fn next_placeholder(text: &str) -> Option<(&str, &str, &str)> {
    let (before, opened) = text.split_once("{{")?;
    let (name, after) = opened.split_once("}}")?;
    Some((before, name, after))
}

/// Which header entry a line without a key continues.
enum HeaderEntry {
    NoneYet,
    Title,
    Description,
    Parameter,
}

fn parse_sample(file: &'static str, text: &'static str) -> SampleQuery {
    let name = file.split_once('-').map_or(file, |(_, name)| name);
    let mut sample = SampleQuery {
        name,
        title: String::new(),
        description: String::new(),
        sql: "",
        parameters: Vec::new(),
    };
    let mut header_len = 0;
    let mut entry = HeaderEntry::NoneYet;
    for line in text.split_inclusive('\n') {
        let Some(comment) = line.strip_prefix("--") else {
            break;
        };
        header_len += line.len();
        let comment = comment.trim();
        if let Some(title) = comment.strip_prefix("title:") {
            sample.title = title.trim().to_owned();
            entry = HeaderEntry::Title;
        } else if let Some(description) = comment.strip_prefix("description:") {
            sample.description = description.trim().to_owned();
            entry = HeaderEntry::Description;
        } else if let Some(parameter) = comment.strip_prefix("parameter:") {
            let parameter = parameter.trim();
            let (name, description) = parameter
                .split_once(char::is_whitespace)
                .unwrap_or((parameter, ""));
            sample.parameters.push(SampleParameter {
                name: name.to_owned(),
                description: description.trim().to_owned(),
            });
            entry = HeaderEntry::Parameter;
        } else {
            let continued = match entry {
                HeaderEntry::NoneYet => None,
                HeaderEntry::Title => Some(&mut sample.title),
                HeaderEntry::Description => Some(&mut sample.description),
                HeaderEntry::Parameter => sample
                    .parameters
                    .last_mut()
                    .map(|parameter| &mut parameter.description),
            };
            if let Some(field) = continued.filter(|_| !comment.is_empty()) {
                field.push(' ');
                field.push_str(comment);
            }
        }
    }
    sample.sql = text[header_len..].trim();
    sample
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use futures_util::StreamExt;
    use opentrail_store::{Store, StoreOptions};

    use super::*;
    use crate::{Lake, LakeOptions, LakeTable, TableScope};

    fn placeholders(sql: &str) -> Vec<&str> {
        let mut names = Vec::new();
        let mut rest = sql;
        while let Some((_, name, after)) = next_placeholder(rest) {
            names.push(name);
            rest = after;
        }
        names
    }

    #[test]
    fn every_sample_has_a_title_a_description_and_a_select() {
        let samples = sample_queries();
        assert_eq!(samples.len(), SAMPLE_FILES.len());
        for sample in &samples {
            assert!(!sample.title.is_empty(), "{} has a title", sample.name);
            assert!(
                sample.description.ends_with('.'),
                "{} has a description, one sentence or more: {:?}",
                sample.name,
                sample.description
            );
            assert!(
                sample.sql.starts_with("SELECT") || sample.sql.starts_with("WITH"),
                "{}: the header ends where the SQL starts: {}",
                sample.name,
                sample.sql
            );
            assert!(sample.sql.contains(TABLE_PLACEHOLDER), "{}", sample.name);
            for parameter in &sample.parameters {
                assert!(
                    !parameter.description.is_empty(),
                    "{}: {} says what it is",
                    sample.name,
                    parameter.name
                );
            }
        }
    }

    #[test]
    fn names_are_unique_and_every_file_is_listed() {
        let samples = sample_queries();
        let names: BTreeSet<&str> = samples.iter().map(|sample| sample.name).collect();
        assert_eq!(names.len(), samples.len(), "unique names");
        let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/queries");
        let on_disk: BTreeSet<String> = std::fs::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let listed: BTreeSet<String> = SAMPLE_FILES
            .iter()
            .map(|(file, _)| format!("{file}.sql"))
            .collect();
        assert_eq!(on_disk, listed, "every file in {directory} is a sample");
    }

    #[test]
    fn placeholders_are_the_declared_parameters_each_inside_quotes() {
        for sample in sample_queries() {
            let used: BTreeSet<&str> = placeholders(sample.sql).into_iter().collect();
            let declared: BTreeSet<&str> = sample
                .parameters
                .iter()
                .map(|parameter| parameter.name.as_str())
                .collect();
            assert_eq!(used, declared, "{}", sample.name);
            assert_eq!(
                sample.sql.matches("{{").count(),
                sample.sql.matches("'{{").count(),
                "{}: every placeholder opens a quoted string",
                sample.name
            );
            for name in used {
                assert!(
                    sample.sql.contains(&format!("'{{{{{name}}}}}'")),
                    "{}: {name} is the whole quoted string",
                    sample.name
                );
            }
        }
    }

    const HEADED: &str = "-- title: Calls of one user\n\
        -- description: Every call of one user,\n\
        --   oldest first.\n\
        -- parameter: USER_NAME the user's name\n\
        -- parameter: SINCE when to start,\n\
        --   UTC\n\
        \n\
        -- Not part of the header.\n\
        SELECT eventname FROM $EDS_ID\n\
        WHERE useridentity.username = '{{USER_NAME}}' AND eventtime >= '{{SINCE}}'\n";

    #[test]
    fn the_header_is_parsed_with_its_continued_lines() {
        let sample = parse_sample("09-calls-of-one-user", HEADED);
        assert_eq!(sample.name, "calls-of-one-user");
        assert_eq!(sample.title, "Calls of one user");
        assert_eq!(sample.description, "Every call of one user, oldest first.");
        assert_eq!(
            sample.parameters,
            [
                SampleParameter {
                    name: "USER_NAME".into(),
                    description: "the user's name".into()
                },
                SampleParameter {
                    name: "SINCE".into(),
                    description: "when to start, UTC".into()
                },
            ]
        );
        assert!(sample.sql.starts_with("-- Not part of the header.\nSELECT"));
    }

    #[test]
    fn render_substitutes_the_table_and_quoted_values() {
        let sample = parse_sample("09-calls-of-one-user", HEADED);
        let sql = sample
            .render(
                "0b7f3c2e-51c6-4d18-8dec-3c7f7e5e3f8a",
                &[("SINCE", "2024-01-31 08:00:00"), ("USER_NAME", "o'brien")],
            )
            .unwrap();
        assert!(
            sql.contains("FROM 0b7f3c2e-51c6-4d18-8dec-3c7f7e5e3f8a\n"),
            "{sql}"
        );
        assert!(
            sql.contains("username = 'o''brien' AND eventtime >= '2024-01-31 08:00:00'"),
            "{sql}"
        );
        // A value that looks like a placeholder stays as it was given.
        let sql = sample
            .render(
                "events",
                &[("USER_NAME", "{{SINCE}}'--"), ("SINCE", "2024-01-31")],
            )
            .unwrap();
        assert!(sql.contains("username = '{{SINCE}}''--' AND"), "{sql}");
    }

    #[test]
    fn render_refuses_a_missing_or_unknown_parameter() {
        let sample = parse_sample("09-calls-of-one-user", HEADED);
        let missing = sample.render("events", &[("USER_NAME", "alice")]);
        assert!(
            matches!(
                &missing,
                Err(LakeError::MissingSampleParameter { query, parameter })
                    if query == "calls-of-one-user" && parameter == "SINCE"
            ),
            "{missing:?}"
        );
        let message = missing.unwrap_err().to_string();
        assert!(message.contains("SINCE"), "{message}");
        let unknown = sample.render(
            "events",
            &[
                ("USER_NAME", "alice"),
                ("SINCE", "2024-01-31"),
                ("USERNAME", "bob"),
            ],
        );
        assert!(
            matches!(
                &unknown,
                Err(LakeError::UnknownSampleParameter { parameter, .. }) if parameter == "USERNAME"
            ),
            "{unknown:?}"
        );
    }

    /// A value of the parameter's kind, so that comparisons with `eventtime` plan.
    fn example_value(parameter: &SampleParameter) -> &'static str {
        if parameter.name.ends_with("_TIME") {
            "2024-01-31 08:00:00"
        } else {
            "example"
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_sample_runs_on_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let lake = Lake::new(store, LakeOptions::default()).unwrap();
        let tables = [LakeTable {
            name: "0b7f3c2e-51c6-4d18-8dec-3c7f7e5e3f8a".into(),
            scope: TableScope::default(),
        }];
        for sample in sample_queries() {
            let values: Vec<(&str, &str)> = sample
                .parameters
                .iter()
                .map(|parameter| (parameter.name.as_str(), example_value(parameter)))
                .collect();
            let sql = sample.render(&tables[0].name, &values).unwrap();
            let mut run = lake
                .start(&sql, &tables)
                .await
                .unwrap_or_else(|error| panic!("{}: {error}\n{sql}", sample.name));
            while let Some(batch) = run.stream.next().await {
                if let Err(error) = batch {
                    panic!("{}: {}", sample.name, lake.classify(error));
                }
            }
        }
    }
}
