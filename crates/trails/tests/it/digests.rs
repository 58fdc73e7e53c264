//! Digest files and their validation against the directory destination: a chain built
//! by the real delivery and digest workers (digest periods driven with synthetic clock
//! times, an hour apart), then tampered with in every way `opentrail validate` must catch.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use opentrail_trails::delivery::DeliveryWorker;
use opentrail_trails::digest::{
    DigestContext, DigestDocument, DigestOptions, DigestStop, DigestWorker, gzip, string_to_sign,
    verify_signature,
};
use opentrail_trails::digest_keys::DigestKeys;
use opentrail_trails::model::{EventSelectors, Trail};
use opentrail_trails::validate::{Finding, ValidationReport, ValidationRequest, validate};
use opentrail_trails::{DestinationConfig, Destinations};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::support::{ACCOUNT, BUCKET, Harness, REGION, record, trail};

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

struct Chain {
    harness: Harness,
    delivery: DeliveryWorker,
    digest: DigestWorker,
    keys: Arc<DigestKeys>,
    destinations: Arc<Destinations>,
    _digest_stop: watch::Sender<DigestStop>,
    /// The synthetic time of the last digest poll.
    now_ms: i64,
}

impl Chain {
    fn new(rotation: Duration) -> Chain {
        let mut trail: Trail = trail("integrity", EventSelectors::Default, Some(0));
        trail.settings.log_file_validation_enabled = true;
        let harness = Harness::new(trail);
        let delivery = harness.worker(Harness::options());
        let keys = Arc::new(
            DigestKeys::open(&harness.test_store.path().join("digest-keys"), rotation)
                .expect("keys"),
        );
        let destinations = Arc::new(Destinations::from_config(
            &DestinationConfig::LocalDirectory {
                buckets_dir: harness.buckets_dir.clone(),
            },
        ));
        let context = Arc::new(DigestContext {
            store: harness.test_store.store.clone(),
            destinations: Arc::clone(&destinations),
            keys: Arc::clone(&keys),
            options: DigestOptions {
                interval: Duration::from_secs(3600),
                key_rotation: rotation,
            },
        });
        let (digest_stop, stop_receiver) = watch::channel(DigestStop::Run);
        let digest = DigestWorker::open(
            context,
            harness.trail_sender.subscribe(),
            harness.trail_dir.clone(),
            Arc::clone(&harness.status),
            stop_receiver,
        )
        .expect("digest worker");
        Chain {
            harness,
            delivery,
            digest,
            keys,
            destinations,
            _digest_stop: digest_stop,
            now_ms: T0,
        }
    }

    /// Starts the chain at T0, then writes `hours` hourly digests, each with one log file
    /// (or none when `with_files` is false).
    async fn run(&mut self, hours: usize, with_files: bool) {
        self.digest
            .poll_at(self.now_ms, false)
            .await
            .expect("start");
        for hour in 0..hours {
            if with_files {
                self.harness
                    .test_store
                    .append(&[record(&format!("Hour{hour}"), json!({}))]);
                assert!(self.delivery.poll(true).await.expect("deliver"));
            }
            self.now_ms += HOUR;
            self.digest
                .poll_at(self.now_ms, false)
                .await
                .expect("digest");
        }
    }

    async fn validate(&self) -> ValidationReport {
        let start_ms = T0 - HOUR;
        let end_ms = self.now_ms;
        let request = ValidationRequest {
            bucket: BUCKET.to_owned(),
            prefix: Some("prefix/logs".to_owned()),
            account_id: ACCOUNT.to_owned(),
            region: REGION.to_owned(),
            trail_name: "integrity".to_owned(),
            home_region: REGION.to_owned(),
            start_ms,
            end_ms,
            public_keys: self.keys.public_keys(REGION, start_ms, end_ms + 2 * HOUR),
        };
        validate(&self.destinations, &request)
            .await
            .expect("validate")
    }

    fn bucket_path(&self, key: &str) -> PathBuf {
        self.harness.bucket_dir().join(key)
    }

    /// Digest keys, oldest first.
    fn digest_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = walk(&self.harness.bucket_dir())
            .into_iter()
            .filter(|key| key.contains("/CloudTrail-Digest/") && key.ends_with(".json.gz"))
            .collect();
        keys.sort();
        keys
    }

    fn log_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = walk(&self.harness.bucket_dir())
            .into_iter()
            .filter(|key| key.contains("/CloudTrail/") && key.ends_with(".json.gz"))
            .collect();
        keys.sort();
        keys
    }

    fn read_digest(&self, key: &str) -> DigestDocument {
        let bytes = std::fs::read(self.bucket_path(key)).expect("digest");
        serde_json::from_slice(&crate::support::gunzip_single_member(&bytes)).expect("json")
    }

    fn delete(&self, key: &str) {
        std::fs::remove_file(self.bucket_path(key)).expect("delete");
    }
}

