//! OpenID Connect relying party (`identity.source = "oidc"`): discovery with the provider's
//! keys and the HTTP client to it, and what a verified ID token proves (`token`). The
//! authorization-code flow itself is a gateway page: `web::oidc_flow`.
//!
//! Fail closed: until discovery has succeeded, sign-in and step-up at the IdP answer 503
//! (retried in the background); routes that need nobody keep working.

pub mod http_client;
pub mod logout;
pub mod token;

use crate::config::idp::OidcConfig;
use openidconnect::core::CoreProviderMetadata;
use openidconnect::IssuerUrl;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The least time between two discoveries (and so JWKS fetches): a token naming an unknown
/// key refetches at most this often.
pub const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(2);
/// How often the background task retries a discovery that failed.
const RETRY_EVERY: Duration = Duration::from_secs(5);

/// What discovery found: the provider's metadata with its JWKS, and the logout endpoint.
pub struct Discovered {
    pub metadata: CoreProviderMetadata,
    pub end_session_endpoint: Option<String>,
    /// The JWKS as a JSON document (logout tokens are checked with it: `logout`).
    pub jwks_json: String,
}

/// One relying party, built per config (a reload discovers afresh).
pub struct Oidc {
    pub cfg: OidcConfig,
    http: http_client::HttpClient,
    discovered: RwLock<Option<Arc<Discovered>>>,
    /// When discovery was last tried; held while one runs, so callers wait for it.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider is unreachable or its discovery document is broken: {0}")]
    Unavailable(String),
}

impl Oidc {
    pub fn new(cfg: OidcConfig) -> Arc<Oidc> {
        let oidc = Arc::new(Oidc {
            cfg,
            http: http_client::HttpClient::new(),
            discovered: RwLock::new(None),
            last_attempt: tokio::sync::Mutex::new(None),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&oidc);
            handle.spawn(async move {
                loop {
                    let Some(oidc) = weak.upgrade() else { return };
                    if oidc.discover(Why::Background).await.is_ok() {
                        return;
                    }
                    drop(oidc);
                    tokio::time::sleep(RETRY_EVERY).await;
                }
            });
        }
        oidc
    }

    pub fn http(&self) -> &http_client::HttpClient {
        &self.http
    }

    /// What discovery found, discovering now if it has not succeeded yet (at most every
    /// `REFRESH_AT_MOST_EVERY`).
    pub async fn discovered(&self) -> Result<Arc<Discovered>, OidcError> {
        if let Some(d) = self.current() {
            return Ok(d);
        }
        self.discover(Why::Needed).await
    }

    /// What discovery found so far, without discovering.
    pub fn current(&self) -> Option<Arc<Discovered>> {
        match self.discovered.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Fetches the discovery document and the JWKS again, e.g. for a token signed by a key
    /// we do not know (rotation). Rate-limited; returns whether new keys were fetched.
    pub async fn refresh(&self) -> bool {
        self.discover(Why::Refresh).await.is_ok()
    }

    async fn discover(&self, why: Why) -> Result<Arc<Discovered>, OidcError> {
        let mut last = self.last_attempt.lock().await;
        if why == Why::Needed {
            if let Some(d) = self.current() {
                return Ok(d); // found by the discovery we waited for
            }
        }
        if why != Why::Background && last.is_some_and(|t| t.elapsed() < REFRESH_AT_MOST_EVERY) {
            return Err(OidcError::Unavailable("tried moments ago".into()));
        }
        *last = Some(Instant::now());
        let issuer = IssuerUrl::new(self.cfg.issuer.clone()).map_err(|e| OidcError::Unavailable(e.to_string()))?;
        let result = CoreProviderMetadata::discover_async(issuer, &self.http).await;
        let metadata = match result {
            Ok(m) => m,
            Err(e) => {
                let cause = error_chain(&e);
                tracing::warn!(issuer = %self.cfg.issuer, error = %cause, "OIDC discovery failed; sign-in answers 503 until it succeeds");
                return Err(OidcError::Unavailable(cause));
            }
        };
        let end_session_endpoint = self.end_session_endpoint().await;
        let jwks_json = serde_json::to_string(metadata.jwks()).unwrap_or_default();
        let d = Arc::new(Discovered { metadata, end_session_endpoint, jwks_json });
        *self.discovered.write().unwrap_or_else(|p| p.into_inner()) = Some(d.clone());
        tracing::info!(issuer = %self.cfg.issuer, "OIDC discovery succeeded");
        Ok(d)
    }

    /// `end_session_endpoint` of the discovery document (RP-initiated logout), if offered.
    async fn end_session_endpoint(&self) -> Option<String> {
        let url = format!("{}/.well-known/openid-configuration", self.cfg.issuer);
        let req = http::Request::get(url).body(Vec::new()).ok()?;
        let resp = self.http.send(req).await.ok()?;
        let doc: serde_json::Value = serde_json::from_slice(resp.body()).ok()?;
        doc.get("end_session_endpoint")?.as_str().map(str::to_string)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Background,
    Needed,
    Refresh,
}

/// An error with its sources, for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
