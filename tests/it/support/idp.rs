//! A real OpenID provider (tests/idp/provider.mjs, npm's oidc-provider) on a free port, and
//! the browser's round trip through it, driven over plain HTTP.

use super::client::{Client, Resp};
use super::{Harness, Options, ORIGIN};
use http::StatusCode;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const CLIENT_ID: &str = "stepgate";
pub const CLIENT_SECRET: &str = "stepgate-test-secret";
pub const CALLBACK: &str = "/.stepgate/oidc/callback";

pub fn available() -> bool {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp/node_modules/oidc-provider").exists()
}

pub struct Idp {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("an address").port()
}

impl Idp {
    /// Starts the provider; `key_file` holds its signing keys (made if missing).
    pub fn start_on(port: u16, key_file: &Path, extra_env: &[(&str, &str)]) -> Idp {
        Idp::run("provider.mjs", port, key_file, extra_env)
    }

    /// tests/idp/fake-idp.mjs: a provider that signs whatever `set_mode` asks for.
    pub fn start_fake() -> Idp {
        Idp::run("fake-idp.mjs", free_port(), Path::new("/nonexistent"), &[])
    }

    /// The fake provider's next ID token (see fake-idp.mjs).
    pub async fn set_mode(&self, mode: &str) {
        let mut c = self.browser();
        let r = c.request(http::Method::POST, &format!("/__mode?m={mode}"), &[], super::client::empty()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    fn run(script: &str, port: u16, key_file: &Path, extra_env: &[(&str, &str)]) -> Idp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp").join(script);
        let mut cmd = Command::new("node");
        cmd.arg(script)
            .env("PORT", port.to_string())
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URI", format!("{ORIGIN}{CALLBACK}"))
            .env("KEY_FILE", key_file)
            .env("POST_LOGOUT_URI", format!("{ORIGIN}{}", stepgate::oidc::logout::SIGNED_OUT_PATH))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("node runs tests/idp/provider.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("the provider prints its address");
        assert!(line.starts_with("listening"), "the provider did not start: {line}");
        Idp { child, addr: format!("127.0.0.1:{port}").parse().expect("an address") }
    }

    pub fn start(dir: &Path) -> Idp {
        Idp::start_on(free_port(), &dir.join("idp-keys.json"), &[])
    }

    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn identity_section(&self) -> String {
        format!(
            "[identity]\nsource = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nscopes = [\"openid\", \"profile\", \"groups\"]\ngroups_claim = \"groups\"\n",
            self.issuer()
        )
    }

    /// A browser's client for the provider (its own cookies).
    pub fn browser(&self) -> Client {
        Client::new(self.addr)
    }

    /// Makes the provider ignore max_age and acr_values (or obey them again).
    pub async fn set_lax(&self, on: bool) {
        let mut c = self.browser();
        let r = c
            .request(http::Method::POST, &format!("/__test/lax?on={}", u8::from(on)), &[], super::client::empty())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
}

/// A gateway signing in at `idp`, its clock on real time (the IdP's tokens carry real times).
pub async fn gateway(idp: &Idp, rules: &str) -> Harness {
    let opts = Options { identity: Some(idp.identity_section()), rules: rules.to_string(), ..Options::default() };
    let h = Harness::with(opts).await;
    h.clock.set(stepgate::clock::UnixTime(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs(),
    ));
    h
}

/// Path and query of an absolute URL.
pub fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/".to_string(), |i| rest[i..].to_string())
}

/// One visit to the IdP's login: follows its redirects to the interaction form, returns the
/// form page (with the request's acr_values/max_age shown) or, when the IdP needs no login,
/// the redirect back to the gateway.
pub enum AtIdp {
    Form { uid_path: String, page: Resp },
    Back(String),
}

pub async fn visit(idp_browser: &mut Client, authorize_url: &str) -> AtIdp {
    let mut next = path_of(authorize_url);
    for _ in 0..6 {
        let r = idp_browser.browse(&next).await;
        if r.status == StatusCode::OK && next.starts_with("/interaction/") {
            return AtIdp::Form { uid_path: next, page: r };
        }
        assert!(r.status.is_redirection(), "the IdP answered {} at {next}: {}", r.status, r.body);
        let loc = r.location().to_string();
        if loc.starts_with(ORIGIN) {
            return AtIdp::Back(path_of(&loc));
        }
        next = path_of(&loc);
    }
    panic!("too many redirects at the IdP");
}

/// Submits the IdP's form (password, and the one-time code when `otp`), returns the gateway
/// callback path the IdP sends the browser to.
pub async fn log_in(idp_browser: &mut Client, uid_path: &str, user: &str, password: &str, otp: bool) -> String {
    let code = if otp { "123456" } else { "" };
    let r = idp_browser.post_form(uid_path, &[("login", user), ("password", password), ("otp", code)]).await;
    assert!(r.status.is_redirection(), "IdP login: {} {}", r.status, r.body);
    match visit(idp_browser, r.location()).await {
        AtIdp::Back(p) => p,
        AtIdp::Form { page, .. } => panic!("the IdP asked again: {}", page.body),
    }
}

/// The JSON the IdP's form shows of the authorization request (acr_values, max_age, prompt).
pub fn shown_params(page: &Resp) -> serde_json::Value {
    let start = page.body.find("<pre id=\"params\">").expect("params shown") + "<pre id=\"params\">".len();
    let end = page.body[start..].find("</pre>").expect("end of params") + start;
    serde_json::from_str(&page.body[start..end].replace("&quot;", "\"")).expect("params JSON")
}

/// Signs `user` in through the gateway's login: returns the gateway's final redirect.
pub async fn sign_in(gw: &mut Client, idp_browser: &mut Client, return_to: &str, user: &str, password: &str) -> Resp {
    let start = gw.browse(&format!("/.stepgate/login?return={}", super::client::enc(return_to))).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "login starts at the IdP: {}", start.body);
    let AtIdp::Form { uid_path, .. } = visit(idp_browser, start.location()).await else {
        panic!("the IdP asked no login")
    };
    let back = log_in(idp_browser, &uid_path, user, password, false).await;
    gw.browse(&back).await
}

impl Idp {
    /// A logout token signed by the provider for `sub` (and `sid`), not sent (see provider.mjs).
    pub async fn logout_token(&self, sub: &str, sid: Option<&str>) -> String {
        let mut c = self.browser();
        let mut path = format!("/__test/logout_token?sub={}", super::client::enc(sub));
        if let Some(sid) = sid {
            path.push_str(&format!("&sid={}", super::client::enc(sid)));
        }
        let r = c.request(http::Method::POST, &path, &[], super::client::empty()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body.trim().to_string()
    }
}

/// The user logs out at the IdP itself (its end-session page, "Yes, sign me out"): the IdP
/// ends its session and sends the back-channel logout to the clients. `at` is the path (and
/// query) of the end-session request. Returns where the IdP sends the browser afterwards.
pub async fn log_out_at_idp(idp_browser: &mut Client, at: &str) -> String {
    let page = idp_browser.browse(at).await;
    assert_eq!(page.status, StatusCode::OK, "the IdP's logout page: {}", page.body);
    let xsrf =
        super::html::input_value(&page.body, "xsrf").unwrap_or_else(|| panic!("the IdP's logout form: {}", page.body));
    let marker = "method=\"post\" action=\"";
    let start = page.body.find(marker).unwrap_or_else(|| panic!("the IdP's logout form: {}", page.body)) + marker.len();
    let action = page.body[start..].split('"').next().unwrap_or_default().to_string();
    let r = idp_browser.post_form(&path_of(&action), &[("xsrf", &xsrf), ("logout", "yes")]).await;
    assert!(r.status.is_redirection(), "the IdP's logout: {} {}", r.status, r.body);
    r.location().to_string()
}