fn walk(root: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(relative) = path.strip_prefix(root) {
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    found
}

fn problems(report: &ValidationReport) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|finding| finding.is_failure())
        .map(Finding::line)
        .collect()
}

#[tokio::test]
async fn an_untouched_chain_validates_with_every_field() {
    let mut chain = Chain::new(Duration::from_secs(30 * 24 * 3600));
    chain.run(3, true).await;
    let report = chain.validate().await;
    assert!(report.is_valid(), "{:?}", problems(&report));
    assert_eq!(report.count(true, true), 3);
    assert_eq!(report.count(false, true), 3);

    let keys = chain.digest_keys();
    let first = chain.read_digest(&keys[0]);
    assert_eq!(first.previous_digest_signature, None);
    assert_eq!(first.previous_digest_s3_object, None);
    assert_eq!(first.digest_start_time, "2023-11-14T22:13:20Z");
    assert_eq!(first.digest_end_time, "2023-11-14T23:13:20Z");
    assert_eq!(first.log_files.len(), 1);
    let second = chain.read_digest(&keys[1]);
    assert_eq!(
        second.previous_digest_s3_object.as_deref(),
        Some(keys[0].as_str())
    );
    assert_eq!(second.digest_start_time, first.digest_end_time);
    let first_bytes = crate::support::gunzip_single_member(
        &std::fs::read(chain.bucket_path(&keys[0])).expect("read"),
    );
    assert_eq!(
        second.previous_digest_hash_value,
        Some(hex::encode(Sha256::digest(&first_bytes)))
    );
    // A log file's hash is the SHA-256 of its uncompressed bytes.
    let log = crate::support::gunzip_single_member(
        &std::fs::read(chain.bucket_path(&first.log_files[0].s3_object)).expect("log"),
    );
    assert_eq!(
        first.log_files[0].hash_value,
        hex::encode(Sha256::digest(&log))
    );
}

#[tokio::test]
async fn periods_without_files_get_empty_digests() {
    let mut chain = Chain::new(Duration::from_secs(30 * 24 * 3600));
    chain.run(2, false).await;
    let keys = chain.digest_keys();
    assert_eq!(keys.len(), 2);
    let empty = chain.read_digest(&keys[1]);
    assert!(empty.log_files.is_empty());
    assert_eq!(empty.newest_event_time, None);
    assert!(chain.validate().await.is_valid());
}

#[tokio::test]
async fn a_modified_log_file_is_invalid() {
    let mut chain = Chain::new(Duration::from_secs(30 * 24 * 3600));
    chain.run(3, true).await;
    let victim = chain.log_keys()[1].clone();
    let changed = gzip(br#"{"Records":[]}"#).expect("gzip");
    std::fs::write(chain.bucket_path(&victim), changed).expect("write");
    let report = chain.validate().await;
    assert_eq!(
        problems(&report),
        vec![format!(
            "Log file\ts3://{BUCKET}/{victim}\tINVALID: hash value doesn't match"
        )]
    );
}

#[tokio::test]
async fn a_deleted_log_file_is_invalid() {
    let mut chain = Chain::new(Duration::from_secs(30 * 24 * 3600));
    chain.run(3, true).await;
    let victim = chain.log_keys()[0].clone();
    chain.delete(&victim);
    assert_eq!(
        problems(&chain.validate().await),
        vec![format!(
            "Log file\ts3://{BUCKET}/{victim}\tINVALID: not found"
        )]
    );
}

#[tokio::test]
async fn a_modified_digest_is_invalid() {
    let mut chain = Chain::new(Duration::from_secs(30 * 24 * 3600));
    chain.run(3, true).await;
    let victim = chain.digest_keys()[1].clone();
    let mut document = chain.read_digest(&victim);
    document.log_files.clear();
    let bytes = gzip(&serde_json::to_vec(&document).expect("json")).expect("gzip");
    std::fs::write(chain.bucket_path(&victim), bytes).expect("write");
    assert_eq!(
        problems(&chain.validate().await),
        vec![format!(
            "Digest file\ts3://{BUCKET}/{victim}\tINVALID: invalid signature"
        )]
    );
}

#[tokio::test]
async fn a_deleted_digest_is_not_found() {
    let mut chain = Chain::new(Duration::from_secs(30 * 24 * 3600));
    chain.run(4, true).await;
    let victim = chain.digest_keys()[1].clone();
    chain.delete(&victim);
    assert_eq!(
        problems(&chain.validate().await),
        vec![format!(
            "Digest file\ts3://{BUCKET}/{victim}\tINVALID: not found"
        )]
    );
}

#[tokio::test]
async fn two_consecutive_deleted_digests_are_both_reported() {
    let mut chain = Chain::new(Duration::from_secs(30 * 24 * 3600));
    chain.run(6, true).await;
    let keys = chain.digest_keys();
    chain.delete(&keys[2]);
    chain.delete(&keys[3]);
    let found = problems(&chain.validate().await);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        found[0],
        format!("Digest file\ts3://{BUCKET}/{}\tINVALID: not found", keys[3])
    );
    assert!(
        found[1].starts_with(
            "Gap\t2023-11-15T00:13:20Z to 2023-11-15T02:13:20Z\tINVALID: about 1 more"
        ),
        "{found:?}"
    );
}

