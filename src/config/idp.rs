//! `[identity] source = "oidc"`: the relying party's settings, validated (errors name the key).
//! Used by the relying party (the `oidc` module).

use crate::authn::assurance::AssuranceMap;
use crate::config::raw::RawIdentity;
use crate::parse::ConfigError;
use std::path::Path;

/// The validated relying-party settings.
#[derive(Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    /// None: a public client (PKCE only).
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    /// Under `/.stepgate/`; the IdP redirects the browser here with the code.
    pub redirect_path: String,
    pub user_claim: String,
    pub groups_claim: Option<String>,
    pub assurance: AssuranceMap,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("scopes", &self.scopes)
            .field("redirect_path", &self.redirect_path)
            .finish()
    }
}

pub const DEFAULT_REDIRECT_PATH: &str = "/.stepgate/oidc/callback";

pub fn parse(raw: &RawIdentity, base: &Path) -> Result<OidcConfig, ConfigError> {
    let issuer = raw
        .issuer
        .clone()
        .ok_or_else(|| ConfigError::new("identity.issuer", "required when identity.source = \"oidc\""))?;
    let url = http::Uri::try_from(issuer.as_str())
        .map_err(|_| ConfigError::new("identity.issuer", format!("'{issuer}' is not a URL")))?;
    let loopback = matches!(url.host(), Some("127.0.0.1" | "localhost" | "[::1]" | "::1"));
    match url.scheme_str() {
        Some("https") => {}
        Some("http") if loopback => {}
        _ => {
            return Err(ConfigError::new(
                "identity.issuer",
                format!("'{issuer}' must be an https URL (plain http only on loopback, for tests)"),
            ))
        }
    }
    let client_id = raw
        .client_id
        .clone()
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ConfigError::new("identity.client_id", "required when identity.source = \"oidc\""))?;
    let client_secret = client_secret(raw, base)?;
    let scopes = raw.scopes.clone().unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        return Err(ConfigError::new("identity.scopes", "must include \"openid\""));
    }
    if let Some(bad) = scopes.iter().find(|s| s.is_empty() || s.contains(char::is_whitespace)) {
        return Err(ConfigError::new("identity.scopes", format!("{bad:?} is not a scope")));
    }
    let redirect_path = raw.redirect_path.clone().unwrap_or_else(|| DEFAULT_REDIRECT_PATH.into());
    if !redirect_path.starts_with("/.stepgate/") || redirect_path.contains(['?', '#', ' ']) {
        return Err(ConfigError::new("identity.redirect_path", "must be a path under /.stepgate/ (no query)"));
    }
    let user_claim = raw.user_claim.clone().unwrap_or_else(|| "preferred_username".into());
    let assurance = AssuranceMap::parse("identity.", raw.acr_map.as_ref(), raw.amr_map.as_ref())?;
    Ok(OidcConfig {
        issuer: issuer.trim_end_matches('/').to_string(),
        client_id,
        client_secret,
        scopes,
        redirect_path,
        user_claim,
        groups_claim: raw.groups_claim.clone(),
        assurance,
    })
}

fn client_secret(raw: &RawIdentity, base: &Path) -> Result<Option<String>, ConfigError> {
    let given = [raw.client_secret.is_some(), raw.client_secret_env.is_some(), raw.client_secret_file.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(ConfigError::new(
            "identity.client_secret",
            "give one of client_secret, client_secret_env and client_secret_file",
        ));
    }
    if let Some(s) = &raw.client_secret {
        return Ok(Some(s.clone()));
    }
    if let Some(var) = &raw.client_secret_env {
        return match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
            _ => Err(ConfigError::new("identity.client_secret_env", format!("environment variable {var} is not set"))),
        };
    }
    if let Some(file) = &raw.client_secret_file {
        let path = base.join(file);
        return match std::fs::read_to_string(&path) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
            Ok(_) => Err(ConfigError::new("identity.client_secret_file", format!("{} is empty", path.display()))),
            Err(e) => Err(ConfigError::new("identity.client_secret_file", format!("{}: {e}", path.display()))),
        };
    }
    Ok(None)
}
