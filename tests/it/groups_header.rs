//! `identity.groups_header` with `identity.source = "header"`: the groups a trusted proxy
//! asserts decide group rules; from anyone else the header is stripped and believed by no one.

use crate::support::{config_text, Harness, Options};
use http::StatusCode;

const RULES: &str = r#"
[[rule]]
name = "public"
path = "/echo/public/**"
require = "none"

[[rule]]
name = "finance"
path = "/echo/finance/**"
require = "aal1"
groups = ["finance"]

[default]
require = "aal1"
"#;

fn opts(trusted: &str) -> Options {
    Options {
        listen_extra: format!("trusted_proxies = [\"{trusted}\"]"),
        identity: Some(
            "[identity]\nsource = \"header\"\nheader = \"X-Remote-User\"\ngroups_header = \"X-Remote-Groups\"\n".into(),
        ),
        rules: RULES.into(),
        ..Options::default()
    }
}

#[tokio::test]
async fn groups_from_a_trusted_proxy_allow_and_deny() {
    let h = Harness::with(opts("127.0.0.1/32")).await;
    let mut c = h.client();
    let r = c.get_with("/echo/finance/x", &[("X-Remote-User", "bob"), ("X-Remote-Groups", "ops, finance")]).await;
    assert_eq!(r.status, StatusCode::OK, "bob is in finance: {}", r.body);
    let echoed = r.echoed_headers();
    assert!(!echoed.contains_key("x-remote-groups"), "the groups header itself is not forwarded: {echoed:?}");
    assert_eq!(echoed["x-stepgate-user"], "bob");

    let r = c.get_with("/echo/finance/x", &[("X-Remote-User", "bob"), ("X-Remote-Groups", "ops")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "ops is not finance: {}", r.body);
    let r = c.get_with("/echo/finance/x", &[("X-Remote-User", "bob")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no groups header, no groups: {}", r.body);
    // Two fields (a proxy that appends to the client's instead of replacing it): no groups.
    let r = c
        .get_with(
            "/echo/finance/x",
            &[("X-Remote-User", "bob"), ("X-Remote-Groups", "ops"), ("X-Remote-Groups", "finance")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a groups header sent twice counts as none: {}", r.body);
    // Groups without a user prove nothing.
    let r = c.get_with("/echo/finance/x", &[("X-Remote-Groups", "finance")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(c.get_with("/echo", &[("X-Remote-User", "bob")]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn groups_from_an_untrusted_peer_are_stripped_and_ignored() {
    let h = Harness::with(opts("10.9.9.9/32")).await;
    let mut c = h.client();
    let spoof = [("X-Remote-User", "bob"), ("X-Remote-Groups", "finance")];
    let r = c.get_with("/echo/finance/x", &spoof).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "an untrusted peer asserts nothing: {}", r.body);
    let r = c.get_with("/echo/public/x", &[("X-Remote-Groups", "finance"), ("X_Remote_Groups", "finance")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let echoed = r.echoed_headers();
    assert!(
        !echoed.contains_key("x-remote-groups") && !echoed.contains_key("x_remote_groups"),
        "the spoofed groups never reach the app: {echoed:?}"
    );
}

#[tokio::test]
async fn groups_header_is_refused_outside_the_header_source_and_must_differ_from_the_user_header() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |identity: &str, trusted: &str| {
        let o = Options { identity: Some(identity.into()), listen_extra: trusted.into(), ..Options::default() };
        let text = config_text(dir.path(), "http://127.0.0.1:9", &o);
        stepgate::config::parse(&text, dir.path(), &Default::default()).err().map(|e| (e.key, e.reason))
    };
    let builtin = "[identity]\nsource = \"builtin\"\ngroups_header = \"X-Groups\"\n";
    let (key, why) = refused(builtin, "").expect("refused with builtin identity");
    assert_eq!(key, "identity.groups_header");
    assert!(why.contains("source = \"header\""), "{why}");
    let same = "[identity]\nsource = \"header\"\nheader = \"X-User\"\ngroups_header = \"x-user\"\n";
    let (key, _) = refused(same, "trusted_proxies = [\"127.0.0.1/32\"]").expect("refused: the same header");
    assert_eq!(key, "identity.groups_header");
    let ok = "[identity]\nsource = \"header\"\nheader = \"X-User\"\ngroups_header = \"X-Groups\"\n";
    assert_eq!(refused(ok, "trusted_proxies = [\"127.0.0.1/32\"]"), None);
}