#[tokio::test]
async fn a_moved_digest_is_invalid_and_its_place_is_empty() {
    let mut chain = Chain::new(Duration::from_secs(30 * 24 * 3600));
    chain.run(3, true).await;
    let victim = chain.digest_keys()[1].clone();
    let moved = victim.replace("T001320Z", "T001321Z");
    assert_ne!(moved, victim);
    std::fs::rename(chain.bucket_path(&victim), chain.bucket_path(&moved)).expect("move");
    let found = problems(&chain.validate().await);
    assert!(
        found.contains(&format!(
            "Digest file\ts3://{BUCKET}/{moved}\tINVALID: has been moved from its original location"
        )),
        "{found:?}"
    );
    assert!(found.contains(&format!(
        "Digest file\ts3://{BUCKET}/{victim}\tINVALID: not found"
    )));
}

#[tokio::test]
async fn a_digest_signed_by_an_unknown_key_is_invalid() {
    let mut chain = Chain::new(Duration::from_secs(30 * 24 * 3600));
    chain.run(3, true).await;
    let victim = chain.digest_keys()[2].clone();
    let mut document = chain.read_digest(&victim);
    document.log_files.clear();
    // A forger with a key of their own: a consistent digest, signed, but not by us.
    let forger_dir = tempfile::tempdir().expect("dir");
    let forger = DigestKeys::open(forger_dir.path(), Duration::from_secs(3600)).expect("keys");
    let fingerprint = forger.key_for(REGION, T0).expect("key");
    document.digest_public_key_fingerprint = fingerprint.clone();
    let json = serde_json::to_vec(&document).expect("json");
    let message = string_to_sign(
        &document.digest_end_time,
        BUCKET,
        &victim,
        &hex::encode(Sha256::digest(&json)),
        document.previous_digest_signature.as_deref(),
    );
    let signature = forger
        .sign_with(&fingerprint, message.as_bytes())
        .expect("sign");
    std::fs::write(chain.bucket_path(&victim), gzip(&json).expect("gzip")).expect("write");
    std::fs::write(
        chain.bucket_path(&format!("{victim}.signature.json")),
        json!({"signature": signature, "signatureAlgorithm": "SHA256withRSA"}).to_string(),
    )
    .expect("sidecar");
    assert_eq!(
        problems(&chain.validate().await),
        vec![format!(
            "Digest file\ts3://{BUCKET}/{victim}\tINVALID: public key not found for fingerprint {fingerprint}"
        )]
    );
}

#[tokio::test]
async fn a_restarted_chain_leaves_a_reported_gap() {
    let mut chain = Chain::new(Duration::from_secs(30 * 24 * 3600));
    chain.run(2, true).await;
    let last_seq = chain.harness.test_store.last_seq();
    chain.harness.trail_sender.send_modify(|trail| {
        Arc::make_mut(trail).logging.stop(last_seq, 2);
    });
    // Logging stopped: the final digest closes the chain once delivery is done.
    chain.delivery.poll(true).await.expect("deliver");
    chain.now_ms += 60_000;
    chain
        .digest
        .poll_at(chain.now_ms, false)
        .await
        .expect("final digest");
    assert_eq!(chain.digest_keys().len(), 3);
    assert!(chain.digest.state().period_start_ms.is_none());
    // Two hours later logging starts again: a new chain.
    chain.harness.trail_sender.send_modify(|trail| {
        Arc::make_mut(trail).logging.start(last_seq, 3);
    });
    chain.now_ms += 2 * HOUR;
    chain.run(1, true).await;
    let keys = chain.digest_keys();
    assert_eq!(keys.len(), 4);
    assert_eq!(chain.read_digest(&keys[3]).previous_digest_signature, None);
    let found = problems(&chain.validate().await);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]
            .starts_with("Gap\t2023-11-15T00:14:20Z to 2023-11-15T02:14:20Z\tINVALID: no digests"),
        "{found:?}"
    );
}

