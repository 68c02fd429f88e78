use super::config::{parse, RawBearer};
use super::*;
use std::path::Path;

fn raw(extra: &str) -> Result<Option<config::BearerConfig>, crate::parse::ConfigError> {
    let text = format!(
        "issuer = \"https://issuer.test\"\naudiences = [\"api\"]\njwks_url = \"https://issuer.test/jwks\"\n{extra}"
    );
    let r: RawBearer = toml::from_str(&text).expect("toml");
    parse(Some(&r), Path::new("/srv"))
}

#[test]
fn config_refuses_none_hmac_and_plain_http_naming_the_key() {
    let e = raw("algorithms = [\"none\"]").unwrap_err();
    assert_eq!(e.key, "bearer.algorithms[0]");
    let e = raw("algorithms = [\"RS256\", \"HS256\"]").unwrap_err();
    assert_eq!(e.key, "bearer.algorithms[1]");
    assert!(e.reason.contains("secret"), "{e}");
    let text = "issuer = \"i\"\naudiences = [\"api\"]\njwks_url = \"http://issuer.example/jwks\"\n";
    let e = parse(Some(&toml::from_str(text).unwrap()), Path::new("/")).unwrap_err();
    assert_eq!(e.key, "bearer.jwks_url");
    let text = "issuer = \"i\"\naudiences = []\njwks_url = \"https://issuer.example/jwks\"\n";
    assert_eq!(parse(Some(&toml::from_str(text).unwrap()), Path::new("/")).unwrap_err().key, "bearer.audiences");
    let text = "issuer = \"i\"\naudiences = [\"a\"]\n";
    assert_eq!(parse(Some(&toml::from_str(text).unwrap()), Path::new("/")).unwrap_err().key, "bearer.jwks_url");
    assert!(raw("").unwrap().is_some());
}

fn claims(v: serde_json::Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn claims_become_subject_level_scopes_and_workload() {
    let cfg = raw("").unwrap().unwrap();
    let now = UnixTime(1_000_000);
    let t = read_claims(
        &cfg,
        claims(serde_json::json!({"sub": "u1", "client_id": "cli", "exp": 1_000_100, "iat": 999_990,
            "auth_time": 999_000, "acr": "phr", "scope": "a b"})),
        now,
    )
    .unwrap();
    assert_eq!(t.subject, "u1");
    assert_eq!(t.proof, Proof { level: Level::Aal3, method: AuthMethod::Bearer, auth_time: UnixTime(999_000) });
    assert_eq!(t.attrs.scopes, vec!["a", "b"]);
    assert_eq!(t.attrs.workload.as_deref(), Some("cli"));
    assert_eq!(t.attrs.credential_issued_at, Some(UnixTime(999_990)));
    // Client credentials: no sub, the client is the subject; unknown acr is aal1.
    let t = read_claims(&cfg, claims(serde_json::json!({"client_id": "svc", "exp": 1_000_100})), now).unwrap();
    assert_eq!((t.subject.as_str(), t.proof.level), ("svc", Level::Aal1));
    // Times, with the 60 s default skew.
    let exp = |e: u64| read_claims(&cfg, claims(serde_json::json!({"sub": "u", "exp": e})), now);
    assert!(exp(999_950).is_ok());
    assert_eq!(exp(999_900), Err(TokenError::Expired));
    let nbf = read_claims(&cfg, claims(serde_json::json!({"sub": "u", "exp": 1_000_500, "nbf": 1_000_200})), now);
    assert_eq!(nbf, Err(TokenError::NotYetValid));
    assert_eq!(read_claims(&cfg, claims(serde_json::json!({"sub": "u"})), now), Err(TokenError::Claims));
    assert_eq!(read_claims(&cfg, claims(serde_json::json!({"exp": 1_000_100})), now), Err(TokenError::Claims));
}

#[test]
fn the_authorization_header_is_read_strictly() {
    let h = |vals: &[&str]| {
        let mut m = http::HeaderMap::new();
        for v in vals {
            m.append(http::header::AUTHORIZATION, v.parse().unwrap());
        }
        from_headers(&m)
    };
    assert_eq!(h(&["Bearer abc"]).as_deref(), Some("abc"));
    assert_eq!(h(&["bearer abc"]).as_deref(), Some("abc"));
    assert_eq!(h(&["Basic Zm9vOmJhcg=="]), None);
    assert_eq!(h(&[]), None);
    assert_eq!(h(&["Bearer a", "Bearer b"]).as_deref(), Some(""), "two tokens are no token");
}

#[test]
fn acr_values_follow_the_table_lowest_first() {
    let cfg = raw("acr_map = { \"1\" = \"aal1\", \"2\" = \"aal2\", \"3\" = \"aal3\" }").unwrap().unwrap();
    assert_eq!(acr_values(&cfg, Level::Aal2), "2 3");
}
