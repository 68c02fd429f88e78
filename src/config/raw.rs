//! The TOML file as written by operators. Strict: unknown keys are errors.

use crate::authn::webauthn_config::RawWebauthn;
use crate::policy::raw::{RawDefaultRule, RawRule};
use crate::store::config::RawStore;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: RawListen,
    pub upstream: RawUpstream,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub identity: RawIdentity,
    #[serde(default)]
    pub sessions: RawSessions,
    #[serde(default)]
    pub signin: RawSignin,
    #[serde(default)]
    pub totp: RawTotp,
    #[serde(default)]
    pub routes: RawRoutes,
    #[serde(default)]
    pub risk: Option<crate::risk::config::RawRisk>,
    #[serde(default)]
    pub webauthn: Option<RawWebauthn>,
    #[serde(default)]
    pub bearer: Option<crate::bearer::config::RawBearer>,
    #[serde(default)]
    pub metrics: Option<super::observe::RawMetrics>,
    #[serde(default)]
    pub access_log: super::observe::RawAccessLog,
    #[serde(default)]
    pub admin: super::admin::RawAdmin,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RawRule>,
    pub default: RawDefaultRule,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub address: String,
    pub public_url: String,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Serving threads (0 or absent: one per CPU).
    #[serde(default)]
    pub workers: Option<usize>,
    /// How long a client may take to send a request's headers, and a kept-alive connection
    /// may wait for its next request.
    #[serde(default = "d_header_timeout")]
    pub header_timeout: String,
    /// PEM files: the certificate chain and its private key, to terminate TLS here.
    #[serde(default)]
    pub tls_cert: Option<String>,
    #[serde(default)]
    pub tls_key: Option<String>,
    /// The limits below: see `config::limits`.
    #[serde(default = "super::limits::d_idle_timeout")]
    pub idle_timeout: String,
    #[serde(default = "super::limits::d_body_timeout")]
    pub body_timeout: String,
    #[serde(default = "super::limits::d_max_connections")]
    pub max_connections: usize,
    #[serde(default = "super::limits::d_max_header_bytes")]
    pub max_header_bytes: usize,
    #[serde(default = "super::limits::d_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    #[serde(default = "super::limits::d_h2_keepalive_interval")]
    pub h2_keepalive_interval: String,
    /// PEM CA bundle: client certificates that chain to it are workload identities.
    #[serde(default)]
    pub tls_client_ca: Option<String>,
    /// "optional" (default) or "required".
    #[serde(default)]
    pub tls_client_auth: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: String,
    #[serde(default = "d_connect_timeout")]
    pub connect_timeout: String,
    #[serde(default = "d_response_timeout")]
    pub response_timeout: String,
    #[serde(default = "d_pool_idle")]
    pub pool_idle_timeout: String,
    #[serde(default = "d_pool_max")]
    pub pool_max_idle_per_host: usize,
    #[serde(default = "d_upstream_max_connections")]
    pub max_connections: usize,
    #[serde(default = "d_pool_timeout")]
    pub pool_timeout: String,
    #[serde(default)]
    pub allow_underscores_in_headers: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    #[serde(default = "d_identity_source")]
    pub source: String,
    #[serde(default = "d_users_file")]
    pub users_file: String,
    #[serde(default)]
    pub header: Option<String>,
    /// `header` source: a header listing the user's groups (comma-separated), trusted proxies only.
    #[serde(default)]
    pub groups_header: Option<String>,
    // The `oidc` source (see `config::idp`).
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub client_secret_env: Option<String>,
    #[serde(default)]
    pub client_secret_file: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub redirect_path: Option<String>,
    #[serde(default)]
    pub user_claim: Option<String>,
    #[serde(default)]
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub acr_map: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub amr_map: Option<std::collections::BTreeMap<String, String>>,
}

impl Default for RawIdentity {
    fn default() -> Self {
        RawIdentity {
            source: d_identity_source(),
            users_file: d_users_file(),
            header: None,
            groups_header: None,
            issuer: None,
            client_id: None,
            client_secret: None,
            client_secret_env: None,
            client_secret_file: None,
            scopes: None,
            redirect_path: None,
            user_claim: None,
            groups_claim: None,
            acr_map: None,
            amr_map: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessions {
    #[serde(default = "d_idle")]
    pub idle_timeout: String,
    #[serde(default = "d_absolute")]
    pub absolute_timeout: String,
    #[serde(default)]
    pub secret_key: Option<String>,
}

impl Default for RawSessions {
    fn default() -> Self {
        RawSessions { idle_timeout: d_idle(), absolute_timeout: d_absolute(), secret_key: None }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignin {
    #[serde(default = "d_signin_user")]
    pub max_failures_per_user: u64,
    #[serde(default = "d_signin_ip")]
    pub max_failures_per_ip: u64,
    #[serde(default = "d_signin_window")]
    pub window: String,
}

impl Default for RawSignin {
    fn default() -> Self {
        RawSignin {
            max_failures_per_user: d_signin_user(),
            max_failures_per_ip: d_signin_ip(),
            window: d_signin_window(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTotp {
    #[serde(default = "d_issuer")]
    pub issuer: String,
    #[serde(default = "d_totp_failures")]
    pub max_failures: u64,
    #[serde(default = "d_totp_window")]
    pub failure_window: String,
}

impl Default for RawTotp {
    fn default() -> Self {
        RawTotp { issuer: d_issuer(), max_failures: d_totp_failures(), failure_window: d_totp_window() }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoutes {
    #[serde(default)]
    pub case_sensitive: bool,
    /// Methods beyond the standard ones that rules may name (e.g. WebDAV's `PROPFIND`).
    #[serde(default)]
    pub extension_methods: Vec<String>,
    /// The largest request body (bytes) kept across a challenge (`Confirming actions`);
    /// default 65536.
    #[serde(default)]
    pub keep_body_max: Option<u64>,
}

fn d_header_timeout() -> String {
    "30s".into()
}
fn d_connect_timeout() -> String {
    "5s".into()
}
fn d_response_timeout() -> String {
    "60s".into()
}
fn d_pool_idle() -> String {
    "90s".into()
}
fn d_pool_max() -> usize {
    64
}
fn d_upstream_max_connections() -> usize {
    1024
}
fn d_pool_timeout() -> String {
    "5s".into()
}
fn d_identity_source() -> String {
    "builtin".into()
}
fn d_users_file() -> String {
    "users.toml".into()
}
fn d_idle() -> String {
    "30m".into()
}
fn d_absolute() -> String {
    "12h".into()
}
fn d_signin_user() -> u64 {
    10
}
fn d_signin_ip() -> u64 {
    50
}
fn d_signin_window() -> String {
    "15m".into()
}
fn d_issuer() -> String {
    "stepgate".into()
}
fn d_totp_failures() -> u64 {
    5
}
fn d_totp_window() -> String {
    "5m".into()
}
