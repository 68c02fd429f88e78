//! Configuration: raw TOML (`raw`) validated into `Config`. Every error names the key and the reason.

pub mod admin;
pub mod idp;
pub mod limits;
pub mod observe;
pub mod raw;
pub mod tls;

use crate::authn::webauthn_config::WebauthnConfig;
pub use crate::parse::{parse_cidr, parse_duration, ConfigError, DURATION_UNITS};
use crate::policy::routes::RouteTable;
use crate::proxy::config::Upstream;
use crate::risk::config::RiskConfig;
use crate::store::config::StoreConfig;
use ipnet::IpNet;
use raw::RawConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Serving threads, each with its own runtime, listener (SO_REUSEPORT) and upstream pool.
    pub workers: usize,
    /// The longest a client may take over a request's headers (HTTP/1.1), counted from the end
    /// of the previous request on a kept-alive connection: slow or idle clients are let go.
    pub header_timeout: std::time::Duration,
    /// Idle, body, connection, header and HTTP/2 stream limits (`listen.*`). Read at start-up only.
    pub limits: limits::ListenLimits,
    /// None: plain HTTP (TLS terminated in front of the gateway, or none).
    pub tls: Option<tls::ListenTls>,
    /// Client certificates as workload identities (`listen.tls_client_ca`): asked for in the
    /// TLS handshake, and checked in a trusted proxy's `Client-Cert` header.
    pub client_ca: Option<crate::workload::client_ca::ClientCa>,
    pub public: PublicUrl,
    pub trusted_proxies: Vec<IpNet>,
    pub upstream: Upstream,
    pub store: StoreConfig,
    pub identity: Identity,
    pub sessions: Sessions,
    pub signin: Signin,
    pub totp: Totp,
    pub routes: RouteTable,
    /// `routes.keep_body_max`: the largest body kept across a challenge, in bytes.
    pub keep_body_max: usize,
    pub risk: RiskConfig,
    /// None: WebAuthn is off (`webauthn.enabled = false`).
    pub webauthn: Option<WebauthnConfig>,
    /// None: `Authorization: Bearer` is not read (passed to the app as it is).
    pub bearer: Option<crate::bearer::config::BearerConfig>,
    /// Where `GET /metrics` is served; None: no metrics listener. Read at start-up only.
    pub metrics: Option<SocketAddr>,
    pub access_log: observe::AccessLog,
    /// The admin socket (`[admin] socket`) that `stepgate user ...` talks to. Read at start-up only.
    pub admin_socket: std::path::PathBuf,
}

/// The URL end users see: decides cookie flags and the origin checked on forms.
#[derive(Debug, Clone)]
pub struct PublicUrl {
    pub https: bool,
    /// scheme://host[:port], no trailing slash.
    pub origin: String,
    pub host: String,
}

#[derive(Debug, Clone)]
pub enum Identity {
    /// Sign-in pages backed by a users file of argon2id hashes.
    Builtin { users_file: PathBuf },
    /// A header set by a trusted proxy (taken only from `trusted_proxies`), and optionally
    /// one listing the user's groups (`groups_header`, comma-separated; same trust).
    Header { header: http::HeaderName, groups_header: Option<http::HeaderName> },
    /// OpenID Connect: sign-in (and step-up) at the identity provider.
    Oidc(Box<idp::OidcConfig>),
}

#[derive(Debug, Clone)]
pub struct Sessions {
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    /// 32 bytes: seals TOTP secrets at rest and keys CSRF tokens.
    pub secret_key: [u8; 32],
}

#[derive(Debug, Clone)]
pub struct Signin {
    pub max_failures_per_user: u64,
    pub max_failures_per_ip: u64,
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct Totp {
    pub issuer: String,
    pub max_failures: u64,
    pub failure_window: Duration,
}

#[cfg(test)]
mod structure_tests {
    use super::*;

    const HEAD: &str = "[listen]\naddress = \"127.0.0.1:0\"\npublic_url = \"https://app.example\"\n\
                        [upstream]\nurl = \"http://127.0.0.1:3000\"\n";

    fn err(text: &str) -> ConfigError {
        parse(text, Path::new("/srv"), &Overrides::default()).unwrap_err()
    }

    #[test]
    fn a_missing_default_says_what_to_write() {
        let e = err(&format!("{HEAD}[sessions]\nsecret_key = \"{}\"\n", "ab".repeat(32)));
        assert_eq!(e.key, "[default]");
        assert!(e.reason.contains("[default]\nrequire = \"aal1\""), "{e}");
    }

    #[test]
    fn rule_in_single_brackets_says_to_write_double() {
        let e = err(&format!(
            "{HEAD}[rule]\nname = \"x\"\npath = \"/x\"\nrequire = \"aal1\"\n[default]\nrequire = \"aal1\"\n"
        ));
        assert_eq!(e.key, "rule");
        assert!(e.reason.contains("write [[rule]]") && e.reason.contains("one [[rule]] table"), "{e}");
    }

