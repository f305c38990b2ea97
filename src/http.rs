//! What both connectors' HTTP clients share: a list page's envelope, parsed off the async workers into a
//! [`PageDecoder`], transport errors in one line, jitter for backoff, and the TLS provider.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use crate::error::one_line;
use crate::table::decode::PageDecoder;

/// A `Retry-After` header in seconds (fractions allowed), when the server sent a usable one.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    let seconds = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<f64>().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| std::time::Duration::from_secs_f64(seconds))
}

/// The outcome of a write: the HTTP status and the decoded body, if any (non-2xx statuses are
/// answers, not errors, so actions can map them to outcomes).
#[derive(Debug)]
pub struct WriteResponse {
    pub status: u16,
    pub body: Option<serde_json::Value>,
    pub message: String,
}

/// What a list fetch returned: its pages, each already converted by the caller.
#[derive(Debug)]
pub struct Listing<B> {
    /// In server order.
    pub pages: Vec<B>,
    /// The server's count (`totalCount` or `x-total-count`); `None` when it sent none.
    pub expected: Option<u64>,
    /// HTTP requests made, retries included.
    pub requests: u64,
    pub bytes: u64,
}

impl<B> Default for Listing<B> {
    fn default() -> Self {
        Listing { pages: Vec::new(), expected: None, requests: 0, bytes: 0 }
    }
}

/// A list page's object: the records under `items` decoded by `P` (`None` when absent or null),
/// and the one other field the paging needs under `other` (JumpCloud's `totalCount`, Google's
/// `nextPageToken`). Everything else is skipped unread.
pub struct Envelope<'p, P, T> {
    pub items: &'p str,
    pub other: &'p str,
    pub decoder: &'p P,
    pub other_type: std::marker::PhantomData<T>,
}

impl<'p, P, T> Envelope<'p, P, T> {
    pub fn new(items: &'p str, other: &'p str, decoder: &'p P) -> Self {
        Envelope { items, other, decoder, other_type: std::marker::PhantomData }
    }
}

/// The records of a list page (decoded, and how many), and its other field.
pub type EnvelopeOf<P, T> = (Option<(<P as PageDecoder>::Page, u64)>, Option<T>);

impl<'de, P: PageDecoder, T: Deserialize<'de>> DeserializeSeed<'de> for Envelope<'_, P, T> {
    type Value = EnvelopeOf<P, T>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, P: PageDecoder, T: Deserialize<'de>> Visitor<'de> for Envelope<'_, P, T> {
    type Value = EnvelopeOf<P, T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with `{}` and `{}`", self.items, self.other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let (mut records, mut other) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            if key == self.items {
                records = map.next_value_seed(OptionalRecords(self.decoder))?;
            } else if key == self.other {
                other = map.next_value::<Option<T>>()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok((records, other))
    }
}

/// A JSON array of records, decoded by `P`.
pub struct Records<'p, P>(pub &'p P);

impl<'de, P: PageDecoder> DeserializeSeed<'de> for Records<'_, P> {
    type Value = (P::Page, u64);
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        self.0.decode_records(d)
    }
}

/// A whole response body (nothing may follow the value), parsed off the async workers.
pub fn parse_body<'de, S: DeserializeSeed<'de>>(body: &'de [u8], seed: S) -> serde_json::Result<S::Value> {
    off_the_reactor(|| {
        let mut de = serde_json::Deserializer::from_slice(body);
        let value = seed.deserialize(&mut de)?;
        de.end().map(|_| value)
    })
}

/// `null` or a JSON array of records.
pub struct OptionalRecords<'p, P>(pub &'p P);

impl<'de, P: PageDecoder> DeserializeSeed<'de> for OptionalRecords<'_, P> {
    type Value = Option<(P::Page, u64)>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, P: PageDecoder> Visitor<'de> for OptionalRecords<'_, P> {
    type Value = Option<(P::Page, u64)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of records")
    }
    fn visit_none<E>(self) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        Records(self.0).deserialize(d).map(Some)
    }
}

/// Runs CPU-heavy work (decoding a page, building its Arrow batch) so that it does not stall the
/// async workers: on a multi-thread runtime the worker hands its other tasks to another thread
/// first, so requests keep being issued while pages are decoded.
pub fn off_the_reactor<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

pub fn transport_reason(e: &reqwest::Error) -> String {
    // reqwest's Display includes the URL, which never holds the key; the source chain says why.
    let mut reason = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    if let Some(l) = last {
        reason.push_str(": ");
        reason.push_str(&l);
    }
    one_line(&reason)
}

/// A number in [0, 1) without a PRNG dependency: the low bits of the clock and a counter.
pub fn jitter() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let mut x = COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider was installed first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
