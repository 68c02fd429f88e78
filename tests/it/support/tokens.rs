//! Keys and access tokens made for the tests: an RSA and an EC (P-256) key made by the
//! `openssl` CLI, their JWKS, tokens signed with them, and a tiny HTTP server for the JWKS
//! that counts its fetches.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "https://api.stepgate.test";

pub struct Key {
    pub kid: String,
    pub alg: Algorithm,
    pub private_pem: Vec<u8>,
    pub public_pem: Vec<u8>,
    pub jwk: Value,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl is needed to make test keys (install the openssl package): {e}"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A new key of `alg` (RS256 or ES256) with this `kid`, written under `dir`.
pub fn key(dir: &Path, kid: &str, alg: Algorithm) -> Key {
    let private = dir.join(format!("{kid}.key"));
    let p = private.to_str().unwrap();
    match alg {
        Algorithm::RS256 => openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", p]),
        Algorithm::ES256 => openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p]),
        other => panic!("no test keys for {other:?}"),
    };
    let public_pem = openssl(&["pkey", "-in", p, "-pubout"]);
    let der = openssl(&["pkey", "-in", p, "-pubout", "-outform", "DER"]);
    use x509_parser::prelude::FromDer;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&der).expect("a public key");
    let jwk = match spki.parsed().expect("a known key") {
        x509_parser::public_key::PublicKey::RSA(rsa) => json!({
            "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": B64.encode(trim(rsa.modulus)), "e": B64.encode(trim(rsa.exponent)),
        }),
        x509_parser::public_key::PublicKey::EC(point) => {
            let d = point.data();
            assert_eq!(d[0], 4, "an uncompressed point");
            json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                   "x": B64.encode(&d[1..33]), "y": B64.encode(&d[33..65])})
        }
        _ => panic!("unexpected key type"),
    };
    Key { kid: kid.into(), alg, private_pem: std::fs::read(&private).unwrap(), public_pem, jwk }
}

fn trim(b: &[u8]) -> &[u8] {
    let zeros = b.iter().take_while(|&&x| x == 0).count();
    &b[zeros..]
}

pub fn jwks(keys: &[&Key]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

/// Claims of a good token at `now`: issued now, for an hour, acr `aal1`.
pub fn claims(now: u64) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "svc-user-1", "client_id": "billing-cli",
        "iat": now, "exp": now + 3600, "auth_time": now, "acr": "aal1", "scope": "orders:read",
        "jti": "t1",
    })
}

pub fn sign(key: &Key, claims: &Value) -> String {
    sign_with(key, claims, Some("at+jwt"))
}

pub fn sign_with(key: &Key, claims: &Value, typ: Option<&str>) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    header.typ = typ.map(str::to_string);
    let enc = match key.alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&key.private_pem),
        _ => EncodingKey::from_ec_pem(&key.private_pem),
    }
    .expect("a signing key");
    jsonwebtoken::encode(&header, claims, &enc).expect("a token")
}

/// An unsigned token (`alg: none`), made by hand: no library makes one.
pub fn unsigned(claims: &Value) -> String {
    let h = B64.encode(json!({"alg": "none", "typ": "at+jwt"}).to_string());
    format!("{h}.{}.", B64.encode(claims.to_string()))
}

/// HS256 with the RSA public key's PEM as the "secret" (the classic key-confusion attack).
pub fn hs256_with_public_key(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&key.public_pem)).unwrap()
}

/// The token with its payload swapped for `claims` (the signature left as it was).
pub fn tampered(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], B64.encode(claims.to_string()), parts[2])
}

/// Serves a JWKS over plain HTTP on 127.0.0.1, counting fetches; the document can be swapped.
#[derive(Clone)]
pub struct JwksServer {
    pub url: String,
    pub doc: Arc<Mutex<String>>,
    pub hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(doc: String) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let server = JwksServer { url, doc: Arc::new(Mutex::new(doc)), hits: Arc::new(AtomicUsize::new(0)) };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = 0;
                    while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf[got..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got += n,
                        }
                    }
                    s.hits.fetch_add(1, Ordering::SeqCst);
                    let body = s.doc.lock().unwrap().clone();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        server
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn set(&self, doc: String) {
        *self.doc.lock().unwrap() = doc;
    }
}

/// The `[bearer]` section for the test issuer, with an acr table of three values.
pub fn bearer_section(jwks_url: &str) -> String {
    format!(
        "[bearer]\nissuer = \"{ISSUER}\"\naudiences = [\"{AUDIENCE}\"]\njwks_url = \"{jwks_url}\"\n\
         algorithms = [\"RS256\", \"ES256\"]\nclock_skew = \"30s\"\n\
         acr_map = {{ \"urn:test:loa:1\" = \"aal1\", \"urn:test:loa:2\" = \"aal2\", \"urn:test:loa:3\" = \"aal3\" }}\n"
    )
}