    #[test]
    fn a_missing_sessions_section_does_not_hide_the_real_mistake() {
        // [sessions] may be left out (the key from STEPGATE_SECRET_KEY): a typo elsewhere is
        // what gets reported.
        let e = err(&format!("{}[default]\nrequire = \"aal1\"\n", HEAD.replace("address =", "adress =")));
        assert!(e.reason.contains("adress"), "{e}");
    }

    #[test]
    fn rule_only_keys_on_default_say_why_and_what_instead() {
        for (require, key) in [("none", "hours"), ("none", "deny_at"), ("aal1", "days"), ("aal2", "step_up_at")] {
            let value = match key {
                "hours" => "\"08:00-18:00\"",
                "days" => "[\"mon\"]",
                _ => "50",
            };
            let e = err(&format!("{HEAD}[default]\nrequire = \"{require}\"\n{key} = {value}\n"));
            assert_eq!(e.key, format!("default.{key}"));
            assert!(e.reason.contains("[[rule]]") && e.reason.contains("remove it"), "{e}");
            if require == "none" {
                assert!(e.reason.contains("not scored") && e.reason.contains("aal1"), "{e}");
            }
        }
    }
}

/// Where to find the config and what the command line overrides.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub upstream: Option<String>,
}

/// Reads, parses and validates a config file. Relative paths in it resolve against its folder.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read: {e}")))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&text, &base, overrides)
}

pub fn parse(text: &str, base: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
    let mut raw: RawConfig =
        toml::from_str(text).map_err(|e| structure_error(text).unwrap_or_else(|| toml_error(text, &e)))?;
    if let Some(l) = &overrides.listen {
        raw.listen.address = l.clone();
    }
    if let Some(u) = &overrides.upstream {
        raw.upstream.url = u.clone();
    }
    validate(raw, base)
}

/// The sections a config must have, and what to write when one is missing.
/// (`[sessions]` is not among them: its secret key may come from `STEPGATE_SECRET_KEY`, and a
/// missing key is reported by `secret_key` in its own words.)
const REQUIRED_SECTIONS: [(&str, &str); 3] = [
    ("listen", "[listen]\naddress = \"0.0.0.0:8080\"\npublic_url = \"https://app.example.com\""),
    ("upstream", "[upstream]\nurl = \"http://127.0.0.1:3000\""),
    ("default", "[default]\nrequire = \"aal1\"  # what requests no [[rule]] matches need"),
];

/// Mistakes in the file's shape that serde reports in its own words ("missing field", "invalid
/// type: map, expected a sequence" at line 1): said instead as what to write.
fn structure_error(text: &str) -> Option<ConfigError> {
    let table: toml::Table = text.parse().ok()?;
    if table.get("rule").is_some_and(|r| r.is_table()) {
        return Some(ConfigError::new(
            "rule",
            "written as [rule]; write [[rule]] (two brackets): each rule is one [[rule]] table in a list, tried in order",
        ));
    }
    if table.get("default").is_some_and(|d| d.is_array()) {
        return Some(ConfigError::new(
            "default",
            "written as [[default]]; write [default] (one bracket): there is one default",
        ));
    }
    if let Some(e) = default_rule_only_key(&table) {
        return Some(e);
    }
    REQUIRED_SECTIONS.iter().find(|(name, _)| !table.contains_key(*name)).map(|(name, example)| {
        ConfigError::new(format!("[{name}]"), format!("missing: the config needs this section, e.g.\n{example}"))
    })
}

/// Keys a `[[rule]]` takes but `[default]` does not: serde would only say "unknown field".
const RULE_ONLY_KEYS: [&str; 6] = ["hours", "days", "time_zone", "outside_hours", "step_up_at", "deny_at"];

fn default_rule_only_key(table: &toml::Table) -> Option<ConfigError> {
    let default = table.get("default")?.as_table()?;
    let k = RULE_ONLY_KEYS.iter().find(|k| default.contains_key(**k))?;
    let public = default.get("require").and_then(|r| r.as_str()).map(str::trim) == Some("none");
    let why = if public {
        "never applies: [default] has require = \"none\", and requests on a require = \"none\" route are not scored. \
         Put the key on a [[rule]] with require = \"aal1\" (or higher), set action = \"deny\" to block, or remove it"
    } else {
        "[default] takes only require, max_age, allow and action. Put the key on a [[rule]], or remove it \
         (risk.step_up_at and risk.deny_at set the thresholds for every route)"
    };
    Some(ConfigError::new(format!("default.{k}"), why))
}

fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    // serde names the field in the message; the span gives the line it stands on.
    let key = match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let snippet = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("line {line} (`{snippet}`)")
        }
        None => "config".into(),
    };
    ConfigError::new(key, e.message().trim().to_string())
}

