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
fn claims_become_subject_level_scopes_and_client() {
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
    assert_eq!(t.attrs.client.as_deref(), Some("cli"));
    assert_eq!(t.attrs.workload, None, "a token's client is never a certificate-proved workload");
    assert_eq!(t.attrs.credential_issued_at, Some(UnixTime(999_990)));
    // No sub: refused (RFC 9068 §2.2), never the client as the user: a client registered as
    // "alice" must not become the user alice.
    let t = read_claims(&cfg, claims(serde_json::json!({"client_id": "alice", "exp": 1_000_100})), now);
    assert_eq!(t, Err(TokenError::Claims));
    // Client credentials name the client as sub (RFC 9068); an unknown acr is aal1.
    let t = read_claims(&cfg, claims(serde_json::json!({"sub": "svc", "client_id": "svc", "exp": 1_000_100})), now);
    assert_eq!(t.map(|t| (t.subject, t.proof.level)), Ok(("svc".to_string(), Level::Aal1)));
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

#[tokio::test]
async fn explain_dry_runs_token_claims_and_workloads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwks.json"), r#"{"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB"}]}"#)
        .unwrap();
    let text = format!(
        "[listen]\naddress = \"127.0.0.1:0\"\npublic_url = \"https://app.example\"\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n\
         [sessions]\nsecret_key = \"{}\"\n[bearer]\nissuer = \"i\"\naudiences = [\"a\"]\njwks_file = \"jwks.json\"\n\
         acr_map = {{ \"1\" = \"aal1\", \"2\" = \"aal2\" }}\n\
         [[rule]]\nname = \"wire\"\npath = \"/wire\"\nrequire = \"aal2\"\nmax_age = \"5m\"\n\
         [[rule]]\nname = \"pay\"\npath = \"/pay\"\nrequire = \"aal1\"\nscopes = [\"pay\"]\n\
         [[rule]]\nname = \"svc\"\npath = \"/svc\"\nrequire = \"aal1\"\nworkload = \"spiffe://e.org/prod/*\"\n\
         [default]\nrequire = \"aal1\"\n",
        "ab".repeat(32)
    );
    let cfg = crate::config::parse(&text, dir.path(), &Default::default()).unwrap();
    let at = UnixTime(1_795_435_200);
    let ask = |url: &str, claims: Option<serde_json::Value>, workload: Option<&str>| crate::explain::Question {
        method: http::Method::GET,
        url: url.into(),
        user: None,
        ip: "127.0.0.1".parse().unwrap(),
        at,
        device: crate::risk::device::DeviceStatus::Known,
        proofs: Vec::new(),
        groups: Vec::new(),
        bearer_claims: claims.map(|c| c.as_object().cloned().unwrap()),
        workload: workload.map(str::to_string),
    };
    let claims = serde_json::json!({"sub": "ann", "acr": "1", "exp": at.0 + 60, "scope": "read"});
    let out =
        crate::explain::explain(&cfg, &ask("/wire", Some(claims.clone()), None), &Default::default()).await.unwrap();
    assert!(out.contains("token     subject ann"), "{out}");
    assert!(out.contains("401 insufficient_user_authentication (RFC 9470: acr_values=\"2\", max_age=300)"), "{out}");
    let out =
        crate::explain::explain(&cfg, &ask("/pay", Some(claims.clone()), None), &Default::default()).await.unwrap();
    assert!(out.contains("deny (403): insufficient_scope"), "{out}");
    let expired = serde_json::json!({"sub": "ann", "exp": at.0 - 600});
    let out = crate::explain::explain(&cfg, &ask("/pay", Some(expired), None), &Default::default()).await.unwrap();
    assert!(out.contains("401: invalid_token"), "{out}");
    let out = crate::explain::explain(&cfg, &ask("/svc", None, Some("spiffe://e.org/prod/api")), &Default::default())
        .await
        .unwrap();
    assert!(out.contains("decision  forward"), "{out}");
    let out = crate::explain::explain(&cfg, &ask("/svc", None, Some("spiffe://e.org/dev/api")), &Default::default())
        .await
        .unwrap();
    assert!(out.contains("workload_not_allowed"), "{out}");
    // A token naming a SPIFFE ID as its client is not that workload.
    let posing = serde_json::json!({"sub": "svc", "client_id": "spiffe://e.org/prod/api", "exp": at.0 + 60});
    let out = crate::explain::explain(&cfg, &ask("/svc", Some(posing), None), &Default::default()).await.unwrap();
    assert!(out.contains("workload_not_allowed"), "{out}");
}
