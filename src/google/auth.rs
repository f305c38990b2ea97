//! Service-account auth (DESIGN §3d): an RS256 JWT signed with the key file's private key,
//! exchanged at the key file's `token_uri` for an access token that is renewed before it
//! expires. The key file's contents live only in memory; errors name its path, never a byte of it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::error::{GoogleError, Result};

/// Read-only access to users and groups: all jcsql asks for while no Google action is enabled.
pub const SCOPES: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly https://www.googleapis.com/auth/admin.directory.group.readonly";
/// What the Google actions need (DESIGN §5a): users (suspend), their sign-in sessions (sign
/// out) and group members; groups are still only read.
pub const WRITE_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/admin.directory.user",
    "https://www.googleapis.com/auth/admin.directory.user.security",
    "https://www.googleapis.com/auth/admin.directory.group.member",
];
pub const GROUP_READ_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";

/// The scopes to ask for: read-only, or the write scopes (and reading groups) while a Google
/// action is enabled.
pub fn scopes(write: bool) -> String {
    if write {
        WRITE_SCOPES.iter().copied().chain([GROUP_READ_SCOPE]).collect::<Vec<_>>().join(" ")
    } else {
        SCOPES.to_string()
    }
}
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google accepts assertions valid for at most an hour.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// A token is renewed when it has less than this left, so no request carries an expiring one.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The parts of a service-account key file jcsql uses.
pub struct ServiceAccount {
    pub path: PathBuf,
    pub client_email: String,
    pub token_uri: String,
    key: EncodingKey,
    key_id: Option<String>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount").field("path", &self.path).field("client_email", &self.client_email).finish()
    }
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

impl ServiceAccount {
    pub fn load(path: &Path) -> Result<ServiceAccount> {
        let bad = |reason: &str| GoogleError::KeyFile { path: path.display().to_string(), reason: reason.to_string() };
        let text = std::fs::read(path).map_err(|e| bad(&format!("cannot read it ({})", e.kind())))?;
        // serde's message could quote the file; say only where it broke.
        let file: KeyFile = serde_json::from_slice(&text)
            .map_err(|e| bad(&format!("it is not a JSON key file (line {}, column {})", e.line(), e.column())))?;
        if file.kind.as_deref().is_some_and(|k| k != "service_account") {
            return Err(bad("it is not a service-account key (its type is not service_account)").into());
        }
        let client_email =
            file.client_email.filter(|e| e.contains('@')).ok_or_else(|| bad("it has no client_email"))?;
        let token_uri = file.token_uri.filter(|u| u.starts_with("http")).ok_or_else(|| bad("it has no token_uri"))?;
        let pem = file.private_key.ok_or_else(|| bad("it has no private_key"))?;
        let key = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|_| bad("its private_key is not an RSA private key in PEM form"))?;
        Ok(ServiceAccount { path: path.to_path_buf(), client_email, token_uri, key, key_id: file.private_key_id })
    }

    /// The signed assertion asking for `subject`'s access with `scopes` (space-separated).
    pub fn assertion(&self, subject: &str, scopes: &str) -> Result<String> {
        let now = unix_now();
        let claims = Claims {
            iss: self.client_email.clone(),
            sub: subject.to_string(),
            aud: self.token_uri.clone(),
            scope: scopes.to_string(),
            iat: now,
            exp: now + ASSERTION_LIFETIME.as_secs(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| {
            GoogleError::KeyFile {
                path: self.path.display().to_string(),
                reason: format!("cannot sign with its key ({e})"),
            }
            .into()
        })
    }
}

/// The claims of the assertion (RFC 7523), as Google's token endpoint reads them.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub scope: String,
    pub iat: u64,
    pub exp: u64,
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// An access token and when it stops being worth sending.
#[derive(Clone)]
pub struct AccessToken {
    pub value: String,
    pub renew_at: Instant,
}

impl AccessToken {
    pub fn new(value: String, expires_in: u64) -> Self {
        let lifetime = Duration::from_secs(expires_in);
        AccessToken { value, renew_at: Instant::now() + lifetime.saturating_sub(RENEW_BEFORE.min(lifetime / 2)) }
    }

    pub fn is_fresh(&self) -> bool {
        Instant::now() < self.renew_at
    }
}

/// What the token endpoint answers.
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: Option<String>,
    pub expires_in: Option<u64>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}