fn validate(raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
    let listen: SocketAddr = raw
        .listen
        .address
        .parse()
        .map_err(|_| ConfigError::new("listen.address", format!("'{}' is not an ip:port", raw.listen.address)))?;
    let public = parse_public_url(&raw.listen.public_url)?;
    let mut trusted_proxies = Vec::new();
    for (i, p) in raw.listen.trusted_proxies.iter().enumerate() {
        trusted_proxies.push(parse_cidr(&format!("listen.trusted_proxies[{i}]"), p)?);
    }
    let upstream = parse_upstream(&raw.upstream)?;
    let store = crate::store::config::parse(&raw.store, base)?;
    if raw.identity.groups_header.is_some() && raw.identity.source != "header" {
        return Err(ConfigError::new(
            "identity.groups_header",
            "only with identity.source = \"header\": otherwise groups come from the users file or the ID token",
        ));
    }
    let identity = match raw.identity.source.as_str() {
        "builtin" => Identity::Builtin { users_file: base.join(&raw.identity.users_file) },
        "header" => {
            let name = raw
                .identity
                .header
                .as_deref()
                .ok_or_else(|| ConfigError::new("identity.header", "required when identity.source = \"header\""))?;
            let header = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConfigError::new("identity.header", format!("'{name}' is not a header name")))?;
            if trusted_proxies.is_empty() {
                return Err(ConfigError::new(
                    "listen.trusted_proxies",
                    "identity.source = \"header\" needs at least one trusted proxy; otherwise nobody may assert an identity",
                ));
            }
            let groups_header = match raw.identity.groups_header.as_deref() {
                None => None,
                Some(g) => {
                    let name = http::HeaderName::from_bytes(g.as_bytes()).map_err(|_| {
                        ConfigError::new("identity.groups_header", format!("'{g}' is not a header name"))
                    })?;
                    if name == header {
                        return Err(ConfigError::new(
                            "identity.groups_header",
                            "must differ from identity.header (one names the user, the other the groups)",
                        ));
                    }
                    Some(name)
                }
            };
            Identity::Header { header, groups_header }
        }
        "oidc" => Identity::Oidc(Box::new(idp::parse(&raw.identity, base)?)),
        other => {
            return Err(ConfigError::new(
                "identity.source",
                format!("unknown source '{other}'; expected \"builtin\", \"header\" or \"oidc\""),
            ))
        }
    };
    let sessions = Sessions {
        idle_timeout: parse_duration("sessions.idle_timeout", &raw.sessions.idle_timeout)?,
        absolute_timeout: parse_duration("sessions.absolute_timeout", &raw.sessions.absolute_timeout)?,
        secret_key: secret_key(raw.sessions.secret_key.as_deref())?,
    };
    let signin = Signin {
        max_failures_per_user: positive("signin.max_failures_per_user", raw.signin.max_failures_per_user)?,
        max_failures_per_ip: positive("signin.max_failures_per_ip", raw.signin.max_failures_per_ip)?,
        window: parse_duration("signin.window", &raw.signin.window)?,
    };
    let totp = Totp {
        issuer: raw.totp.issuer.clone(),
        max_failures: positive("totp.max_failures", raw.totp.max_failures)?,
        failure_window: parse_duration("totp.failure_window", &raw.totp.failure_window)?,
    };
    let keep_body_max = match raw.routes.keep_body_max.unwrap_or(64 * 1024) {
        n @ 1..=1_048_576 => n as usize,
        _ => {
            return Err(ConfigError::new(
                "routes.keep_body_max",
                "must be 1 to 1048576 bytes (1 MiB): kept bodies are held in the store while the user confirms",
            ))
        }
    };
    let routes =
        RouteTable::build_with(&raw.rules, &raw.default, raw.routes.case_sensitive, &raw.routes.extension_methods)?;
    let risk = crate::risk::config::parse(raw.risk.as_ref(), base)?;
    let webauthn = crate::authn::webauthn_config::parse(raw.webauthn.as_ref(), &public.host, &public.origin)?;
    let bearer = crate::bearer::config::parse(raw.bearer.as_ref(), base)?;
    let workers = match raw.listen.workers {
        None | Some(0) => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        Some(n) if n <= 256 => n,
        Some(n) => return Err(ConfigError::new("listen.workers", format!("{n} is too many; at most 256"))),
    };
    let header_timeout = parse_duration("listen.header_timeout", &raw.listen.header_timeout)?;
    let limits = limits::parse(&raw.listen)?;
    let client_ca = crate::workload::client_ca::parse(
        raw.listen.tls_client_ca.as_deref(),
        raw.listen.tls_client_auth.as_deref(),
        base,
    )?;
    let tls = tls::parse(raw.listen.tls_cert.as_deref(), raw.listen.tls_key.as_deref(), client_ca.as_ref(), base)?;
    let metrics = observe::parse_metrics(raw.metrics.as_ref(), listen)?;
    let access_log = observe::parse_access_log(&raw.access_log);
    let admin_socket = admin::parse(&raw.admin, &store, base)?;
    Ok(Config {
        listen,
        workers,
        header_timeout,
        limits,
        tls,
        client_ca,
        public,
        trusted_proxies,
        upstream,
        store,
        identity,
        sessions,
        signin,
        totp,
        routes,
        keep_body_max,
        risk,
        webauthn,
        bearer,
        metrics,
        access_log,
        admin_socket,
    })
}

