//! What started an execution, translated to [`ExecutionInput`].
//!
//! An execution input is one of three shapes:
//! 1. the console input ([`ExecutionInput`]), typed by a person or sent by `stackwave deploy`;
//! 2. the EventBridge "Object Created" event S3 sends when a manifest is uploaded under
//!    `manifests/<environment>/…/manifest.yaml` in the artifact bucket (rule 1 of the template);
//! 3. a custom EventBridge event, `source: stackwave`, `detail-type: Deployment Requested`,
//!    `detail: {manifest, environment, pollSeconds?, maxConcurrency?}` (rule 2, e.g. from CI).
//!
//! EventBridge targets cannot name the execution, so an event delivered twice starts two
//! executions. Each event therefore carries a deduplication key ([`TriggerEvent::dedup_key`]):
//! the same for every delivery of one event, different for different events. The plan function
//! claims it (an SSM parameter created only if absent, [`TriggerEvent::claim_parameter`]) and the
//! second delivery fails with `DuplicateEvent`.
//!
//! Pure: no AWS I/O. The envelope is parsed with `aws_lambda_events`' [`EventBridgeEvent`].

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::io::{ExecutionInput, PollSeconds};
use crate::Error;

/// `source` of the S3 events EventBridge receives.
pub const S3_SOURCE: &str = "aws.s3";
/// `detail-type` of an S3 upload.
pub const OBJECT_CREATED: &str = "Object Created";
/// `source` of stackwave's custom event.
pub const CUSTOM_SOURCE: &str = "stackwave";
/// `detail-type` of stackwave's custom event.
pub const DEPLOYMENT_REQUESTED: &str = "Deployment Requested";
/// Uploads under this prefix start a deployment: `manifests/<environment>/…/manifest.yaml`.
pub const MANIFEST_PREFIX: &str = "manifests";
/// The file name an upload must have to start a deployment.
pub const MANIFEST_FILE: &str = "manifest.yaml";

macro_rules! console_shape {
    () => {
        "{\"environment\": \"dev\" (required: letters, digits and '-', at most 32, starting with a letter or digit), \"manifest\": \"s3://bucket/deployments/dev/<timestamp>/manifest.yaml\" (optional: defaults to the SSM parameter /stackwave/<environment>/manifest-uri), \"pollSeconds\": {\"min\": 5, \"max\": 60} (optional: 1 <= min <= max <= 3600), \"maxConcurrency\": 10 (optional: stacks in flight at once, 1 to 40), \"fallbackPollSeconds\": 900 (optional: how long to wait for a CloudFormation event before looking anyway, 1 to 3600)}"
    };
}

/// The console input's accepted shape.
pub const CONSOLE_SHAPE: &str = console_shape!();

/// Every accepted execution input shape, shown in `InvalidInput` errors about the input.
pub const ACCEPTED_SHAPES: &str = concat!(
    "one of (1) the console input ",
    console_shape!(),
    "; (2) the EventBridge event S3 sends for an upload to the artifact bucket: {\"source\": \"aws.s3\", \"detail-type\": \"Object Created\", \"id\": \"<uuid>\", \"detail\": {\"bucket\": {\"name\": \"<artifact bucket>\"}, \"object\": {\"key\": \"manifests/<environment>/<any path>/manifest.yaml\", \"etag\": \"...\", \"version-id\": \"...\"}}}",
    "; (3) the custom EventBridge event {\"source\": \"stackwave\", \"detail-type\": \"Deployment Requested\", \"id\": \"<uuid>\", \"detail\": {\"manifest\": \"s3://<artifact bucket>/<key>/manifest.yaml\", \"environment\": \"dev\", \"pollSeconds\": {\"min\": 5, \"max\": 60} (optional), \"maxConcurrency\": 10 (optional)}}"
);

/// What started the execution, and the input it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub input: ExecutionInput,
    /// Present when an EventBridge event (or its envelope given as the input) started it.
    pub event: Option<TriggerEvent>,
}

/// Which of the two EventBridge rules' events it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    /// S3 "Object Created" for `manifests/<environment>/…/manifest.yaml`.
    ManifestUploaded,
    /// The custom "Deployment Requested" event.
    DeploymentRequested,
}