#[tokio::test]
async fn keys_rotate_across_digest_boundaries_and_old_digests_still_validate() {
    // Keys live two hours: five hourly digests need three keys.
    let mut chain = Chain::new(Duration::from_secs(2 * 3600));
    chain.run(5, true).await;
    let fingerprints: std::collections::BTreeSet<String> = chain
        .digest_keys()
        .iter()
        .map(|key| chain.read_digest(key).digest_public_key_fingerprint)
        .collect();
    assert_eq!(fingerprints.len(), 3);
    let report = chain.validate().await;
    assert!(report.is_valid(), "{:?}", problems(&report));
    assert_eq!(report.count(true, true), 5);
}

#[test]
fn our_signatures_verify_with_ring_and_python_rsa_signatures_verify_with_ours() {
    let dir = tempfile::tempdir().expect("dir");
    let keys = DigestKeys::open(dir.path(), Duration::from_secs(3600)).expect("keys");
    let fingerprint = keys.key_for(REGION, T0).expect("key");
    let message = string_to_sign(
        "2015-08-17T15:01:31Z",
        "trail-bucket",
        "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/x.json.gz",
        &hex::encode(Sha256::digest(b"{}")),
        None,
    );
    let signature = keys
        .sign_with(&fingerprint, message.as_bytes())
        .expect("sign");
    assert_eq!(signature.len(), 512);
    // Deterministic: the same message signs to the same bytes (crash redo relies on it).
    assert_eq!(
        keys.sign_with(&fingerprint, message.as_bytes())
            .expect("sign"),
        signature
    );
    let public = &keys.public_keys(REGION, T0, T0)[0];
    let ring_key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &public.public_der,
    );
    ring_key
        .verify(message.as_bytes(), &hex::decode(&signature).expect("hex"))
        .expect("ring accepts our signature");
    assert!(verify_signature(
        &public.public_der,
        message.as_bytes(),
        &signature
    ));
    assert!(!verify_signature(&public.public_der, b"other", &signature));

    // A vector made with python-rsa (what awscli verifies with): `rsa.sign(msg, key,
    // 'SHA-256')`, the key's `save_pkcs1('DER')` in base64.
    let python_public = base64::engine::general_purpose::STANDARD
        .decode(PYTHON_RSA_PUBLIC_DER_BASE64)
        .expect("base64");
    let python_message = format!(
        "2015-08-17T15:01:31Z\ntrail-bucket/AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_your-trail-name_us-east-2_20150817T150131Z.json.gz\n{}\nnull",
        hex::encode(Sha256::digest(br#"{"logFiles":[]}"#))
    );
    assert!(verify_signature(
        &python_public,
        python_message.as_bytes(),
        PYTHON_RSA_SIGNATURE_HEX
    ));
}

const PYTHON_RSA_PUBLIC_DER_BASE64: &str = "MIIBCgKCAQEAgN4HCuwMsNpM6iobV87YVBnH0Nq02Bs6DVocmeqLhzdGS5vVvAvaw2cXCUKnzgIB7LOKvGUPmOlOKSgDuKGApGfJuc9/SpgyALal97BfV9jyHUxtrAlyrycWXMuIVctiDE1DbczZY2NrRCQJdwBmko+UD7CaOyEaz2CQP42qPuIktR/tgdsdGSmQWwDZx+uQtQKiOGia3BqWpnUYGrzszBYJJeQG0VB9ik9X4qxtTP5l0UqnB0CXRNs3hAbKcQrGxobt44TCGses9nxk4GDePO3XiCNPdnzBTIrrSRbOPnq+rZLAjAG69rzRCorbRfHTz8zopoy9cTWDnK8kB5atswIDAQAB";
const PYTHON_RSA_SIGNATURE_HEX: &str = "1ec05a3a508e57dfa53c9d925c00630a74f40d93ec259d5a5b997475aa0a6a44598c70072946b40022ba08240db4be187ab061f72679ac140b8e479c161a8d91cc596603b13424b03eac1b5d5269a1df84b8848081a909f4c0c3f75f87f647f330abb00684459970b01ed70e23fe7b62c8ee4b11c4a0c169aec3b82ae4ebe0f4b4a8f49a9288260d1da1c8692c3896bae19927e6117d388140a9f3e235bdb32f15bdd0764b859d67b2d6d085c65a589810fc2b2eebeda39b71c452489433eee75f80f57fc5a948fef70f4084573535886c0d1f9fe0a2df12bd7616b8e66390862e2020994455562eeca46e022344f97f5e16bb591fdc0d27483522d2e58f9340";