fn positive(key: &str, v: u64) -> Result<u64, ConfigError> {
    if v == 0 {
        return Err(ConfigError::new(key, "must be at least 1"));
    }
    Ok(v)
}

fn parse_public_url(s: &str) -> Result<PublicUrl, ConfigError> {
    let key = "listen.public_url";
    let uri: http::Uri = s.parse().map_err(|_| ConfigError::new(key, format!("'{s}' is not a URL")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(ConfigError::new(key, "must start with http:// or https://")),
    };
    let authority = uri.authority().ok_or_else(|| ConfigError::new(key, "has no host"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(ConfigError::new(key, "must be an origin only (no path or query): stepgate serves the whole host"));
    }
    let scheme = if https { "https" } else { "http" };
    Ok(PublicUrl {
        https,
        origin: format!("{scheme}://{}", authority.as_str().to_ascii_lowercase()),
        host: authority.host().to_ascii_lowercase(),
    })
}

fn parse_upstream(raw: &raw::RawUpstream) -> Result<Upstream, ConfigError> {
    let key = "upstream.url";
    let uri: http::Uri = raw.url.parse().map_err(|_| ConfigError::new(key, format!("'{}' is not a URL", raw.url)))?;
    let scheme = match uri.scheme_str() {
        Some("http") => http::uri::Scheme::HTTP,
        Some(other) => {
            return Err(ConfigError::new(key, format!("scheme '{other}' is not supported; use http:// to the app")))
        }
        None => return Err(ConfigError::new(key, "must start with http://")),
    };
    let authority = uri.authority().cloned().ok_or_else(|| ConfigError::new(key, "has no host"))?;
    if !matches!(uri.path(), "" | "/") {
        return Err(ConfigError::new(key, "must not have a path: request paths are forwarded as they are"));
    }
    Ok(Upstream {
        authority,
        scheme,
        connect_timeout: parse_duration("upstream.connect_timeout", &raw.connect_timeout)?,
        response_timeout: parse_duration("upstream.response_timeout", &raw.response_timeout)?,
        pool_idle_timeout: parse_duration("upstream.pool_idle_timeout", &raw.pool_idle_timeout)?,
        pool_max_idle_per_host: raw.pool_max_idle_per_host,
        max_connections: match raw.max_connections {
            0 => return Err(ConfigError::new("upstream.max_connections", "must be at least 1")),
            n => n,
        },
        pool_timeout: parse_duration("upstream.pool_timeout", &raw.pool_timeout)?,
        allow_underscores_in_headers: raw.allow_underscores_in_headers,
    })
}

/// The key in the repository's example config.toml: accepted, with a loud warning.
const EXAMPLE_KEY: &str = "7b1d0f2c9a8e4b6d5c3f1e0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c";

/// The secret key: `STEPGATE_SECRET_KEY` wins over the file; 64 hex characters (32 bytes).
fn secret_key(from_file: Option<&str>) -> Result<[u8; 32], ConfigError> {
    let (key, value) = match std::env::var("STEPGATE_SECRET_KEY") {
        Ok(v) if !v.is_empty() => ("STEPGATE_SECRET_KEY", v),
        _ => match from_file {
            Some(v) => ("sessions.secret_key", v.to_string()),
            None => {
                return Err(ConfigError::new(
                    "sessions.secret_key",
                    "missing: set it (64 hex characters, e.g. from `openssl rand -hex 32`) or the STEPGATE_SECRET_KEY variable",
                ))
            }
        },
    };
    if value.trim() == EXAMPLE_KEY {
        tracing::warn!("{key} is the example key published in config.toml: anyone can forge CSRF tokens and read sealed secrets; generate your own with `openssl rand -hex 32`");
    }
    let bytes = hex::decode(value.trim()).map_err(|_| ConfigError::new(key, "must be 64 hex characters"))?;
    bytes.try_into().map_err(|_| ConfigError::new(key, "must be 64 hex characters (32 bytes)"))
}

impl Config {
    pub fn identity_is_builtin(&self) -> bool {
        matches!(self.identity, Identity::Builtin { .. })
    }
}