/// The event behind an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerEvent {
    pub kind: TriggerKind,
    /// The envelope's `id` (EventBridge keeps it across redeliveries of one event).
    pub event_id: Option<String>,
    /// Same for every delivery of the event, different for different events; safe in an SSM
    /// parameter name. `None` when the envelope has nothing to tell deliveries apart (a custom
    /// event without `id`, typed by hand): such an execution is not deduplicated.
    pub dedup_key: Option<String>,
    /// For people: what the event is (object and version, or event id).
    pub description: String,
    /// The uploaded manifest's S3 version id (an S3 upload to a versioned bucket): the plan
    /// reads exactly that version, so a newer upload of the same key moments later cannot be
    /// read by this execution in its place (it starts its own).
    pub manifest_version: Option<String>,
}

impl TriggerEvent {
    /// `/stackwave/<environment>/events/<dedup key>`: the SSM parameter that claims the event.
    /// It expires [`CLAIM_HOURS`] after the claim ([`claim_expiration_policy`]).
    pub fn claim_parameter(&self, environment: &str) -> Option<String> {
        self.dedup_key
            .as_ref()
            .map(|key| claim_parameter(environment, key))
    }
}

/// How long an event's claim is kept. EventBridge redelivers an event only within the rule
/// target's `MaximumEventAgeInSeconds` (one hour in template.yaml; 24 hours at most in AWS), so
/// a day covers every redelivery, and SSM deletes the claim afterwards: claims do not pile up
/// towards the account's parameter limit.
pub const CLAIM_HOURS: i64 = 24;
// At least the longest redelivery window EventBridge allows (24 hours).
const _: () = assert!(CLAIM_HOURS * 3600 >= 86_400);

/// The SSM parameter policy that deletes a claim [`CLAIM_HOURS`] after `now` (SSM User Guide,
/// "Assigning parameter policies": `Expiration`, which needs the Advanced tier).
pub fn claim_expiration_policy(now: chrono::DateTime<chrono::Utc>) -> String {
    let at = now + chrono::Duration::hours(CLAIM_HOURS);
    serde_json::json!([{
        "Type": "Expiration",
        "Version": "1.0",
        "Attributes": {"Timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}
    }])
    .to_string()
}

/// `/stackwave/<environment>/events/<dedup key>`.
pub fn claim_parameter(environment: &str, dedup_key: &str) -> String {
    format!("/stackwave/{environment}/events/{dedup_key}")
}

/// The `detail` of an S3 EventBridge event (S3 User Guide, "EventBridge event message
/// structure"). Only the fields stackwave reads; the others are ignored.
#[derive(Debug, Deserialize)]
struct S3ObjectDetail {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Debug, Deserialize)]
struct S3Bucket {
    name: String,
}

#[derive(Debug, Deserialize)]
struct S3Object {
    key: String,
    #[serde(default)]
    etag: Option<String>,
    /// Present for versioned buckets (the artifact bucket is one).
    #[serde(default, rename = "version-id")]
    version_id: Option<String>,
}

/// The `detail` of the custom event.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeploymentRequestedDetail {
    manifest: String,
    environment: String,
    #[serde(default)]
    poll_seconds: Option<PollSeconds>,
    #[serde(default)]
    max_concurrency: Option<u32>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidInput {
        message: message.into(),
        accepted: ACCEPTED_SHAPES.to_string(),
    }
}

/// Does this input look like an EventBridge envelope rather than the console input? The console
/// input has none of these fields, so an envelope with a mistake is still reported as one.
fn is_envelope(object: &serde_json::Map<String, serde_json::Value>) -> bool {
    object.contains_key("detail-type")
        || object.contains_key("source")
        || object.contains_key("detail")
}

