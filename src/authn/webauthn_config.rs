//! `[webauthn]`: the relying party that passkeys and security keys are bound to. The RP ID and
//! origin come from `listen.public_url`; they are checked here, at start-up and on reload.

use crate::parse::ConfigError;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebauthn {
    /// Default true. false: no passkeys (and an IP address is then fine as the public host).
    pub enabled: Option<bool>,
    /// Default: the public URL's host. May be a registrable suffix of it (`example.com` for
    /// `login.example.com`), never another domain.
    pub rp_id: Option<String>,
    /// The name authenticators show. Default "stepgate".
    pub rp_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnConfig {
    pub rp_id: String,
    pub rp_name: String,
    /// The public origin, the only one accepted in client data.
    pub origin: String,
}

/// None when WebAuthn is switched off. `public_host` and `public_origin` are those of
/// `listen.public_url` (lower case; the origin without a trailing slash).
pub fn parse(
    raw: Option<&RawWebauthn>,
    public_host: &str,
    public_origin: &str,
) -> Result<Option<WebauthnConfig>, ConfigError> {
    let raw = raw.cloned().unwrap_or_default();
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    if public_host.parse::<std::net::IpAddr>().is_ok() || public_host.starts_with('[') {
        return Err(ConfigError::new(
            "listen.public_url",
            format!(
                "WebAuthn binds passkeys to a domain name, and '{public_host}' is an IP address; use a name (e.g. http://localhost:8080 \
                 for a local trial) or set webauthn.enabled = false"
            ),
        ));
    }
    let rp_id = raw.rp_id.unwrap_or_else(|| public_host.to_string()).to_ascii_lowercase();
    let fits = public_host == rp_id || public_host.ends_with(&format!(".{rp_id}"));
    if !fits || rp_id.is_empty() || rp_id.contains([':', '/']) {
        return Err(ConfigError::new(
            "webauthn.rp_id",
            format!(
                "'{rp_id}' does not fit the public origin {public_origin}: it must be its host or a parent domain of it"
            ),
        ));
    }
    let origin = webauthn_rs::prelude::Url::parse(public_origin)
        .map_err(|e| ConfigError::new("listen.public_url", format!("not a URL WebAuthn accepts: {e}")))?;
    webauthn_rs::prelude::WebauthnBuilder::new(&rp_id, &origin).map_err(|e| {
        ConfigError::new("webauthn.rp_id", format!("'{rp_id}' is refused for origin {public_origin}: {e}"))
    })?;
    Ok(Some(WebauthnConfig {
        rp_id,
        rp_name: raw.rp_name.unwrap_or_else(|| "stepgate".into()),
        origin: public_origin.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parse` for a public URL given as (origin, host).
    fn at(raw: Option<&RawWebauthn>, (origin, host): (&str, &str)) -> Result<Option<WebauthnConfig>, ConfigError> {
        parse(raw, host, origin)
    }

    #[test]
    fn the_rp_id_comes_from_the_public_url_and_must_fit_it() {
        let p = ("https://login.example.com", "login.example.com");
        let c = at(None, p).unwrap().unwrap();
        assert_eq!((c.rp_id.as_str(), c.origin.as_str()), ("login.example.com", "https://login.example.com"));
        let parent = RawWebauthn { rp_id: Some("example.com".into()), ..RawWebauthn::default() };
        assert_eq!(at(Some(&parent), p).unwrap().unwrap().rp_id, "example.com");
        for bad in ["other.com", "ample.com", "login.example.com.evil", ""] {
            let raw = RawWebauthn { rp_id: Some(bad.into()), ..RawWebauthn::default() };
            assert_eq!(at(Some(&raw), p).unwrap_err().key, "webauthn.rp_id", "{bad}");
        }
    }

    #[test]
    fn an_ip_address_is_a_clear_error_unless_webauthn_is_off() {
        let p = ("http://127.0.0.1:8080", "127.0.0.1");
        let e = at(None, p).unwrap_err();
        assert_eq!(e.key, "listen.public_url");
        assert!(e.reason.contains("IP address") && e.reason.contains("localhost"), "{e}");
        let off = RawWebauthn { enabled: Some(false), ..RawWebauthn::default() };
        assert_eq!(at(Some(&off), p).unwrap(), None);
        assert!(at(None, ("http://localhost:8080", "localhost")).unwrap().is_some());
    }
}
