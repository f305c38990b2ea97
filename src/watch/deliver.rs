//! Webhook delivery: one POST per board per run, retried when the answer says "later" (network
//! errors, 408, 429 with its `Retry-After`, 5xx), never when it says "no" (other 4xx). What is not
//! delivered stays in the board's outbox with its delivery id and goes first next run, so a
//! receiver sees every delivery at least once and can drop repeats by `X-Jcsql-Delivery`.
//!
//! A webhook URL is a secret (Slack's and most others carry their token in the path): it is kept
//! in memory only; the outbox names a target by a fingerprint of its URL, and no message says it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Event, stable_id};

/// Tries per delivery in one run.
pub const TRIES: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A `Retry-After` longer than this leaves the delivery for the next run.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// Where deliveries go: a generic webhook (jcsql's JSON) or Slack (`{"text"}` only).
#[derive(Clone)]
pub struct Target {
    url: String,
    pub slack: bool,
    /// What the outbox and messages call it.
    pub fingerprint: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.fingerprint)
    }
}

impl Target {
    pub fn new(url: &str, slack: bool) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(url).map_err(|_| {
            format!(
                "a {} URL does not parse (it is not shown: it may hold a secret)",
                if slack { "--slack" } else { "--webhook" }
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("a webhook URL must start with https:// (or http://)".into());
        }
        let kind = if slack { "slack" } else { "webhook" };
        Ok(Target { url: url.to_string(), slack, fingerprint: format!("{kind}-{}", &stable_id(&[url])[..8]) })
    }

    /// What a board's events become for this target.
    pub fn body(&self, board: &str, title: Option<&str>, events: &[Event]) -> Value {
        let count = |kind: &str| events.iter().filter(|e| e.kind == kind).count();
        let open = events.last().map_or(0, |e| e.open_count);
        let errored = events.iter().any(|e| e.kind == "source_error");
        let status = if errored {
            "error"
        } else if open > 0 {
            "firing"
        } else {
            "resolved"
        };
        let name = title.unwrap_or(board);
        let text = if errored {
            let why = events.iter().find_map(|e| e.error.clone()).unwrap_or_default();
            format!("{name}: cannot be checked ({why})")
        } else {
            let mut parts = Vec::new();
            for (kind, n) in [("added", count("added")), ("removed", count("removed")), ("changed", count("changed"))] {
                if n > 0 {
                    parts.push(format!("{n} {kind}"));
                }
            }
            if count("source_recovered") > 0 {
                parts.push("its sources answer again".into());
            }
            format!("{name}: {}; {open} open", parts.join(", "))
        };
        if self.slack {
            return json!({ "text": text });
        }
        json!({
            "text": text,
            "jcsql": {
                "board": board,
                "status": status,
                "counts": {"added": count("added"), "removed": count("removed"), "changed": count("changed"), "open": open},
                "events": events,
            }
        })
    }
}

/// A POST waiting to be made (or made again) with the same id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    /// The target's fingerprint.
    pub target: String,
    pub body: Value,
    /// Tries so far, over every run.
    #[serde(default)]
    pub tries: u32,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// What became of a delivery in this run.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Not delivered; stays in the outbox. The reason names no URL.
    Kept(String),
}

pub fn client() -> Result<reqwest::Client, String> {
    crate::http::install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("jcsql/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// POSTs a delivery, retrying what may succeed later.
pub async fn deliver(http: &reqwest::Client, target: &Target, delivery: &mut Delivery) -> Outcome {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=TRIES {
        delivery.tries += 1;
        let sent = http
            .post(&target.url)
            .header("X-Jcsql-Delivery", &delivery.id)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(delivery.body.to_string())
            .send()
            .await;
        let (reason, wait) = match sent {
            Ok(resp) if resp.status().is_success() => return Outcome::Delivered,
            Ok(resp) => {
                let status = resp.status();
                let reason = format!("{} answered {}", target.fingerprint, status.as_u16());
                let retryable = status.is_server_error() || matches!(status.as_u16(), 408 | 429);
                if !retryable {
                    delivery.last_error = Some(reason.clone());
                    return Outcome::Kept(format!("{reason}, which is not retried"));
                }
                (reason, crate::http::retry_after(resp.headers()))
            }
            Err(e) => (format!("{}: {}", target.fingerprint, crate::http::transport_reason(&e)), None),
        };
        delivery.last_error = Some(reason.clone());
        if attempt == TRIES {
            return Outcome::Kept(format!("{reason} ({TRIES} tries)"));
        }
        let wait = match wait {
            Some(w) if w > MAX_RETRY_AFTER => {
                return Outcome::Kept(format!("{reason}; asked to wait {}s", w.as_secs()));
            }
            Some(w) => w,
            None => {
                let jittered = backoff.mul_f64(0.75 + crate::http::jitter() / 2.0);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                jittered
            }
        };
        tokio::time::sleep(wait).await;
    }
    Outcome::Kept("not delivered".into())
}