/// Translate an execution input of any accepted shape. A wrong shape is `InvalidInput` showing
/// every accepted shape.
pub fn from_value(value: serde_json::Value) -> Result<Trigger, Error> {
    let envelope = match &value {
        serde_json::Value::Object(object) => is_envelope(object),
        other => {
            return Err(invalid(format!(
                "execution input: expected a JSON object, got {}",
                json_kind(other)
            )))
        }
    };
    if !envelope {
        let input: ExecutionInput =
            serde_json::from_value(value).map_err(|e| invalid(format!("execution input: {e}")))?;
        return Ok(Trigger { input, event: None });
    }
    let event: EventBridgeEvent<serde_json::Value> =
        serde_json::from_value(value).map_err(|e| invalid(format!("EventBridge event: {e}")))?;
    match (event.source.as_str(), event.detail_type.as_str()) {
        (S3_SOURCE, OBJECT_CREATED) => manifest_uploaded(event),
        (CUSTOM_SOURCE, DEPLOYMENT_REQUESTED) => deployment_requested(event),
        (source, detail_type) => Err(invalid(format!(
            "EventBridge event with source {source:?} and detail-type {detail_type:?} does not start a deployment: stackwave handles source {S3_SOURCE:?} with {OBJECT_CREATED:?} and source {CUSTOM_SOURCE:?} with {DEPLOYMENT_REQUESTED:?}. Fix: check the EventBridge rule's event pattern"
        ))),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn manifest_uploaded(event: EventBridgeEvent<serde_json::Value>) -> Result<Trigger, Error> {
    let detail: S3ObjectDetail = serde_json::from_value(event.detail).map_err(|e| {
        invalid(format!(
            "S3 {OBJECT_CREATED:?} event: detail: {e}. It needs detail.bucket.name and detail.object.key"
        ))
    })?;
    let S3ObjectDetail { bucket, object } = detail;
    let environment = environment_of_key(&object.key).ok_or_else(|| {
        invalid(format!(
            "S3 object s3://{}/{} is not a manifest upload: only {MANIFEST_PREFIX}/<environment>/<any path>/{MANIFEST_FILE} starts a deployment. Fix: upload the manifest under {MANIFEST_PREFIX}/<environment>/, or narrow the EventBridge rule to that key pattern",
            bucket.name, object.key
        ))
    })?;
    let uri = format!("s3://{}/{}", bucket.name, object.key);
    // S3 reports "null" as the version of an object in a bucket that was never versioned.
    let version = object.version_id.filter(|v| !v.is_empty() && v != "null");
    let etag = object
        .etag
        .map(|e| e.trim_matches('"').to_string())
        .filter(|e| !e.is_empty());
    let (dedup_key, description) = match (&version, &etag) {
        (Some(v), _) => (
            Some(format!(
                "s3-{}",
                digest(&["s3", &bucket.name, &object.key, "version", v])
            )),
            format!("S3 upload {uri} (version {v})"),
        ),
        (None, Some(tag)) => (
            Some(format!(
                "s3-{}",
                digest(&["s3", &bucket.name, &object.key, "etag", tag])
            )),
            format!("S3 upload {uri} (etag {tag})"),
        ),
        (None, None) => match event.id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => (Some(event_key(id)), format!("S3 upload {uri} (event {id})")),
            None => (None, format!("S3 upload {uri}")),
        },
    };
    Ok(Trigger {
        input: ExecutionInput {
            manifest: Some(uri),
            environment,
            poll_seconds: None,
            max_concurrency: None,
            fallback_poll_seconds: None,
            segment_events: None,
            dry_run: false,
        },
        event: Some(TriggerEvent {
            kind: TriggerKind::ManifestUploaded,
            event_id: event.id,
            dedup_key,
            description,
            manifest_version: version,
        }),
    })
}

fn deployment_requested(event: EventBridgeEvent<serde_json::Value>) -> Result<Trigger, Error> {
    let detail: DeploymentRequestedDetail = serde_json::from_value(event.detail)
        .map_err(|e| invalid(format!("{DEPLOYMENT_REQUESTED:?} event: detail: {e}")))?;
    let id = event.id.clone().filter(|id| !id.is_empty());
    let description = match &id {
        Some(id) => format!("{DEPLOYMENT_REQUESTED} event {id} ({})", detail.manifest),
        None => format!(
            "{DEPLOYMENT_REQUESTED} event without id ({})",
            detail.manifest
        ),
    };
    Ok(Trigger {
        input: ExecutionInput {
            manifest: Some(detail.manifest),
            environment: detail.environment,
            poll_seconds: detail.poll_seconds,
            max_concurrency: detail.max_concurrency,
            fallback_poll_seconds: None,
            segment_events: None,
            dry_run: false,
        },
        event: Some(TriggerEvent {
            kind: TriggerKind::DeploymentRequested,
            event_id: id.clone(),
            dedup_key: id.as_deref().map(event_key),
            description,
            manifest_version: None,
        }),
    })
}

/// The environment an execution input names, whatever its shape and even when it is invalid
/// otherwise: the console input's `environment`, the custom event's `detail.environment`, or the
/// second segment of an S3 upload's `manifests/<environment>/…` key. For alerts about rejected
/// runs, so that they can be filtered by environment.
pub fn environment_hint(input: &serde_json::Value) -> Option<String> {
    let text = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    text(input.get("environment"))
        .or_else(|| text(input.pointer("/detail/environment")))
        .or_else(|| {
            input
                .pointer("/detail/object/key")
                .and_then(serde_json::Value::as_str)
                .and_then(|key| key.strip_prefix(MANIFEST_PREFIX))
                .and_then(|rest| rest.strip_prefix('/'))
                .and_then(|rest| rest.split('/').next())
                .filter(|env| !env.is_empty())
                .map(str::to_string)
        })
}

/// `manifests/<environment>/…/manifest.yaml` → the environment (not validated here).
pub fn environment_of_key(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        [prefix, environment, .., file]
            if *prefix == MANIFEST_PREFIX && *file == MANIFEST_FILE && parts.len() >= 3 =>
        {
            Some((*environment).to_string())
        }
        _ => None,
    }
}

/// `event-<id>` when the id is short and uses only characters SSM names allow, else a digest.
fn event_key(id: &str) -> String {
    let safe = id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if safe {
        format!("event-{id}")
    } else {
        format!("event-{}", digest(&["event", id]))
    }
}

/// 32 hex characters of sha256 over the parts, joined by newlines.
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(parts.join("\n").as_bytes());
    hex::encode(h.finalize())[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s3_event(key: &str, version: Option<&str>, etag: Option<&str>) -> serde_json::Value {
        let mut object = json!({"key": key, "size": 120, "sequencer": "617f08299329d189"});
        if let Some(v) = version {
            object["version-id"] = json!(v);
        }
        if let Some(e) = etag {
            object["etag"] = json!(e);
        }
        json!({
            "version": "0",
            "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "time": "2026-11-27T10:15:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:s3:::artifacts"],
            "detail": {
                "version": "0",
                "bucket": {"name": "artifacts"},
                "object": object,
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": "123456789012",
                "source-ip-address": "1.2.3.4",
                "reason": "PutObject"
            }
        })
    }

    fn custom_event(id: Option<&str>, detail: serde_json::Value) -> serde_json::Value {
        let mut event = json!({
            "version": "0",
            "detail-type": "Deployment Requested",
            "source": "stackwave",
            "account": "123456789012",
            "time": "2026-11-27T10:15:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail
        });
        if let Some(id) = id {
            event["id"] = json!(id);
        }
        event
    }

    #[test]
    fn console_input_passes_through_without_an_event() {
        let t = from_value(json!({"environment": "dev", "manifest": "s3://b/k/manifest.yaml", "pollSeconds": {"min": 1, "max": 2}}))
            .unwrap();
        assert_eq!(t.event, None);
        assert_eq!(t.input.environment, "dev");
        assert_eq!(t.input.manifest.as_deref(), Some("s3://b/k/manifest.yaml"));
        assert_eq!(t.input.poll_seconds, Some(PollSeconds { min: 1, max: 2 }));
        let t = from_value(json!({"environment": "dev"})).unwrap();
        assert_eq!(t.input.manifest, None);
    }

    #[test]
    fn a_console_input_mistake_shows_every_accepted_shape() {
        let err = from_value(json!({"environment": "dev", "manifests": "s3://b/k"})).unwrap_err();
        assert_eq!(err.name(), "InvalidInput");
        let text = err.to_string();
        assert!(text.contains("manifests"), "{text}");
        assert!(text.contains("Accepted shape"), "{text}");
        assert!(text.contains("pollSeconds"), "{text}");
        assert!(text.contains("Object Created"), "{text}");
        assert!(text.contains("Deployment Requested"), "{text}");
        for bad in [json!("dev"), json!([1]), json!(null)] {
            let err = from_value(bad.clone()).unwrap_err();
            assert_eq!(err.name(), "InvalidInput", "{bad}");
            assert!(err.to_string().contains("JSON object"), "{bad}: {err}");
        }
    }

    #[test]
    fn s3_upload_becomes_the_manifest_and_its_environment() {
        let t = from_value(s3_event(
            "manifests/dev/2026-11-27/manifest.yaml",
            Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"),
            Some("b1946ac92492d2347c6235b4d2611184"),
        ))
        .unwrap();
        assert_eq!(
            t.input,
            ExecutionInput {
                manifest: Some("s3://artifacts/manifests/dev/2026-11-27/manifest.yaml".into()),
                environment: "dev".into(),
                poll_seconds: None,
                max_concurrency: None,
                fallback_poll_seconds: None,
                segment_events: None,
                dry_run: false,
            }
        );
        let event = t.event.unwrap();
        assert_eq!(event.kind, TriggerKind::ManifestUploaded);
        assert_eq!(
            event.event_id.as_deref(),
            Some("17793124-05d4-b198-2fde-7ededc63b103")
        );
        assert!(
            event
                .description
                .contains("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"),
            "{}",
            event.description
        );
        assert_eq!(
            event.manifest_version.as_deref(),
            Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"),
            "the plan reads the uploaded version"
        );
        let key = event.dedup_key.clone().unwrap();
        assert!(key.starts_with("s3-") && key.len() == 35, "{key}");
        assert_eq!(
            event.claim_parameter("dev").unwrap(),
            format!("/stackwave/dev/events/{key}")
        );
        // Directly under the environment's folder is a manifest upload too.
        let t = from_value(s3_event("manifests/prod/manifest.yaml", None, Some("e1"))).unwrap();
        assert_eq!(t.input.environment, "prod");
        // An unversioned bucket's "null" version is no version: the key is read as it is.
        assert_eq!(t.event.unwrap().manifest_version, None);
        let t = from_value(s3_event(
            "manifests/prod/manifest.yaml",
            Some("null"),
            Some("e1"),
        ))
        .unwrap();
        assert_eq!(t.event.unwrap().manifest_version, None);
    }

    #[test]
    fn claims_expire_a_day_after_they_are_taken() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-27T10:15:30.250Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let policy: serde_json::Value =
            serde_json::from_str(&claim_expiration_policy(now)).unwrap();
        assert_eq!(
            policy,
            json!([{"Type": "Expiration", "Version": "1.0",
                    "Attributes": {"Timestamp": "2026-11-28T10:15:30Z"}}])
        );
    }

    #[test]
    fn s3_dedup_key_follows_the_object_version_else_its_etag_and_key() {
        let key_of = |key: &str, version: Option<&str>, etag: Option<&str>| {
            from_value(s3_event(key, version, etag))
                .unwrap()
                .event
                .unwrap()
                .dedup_key
                .unwrap()
        };
        let k = "manifests/dev/a/manifest.yaml";
        // A redelivery carries the same version: the same key.
        assert_eq!(
            key_of(k, Some("v1"), Some("e1")),
            key_of(k, Some("v1"), Some("e1"))
        );
        // A new version of the same object, even with the same content: another key.
        assert_ne!(
            key_of(k, Some("v1"), Some("e1")),
            key_of(k, Some("v2"), Some("e1"))
        );
        // No version (an unversioned bucket says "null"): etag and key decide.
        assert_eq!(
            key_of(k, Some("null"), Some("e1")),
            key_of(k, None, Some("\"e1\""))
        );
        assert_ne!(key_of(k, None, Some("e1")), key_of(k, None, Some("e2")));
        assert_ne!(
            key_of(k, None, Some("e1")),
            key_of("manifests/dev/b/manifest.yaml", None, Some("e1"))
        );
        // Neither: the event id.
        assert_eq!(
            key_of(k, None, None),
            "event-17793124-05d4-b198-2fde-7ededc63b103"
        );
    }

    #[test]
    fn s3_uploads_outside_manifests_are_rejected_naming_the_pattern() {
        for key in [
            "deployments/dev/t1/manifest.yaml",
            "manifests/manifest.yaml",
            "manifests/dev/a/template.yaml",
            "other/manifests/dev/manifest.yaml",
        ] {
            let err = from_value(s3_event(key, Some("v"), Some("e"))).unwrap_err();
            assert_eq!(err.name(), "InvalidInput", "{key}");
            let text = err.to_string();
            assert!(text.contains(key), "{text}");
            assert!(text.contains("manifests/<environment>/"), "{text}");
        }
        let mut broken = s3_event("manifests/dev/manifest.yaml", None, None);
        broken["detail"] = json!({"bucket": {"name": "artifacts"}});
        let err = from_value(broken).unwrap_err();
        assert!(err.to_string().contains("object"), "{err}");
    }

    #[test]
    fn custom_event_carries_its_settings_and_dedups_on_its_id() {
        let t = from_value(custom_event(
            Some("6a7e8feb-b491-4cf7-a9f1-bf3703467718"),
            json!({"manifest": "s3://artifacts/deployments/dev/t1/manifest.yaml", "environment": "dev", "pollSeconds": {"min": 1, "max": 2}, "maxConcurrency": 3}),
        ))
        .unwrap();
        assert_eq!(
            t.input,
            ExecutionInput {
                manifest: Some("s3://artifacts/deployments/dev/t1/manifest.yaml".into()),
                environment: "dev".into(),
                poll_seconds: Some(PollSeconds { min: 1, max: 2 }),
                max_concurrency: Some(3),
                fallback_poll_seconds: None,
                segment_events: None,
                dry_run: false,
            }
        );
        let event = t.event.unwrap();
        assert_eq!(event.kind, TriggerKind::DeploymentRequested);
        assert_eq!(
            event.dedup_key.as_deref(),
            Some("event-6a7e8feb-b491-4cf7-a9f1-bf3703467718")
        );
        assert!(
            event.description.contains("6a7e8feb"),
            "{}",
            event.description
        );

        // An id with characters SSM names refuse is digested.
        let t = from_value(custom_event(
            Some("ci run #42 / attempt 1"),
            json!({"manifest": "s3://a/m.yaml", "environment": "dev"}),
        ))
        .unwrap();
        let key = t.event.unwrap().dedup_key.unwrap();
        assert!(key.starts_with("event-") && key.len() == 38, "{key}");

        // Without an id (typed by hand) there is nothing to deduplicate on.
        let t = from_value(custom_event(
            None,
            json!({"manifest": "s3://a/m.yaml", "environment": "dev"}),
        ))
        .unwrap();
        let event = t.event.unwrap();
        assert_eq!(event.dedup_key, None);
        assert_eq!(event.claim_parameter("dev"), None);
    }

    #[test]
    fn wrong_events_are_invalid_input_showing_the_accepted_shapes() {
        let cases = [
            (
                custom_event(Some("x"), json!({"environment": "dev"})),
                "manifest",
            ),
            (
                custom_event(
                    Some("x"),
                    json!({"manifest": "s3://a/m.yaml", "environment": "dev", "force": true}),
                ),
                "force",
            ),
            (
                json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}}),
                "aws.ec2",
            ),
            (
                json!({"source": "stackwave", "detail-type": "Deployment Finished", "detail": {}}),
                "Deployment Finished",
            ),
            (
                json!({"source": "stackwave", "detail": {"manifest": "s3://a/m.yaml", "environment": "dev"}}),
                "detail-type",
            ),
            (
                json!({"source": "stackwave", "detail-type": "Deployment Requested", "time": "yesterday", "detail": {}}),
                "EventBridge event",
            ),
        ];
        for (input, needle) in cases {
            let err = from_value(input.clone()).unwrap_err();
            assert_eq!(err.name(), "InvalidInput", "{input}");
            let text = err.to_string();
            assert!(text.contains(needle), "{input}: {text}");
            assert!(text.contains("Accepted shape: one of"), "{text}");
        }
    }

    #[test]
    fn environment_hint_finds_the_environment_in_every_shape() {
        assert_eq!(
            environment_hint(&json!({"environment": "qa", "x": 1})).as_deref(),
            Some("qa")
        );
        assert_eq!(
            environment_hint(&custom_event(
                Some("i"),
                json!({"environment": "stage", "bad": 1})
            ))
            .as_deref(),
            Some("stage")
        );
        assert_eq!(
            environment_hint(&s3_event("manifests/prod/a/template.yaml", None, None)).as_deref(),
            Some("prod")
        );
        assert_eq!(
            environment_hint(&s3_event("other/prod/manifest.yaml", None, None)),
            None
        );
        assert_eq!(environment_hint(&json!({"environment": " "})), None);
        assert_eq!(environment_hint(&json!("dev")), None);
    }

    #[test]
    fn environment_of_key_reads_the_second_segment() {
        assert_eq!(
            environment_of_key("manifests/dev/x/y/manifest.yaml").as_deref(),
            Some("dev")
        );
        assert_eq!(
            environment_of_key("manifests/dev/manifest.yaml").as_deref(),
            Some("dev")
        );
        assert_eq!(environment_of_key("manifests/manifest.yaml"), None);
        assert_eq!(environment_of_key("manifests/dev/manifest.yml"), None);
        assert_eq!(environment_of_key(""), None);
    }
}
