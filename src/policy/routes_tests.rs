use super::*;
use crate::policy::normalize::normalize_path;
use http::Method;

fn rule(name: &str, path: &str, require: &str) -> RawRule {
    RawRule {
        name: name.into(),
        host: None,
        path: path.into(),
        methods: None,
        require: Some(require.into()),
        max_age: None,
        allow: None,
        action: None,
        ..RawRule::default()
    }
}

fn with_host(mut r: RawRule, host: &str) -> RawRule {
    r.host = Some(host.into());
    r
}

fn with_methods(mut r: RawRule, methods: &[&str]) -> RawRule {
    r.methods = Some(methods.iter().map(|m| m.to_string()).collect());
    r
}

fn default_none() -> RawDefaultRule {
    RawDefaultRule { require: Some("none".into()), max_age: None, allow: None, action: None }
}

fn table(rules: &[RawRule]) -> RouteTable {
    RouteTable::build(rules, &default_none(), false).unwrap_or_else(|e| panic!("build failed: {e}"))
}

fn build_err(rules: &[RawRule]) -> ConfigError {
    match RouteTable::build(rules, &default_none(), false) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

/// The name of the rule a request lands on (panics when the path is refused).
fn class(t: &RouteTable, host: &str, path: &str, method: Method) -> String {
    let p = normalize_path(path).unwrap_or_else(|e| panic!("{path:?} refused: {e}"));
    t.classify(host, &p, &method).name.clone()
}

fn get(t: &RouteTable, path: &str) -> String {
    class(t, "example.com", path, Method::GET)
}

#[test]
fn path_attacks_never_reach_the_default() {
    let t = table(&[rule("admin", "/admin/**", "aal3")]);
    let attacks = [
        "//admin",
        "/./admin",
        "/public/../admin",
        "/%61dmin",
        "/ADMIN",
        "/Admin/x",
        "/admin%2fx",
        "/admin%2Fx",
        "/admin;x",
        "/admin/;x",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/.%2e/admin",
        "/public/..%2fadmin",
        "/%2e%2e/admin",
        "/../admin",
        "/admin\\x",
        "/admin%5cx",
        "/admin%00",
        "/admin/%2e",
        "///admin",
        "/admin/",
        "/admin/../admin/x",
        "/a/b/../../admin",
        "/%41DMIN",
        "/admin%zz",
        "/adm%69n",
        "/aDmIn/%2E/x",
        "/public/%2e%2e%2fadmin",
        "/admin/.",
        "/admin//",
        "/admin\t",
        "/public/..;/admin",
        "/admin%C0%AF",
        "/%2e/admin",
        "//public/..//admin/x",
    ];
    assert!(attacks.len() >= 25);
    for raw in attacks {
        match normalize_path(raw) {
            Err(_) => {}
            Ok(p) => {
                let r = t.classify("example.com", &p, &Method::GET);
                assert_eq!(r.name, "admin", "{raw:?} normalized to {:?} reached {}", p.as_str(), r.name);
                assert_eq!(r.action, Action::Require(Requirement { level: Level::Aal3, max_age: None, allow: None }));
            }
        }
    }
}

#[test]
fn ordinary_requests() {
    let t = table(&[rule("admin", "/admin/**", "aal3")]);
    assert_eq!(get(&t, "/public/x"), "default");
    assert_eq!(get(&t, "/"), "default");
    assert_eq!(get(&t, "/administrator"), "default");
    assert_eq!(get(&t, "/adminx/y"), "default");
    assert_eq!(get(&t, "/x/admin"), "default");
    assert_eq!(get(&t, "/admin"), "admin");
    assert_eq!(get(&t, "/admin/users/1"), "admin");
    // The caller splits off the query; '?' is never part of a path it hands over, and the
    // normalizer keeps it from ever acting as a separator.
    let (path, _query) = "/public/x?next=/admin".split_once('?').unwrap();
    assert_eq!(get(&t, path), "default");
    let (path, _query) = "/admin?x=/public".split_once('?').unwrap();
    assert_eq!(get(&t, path), "admin");
    assert_eq!(normalize_path("/public?/admin").unwrap().as_str(), "/public%3F/admin");
}

#[test]
fn pattern_kinds() {
    let t = table(&[
        rule("transfer", "/transfer", "aal2"),
        rule("settings", "/users/*/settings", "aal2"),
        rule("api", "/api/v1/**", "aal1"),
        rule("root", "/", "aal1"),
    ]);
    assert_eq!(get(&t, "/transfer"), "transfer");
    assert_eq!(get(&t, "/transfer/"), "transfer");
    assert_eq!(get(&t, "/TRANSFER"), "transfer");
    assert_eq!(get(&t, "/transfer/x"), "default");
    assert_eq!(get(&t, "/transfers"), "default");
    assert_eq!(get(&t, "/users/42/settings"), "settings");
    assert_eq!(get(&t, "/users/42/settings/"), "settings");
    assert_eq!(get(&t, "//users//42//settings"), "settings");
    assert_eq!(get(&t, "/users/settings"), "default");
    assert_eq!(get(&t, "/users/1/2/settings"), "default");
    assert_eq!(get(&t, "/users/1/settings/x"), "default");
    assert_eq!(get(&t, "/api/v1"), "api");
    assert_eq!(get(&t, "/api/v1/"), "api");
    assert_eq!(get(&t, "/api/v1/a/b/c"), "api");
    assert_eq!(get(&t, "/api/v2"), "default");
    assert_eq!(get(&t, "/api"), "default");
    assert_eq!(get(&t, "/"), "root");
    assert_eq!(get(&t, "//"), "root");
    assert_eq!(get(&t, "/x"), "default");
}

#[test]
fn catch_all_and_first_match_wins() {
    let t = table(&[rule("login", "/login", "none"), rule("all", "/**", "aal1")]);
    assert_eq!(get(&t, "/login"), "login");
    assert_eq!(get(&t, "/"), "all");
    assert_eq!(get(&t, "/anything/else"), "all");
}

#[test]
fn reserved_characters_match_their_escapes() {
    let t = table(&[rule("bang", "/a!b/**", "aal2"), rule("at", "/@me", "aal2"), rule("utf", "/café", "aal2")]);
    assert_eq!(get(&t, "/a!b/x"), "bang");
    assert_eq!(get(&t, "/a%21b/x"), "bang");
    assert_eq!(get(&t, "/A%21B"), "bang");
    assert_eq!(get(&t, "/%40me"), "at");
    assert_eq!(get(&t, "/café"), "utf");
    assert_eq!(get(&t, "/caf%c3%a9"), "utf");
    assert_eq!(get(&t, "/CAF%C3%A9"), "utf");
    assert_eq!(get(&t, "/a%22b"), "default");
}

#[test]
fn case_sensitive_mode() {
    let rules = [rule("admin", "/admin/**", "aal3"), rule("caf", "/Café", "aal1")];
    let t = RouteTable::build(&rules, &default_none(), true).unwrap();
    assert!(t.case_sensitive());
    assert_eq!(get(&t, "/admin/x"), "admin");
    assert_eq!(get(&t, "/%61dmin"), "admin");
    assert_eq!(get(&t, "/ADMIN"), "default");
    assert_eq!(get(&t, "/Admin/x"), "default");
    assert_eq!(get(&t, "/Caf%c3%a9"), "caf");
    assert_eq!(get(&t, "/caf%C3%A9"), "default");
    // Insensitive by default.
    let t = table(&rules);
    assert_eq!(get(&t, "/ADMIN"), "admin");
}

#[test]
fn hosts_match_globs() {
    let t = table(&[
        with_host(rule("app", "/admin/**", "aal3"), "APP.example.com"),
        with_host(rule("sub", "/admin/**", "aal2"), "*.example.com"),
        with_host(rule("v6", "/**", "aal1"), "[::1]"),
    ]);
    let host = crate::policy::normalize::normalize_host("App.Example.COM.:8080").unwrap();
    assert_eq!(host, "app.example.com");
    assert_eq!(class(&t, &host, "/admin", Method::GET), "app");
    assert_eq!(class(&t, "x.example.com", "/admin", Method::GET), "sub");
    assert_eq!(class(&t, "a.b.example.com", "/admin", Method::GET), "sub");
    assert_eq!(class(&t, "example.com", "/admin", Method::GET), "default");
    assert_eq!(class(&t, "example.com.evil.net", "/admin", Method::GET), "default");
    assert_eq!(class(&t, "evilexample.com", "/admin", Method::GET), "default");
    assert_eq!(class(&t, "[::1]", "/x", Method::GET), "v6");
    assert_eq!(class(&t, "", "/admin", Method::GET), "default");
}

#[test]
fn glob_matcher() {
    assert!(glob_match(b"*", b""));
    assert!(glob_match(b"*", b"anything"));
    assert!(glob_match(b"a*c", b"abbbc"));
    assert!(glob_match(b"*.a.com", b"x.y.a.com"));
    assert!(!glob_match(b"*.a.com", b"a.com"));
    assert!(glob_match(b"a*b*c", b"a-b-b-c"));
    assert!(!glob_match(b"a*b*c", b"a-b-b-"));
    assert!(!glob_match(b"abc", b"abcd"));
}

#[test]
fn methods_match() {
    let t = table(&[
        with_methods(rule("write", "/items/**", "aal2"), &["POST", "PUT", "DELETE"]),
        with_methods(rule("read", "/reports", "aal1"), &["GET"]),
    ]);
    let c = |path: &str, m: &str| class(&t, "h", path, Method::from_bytes(m.as_bytes()).unwrap());
    assert_eq!(c("/items/1", "POST"), "write");
    assert_eq!(c("/items/1", "DELETE"), "write");
    assert_eq!(c("/items/1", "GET"), "default");
    assert_eq!(c("/items/1", "PATCH"), "default");
    // Methods compare case-insensitively, so `post` cannot walk around a POST rule.
    assert_eq!(c("/items/1", "post"), "write");
    assert_eq!(c("/reports", "GET"), "read");
    assert_eq!(c("/reports", "HEAD"), "read");
    assert_eq!(c("/reports", "POST"), "default");
    assert_eq!(t.rules[1].methods().unwrap(), ["GET", "HEAD"]);
}

#[test]
fn actions_parse() {
    let mut deny = rule("block", "/debug/**", "none");
    deny.require = None;
    deny.action = Some("deny".into());
    let mut full = rule("pay", "/pay", "aal2");
    full.max_age = Some("5m".into());
    full.allow = Some(vec!["totp".into(), "webauthn".into(), "totp".into()]);
    full.action = Some("require".into());
    let t = table(&[deny, full]);
    assert_eq!(t.rules[0].action, Action::Deny);
    assert_eq!(
        t.rules[1].action,
        Action::Require(Requirement {
            level: Level::Aal2,
            max_age: Some(Duration::from_secs(300)),
            allow: Some(vec![AuthMethod::Totp, AuthMethod::Webauthn]),
        })
    );
    assert_eq!(get(&t, "/debug/x"), "block");
    assert_eq!(t.default.name, "default");
    assert_eq!(t.default.action, Action::Require(Requirement { level: Level::None, max_age: None, allow: None }));
}

#[test]
fn errors_name_the_rule_and_key() {
    let cases: Vec<(RawRule, &str, &str)> = vec![
        (rule("x", "/a", "aal9"), "rule 'x'.require", "unknown level 'aal9'; expected none, aal1, aal2 or aal3"),
        (
            RawRule { require: None, ..rule("x", "/a", "") },
            "rule 'x'.require",
            "missing; set none, aal1, aal2 or aal3 (or action = \"deny\")",
        ),
        (
            RawRule { action: Some("deny".into()), ..rule("x", "/a", "aal1") },
            "rule 'x'.require",
            "must not be set with action = \"deny\" (nothing can satisfy a deny)",
        ),
        (
            RawRule { action: Some("deny".into()), require: None, max_age: Some("5m".into()), ..rule("x", "/a", "") },
            "rule 'x'.max_age",
            "must not be set with action = \"deny\" (nothing can satisfy a deny)",
        ),
        (
            RawRule { action: Some("deny".into()), require: None, allow: Some(vec![]), ..rule("x", "/a", "") },
            "rule 'x'.allow",
            "must not be set with action = \"deny\" (nothing can satisfy a deny)",
        ),
        (
            RawRule { action: Some("block".into()), ..rule("x", "/a", "aal1") },
            "rule 'x'.action",
            "unknown action 'block'; expected \"require\" or \"deny\"",
        ),
        (
            RawRule { max_age: Some("5m".into()), ..rule("x", "/a", "none") },
            "rule 'x'.max_age",
            "meaningless with require = \"none\" (nothing is proven); remove it",
        ),
        (RawRule { max_age: Some("soon".into()), ..rule("x", "/a", "aal1") }, "rule 'x'.max_age", ""),
        (
            RawRule { allow: Some(vec!["totp".into()]), ..rule("x", "/a", "none") },
            "rule 'x'.allow",
            "meaningless with require = \"none\" (nothing is proven); remove it",
        ),
        (
            RawRule { allow: Some(vec!["password".into()]), ..rule("x", "/a", "aal2") },
            "rule 'x'.allow",
            "'password' cannot reach aal2 (it proves at most aal1); remove it or lower require",
        ),
        (
            RawRule { allow: Some(vec!["webauthn".into(), "totp".into()]), ..rule("x", "/a", "aal3") },
            "rule 'x'.allow",
            "'totp' cannot reach aal3 (it proves at most aal2); remove it or lower require",
        ),
        (
            RawRule { allow: Some(vec!["sms".into()]), ..rule("x", "/a", "aal2") },
            "rule 'x'.allow",
            "unknown method 'sms'; expected password, header, totp, recovery or webauthn",
        ),
        (
            RawRule { allow: Some(vec![]), ..rule("x", "/a", "aal2") },
            "rule 'x'.allow",
            "empty: nothing could satisfy the rule; leave the key out to allow any method",
        ),
        (with_methods(rule("x", "/a", "aal1"), &["GE T"]), "rule 'x'.methods", "'GE T' is not an HTTP method"),
        (with_methods(rule("x", "/a", "aal1"), &[""]), "rule 'x'.methods", "'' is not an HTTP method"),
        (
            with_methods(rule("x", "/a", "aal1"), &[]),
            "rule 'x'.methods",
            "empty: the rule would match nothing; leave the key out to match any method",
        ),
        (with_host(rule("x", "/a", "aal1"), "a.com:8080"), "rule 'x'.host", ""),
        (with_host(rule("x", "/a", "aal1"), "a/b"), "rule 'x'.host", ""),
        (with_host(rule("x", "/a", "aal1"), ""), "rule 'x'.host", ""),
        (rule("", "/a", "aal1"), "rule #1.name", "empty; give every rule a name"),
    ];
    for (raw, key, reason) in cases {
        let e = build_err(&[raw]);
        assert_eq!(e.key, key, "{e}");
        if !reason.is_empty() {
            assert!(e.reason.starts_with(reason), "{e}");
        }
    }
}

#[test]
fn bad_path_patterns() {
    for (pattern, fragment) in [
        ("admin", "must start with '/'"),
        ("", "must start with '/'"),
        ("/admin/", "ends in '/'"),
        ("//admin", "empty segment"),
        ("/a/../b", "dot segments"),
        ("/a/./b", "dot segments"),
        ("/a;b", "';'"),
        ("/a%2fb", "'%'"),
        ("/a\\b", "'\\'"),
        ("/**/a", "'**' may only be the last segment"),
        ("/a*", "whole segment"),
        ("/a/***", "whole segment"),
        ("/a b", "cannot appear"),
        ("/a?b", "cannot appear"),
        ("/a#b", "cannot appear"),
    ] {
        let e = build_err(&[rule("p", pattern, "aal1")]);
        assert_eq!(e.key, "rule 'p'.path", "{pattern}");
        assert!(e.reason.contains(fragment), "{pattern}: {}", e.reason);
    }
}

#[test]
fn duplicate_names() {
    let e = build_err(&[rule("a", "/x", "aal1"), rule("a", "/y", "aal1")]);
    assert_eq!(e.key, "rule 'a'.name");
    assert!(e.reason.contains("duplicate"), "{e}");
}

#[test]
fn default_errors_use_default_prefix() {
    let bad = |d: RawDefaultRule| match RouteTable::build(&[], &d, false) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    };
    let e = bad(RawDefaultRule { require: Some("aal9".into()), max_age: None, allow: None, action: None });
    assert_eq!(e.key, "default.require");
    assert_eq!(e.reason, "unknown level 'aal9'; expected none, aal1, aal2 or aal3");
    let e = bad(RawDefaultRule { require: None, max_age: None, allow: None, action: None });
    assert_eq!(e.key, "default.require");
    let e = bad(RawDefaultRule {
        require: Some("aal1".into()),
        max_age: Some("1m".into()),
        allow: None,
        action: Some("deny".into()),
    });
    assert_eq!(e.key, "default.require");
    let d = RawDefaultRule { require: None, max_age: None, allow: None, action: Some("deny".into()) };
    let t = RouteTable::build(&[], &d, false).unwrap();
    assert_eq!(t.default.action, Action::Deny);
}

fn shadow_msg(later: &str, earlier: &str) -> String {
    format!(
        "rule '{later}': shadowed by earlier rule '{earlier}', which matches every request it would; move it above '{earlier}' or remove it"
    )
}

#[test]
fn shadowed_rules_are_errors() {
    let cases: Vec<(RawRule, RawRule)> = vec![
        (rule("all", "/**", "aal1"), rule("later", "/admin", "aal3")),
        (rule("all", "/**", "aal1"), rule("later", "/", "aal3")),
        (rule("a", "/a/**", "aal1"), rule("later", "/a", "aal3")),
        (rule("a", "/a/**", "aal1"), rule("later", "/a/x", "aal3")),
        (rule("a", "/a/**", "aal1"), rule("later", "/a/*/y", "aal3")),
        (rule("a", "/a/**", "aal1"), rule("later", "/a/b/**", "aal3")),
        (rule("a", "/a/**", "aal1"), rule("later", "/A/B", "aal3")),
        (rule("same", "/x/y", "aal1"), rule("later", "/x/y", "aal3")),
        (rule("star", "/u/*/s", "aal1"), rule("later", "/u/42/s", "aal3")),
        (rule("star", "/u/*/**", "aal1"), rule("later", "/u/*/s/**", "aal3")),
        (rule("anyhost", "/a", "aal1"), with_host(rule("later", "/a", "aal3"), "x.com")),
        (with_host(rule("star", "/a", "aal1"), "*"), rule("later", "/a", "aal3")),
        (with_host(rule("same", "/a", "aal1"), "X.com"), with_host(rule("later", "/a", "aal3"), "x.com")),
        (with_host(rule("glob", "/a", "aal1"), "*.x.com"), with_host(rule("later", "/a", "aal3"), "app.x.com")),
        (with_methods(rule("m", "/a", "aal1"), &["GET", "POST"]), with_methods(rule("later", "/a", "aal3"), &["POST"])),
        (with_methods(rule("m", "/a", "aal1"), &["GET"]), with_methods(rule("later", "/a", "aal3"), &["HEAD"])),
        (rule("anym", "/a", "aal1"), with_methods(rule("later", "/a", "aal3"), &["DELETE"])),
    ];
    for (earlier, later) in cases {
        let e = build_err(&[rule("first", "/unrelated", "aal1"), earlier.clone(), later.clone()]);
        assert_eq!(e.to_string(), shadow_msg("later", &earlier.name), "{} / {}", earlier.path, later.path);
    }
}

#[test]
fn overlapping_but_not_shadowed_rules_are_fine() {
    let pairs: Vec<(RawRule, RawRule)> = vec![
        (rule("a", "/a", "aal1"), rule("b", "/a/**", "aal3")),
        (rule("a", "/a/x", "aal1"), rule("b", "/a/*", "aal3")),
        (rule("a", "/a/b/**", "aal1"), rule("b", "/a/**", "aal3")),
        (rule("a", "/a/*", "aal1"), rule("b", "/a/*/**", "aal3")),
        (rule("a", "/a/*/y", "aal1"), rule("b", "/a/x/z", "aal3")),
        (with_host(rule("a", "/a", "aal1"), "x.com"), rule("b", "/a", "aal3")),
        (with_host(rule("a", "/a", "aal1"), "*.x.com"), with_host(rule("b", "/a", "aal3"), "x.com")),
        (with_host(rule("a", "/a", "aal1"), "*.x.com"), with_host(rule("b", "/a", "aal3"), "*.com")),
        (with_methods(rule("a", "/a", "aal1"), &["GET"]), rule("b", "/a", "aal3")),
        (with_methods(rule("a", "/a", "aal1"), &["GET"]), with_methods(rule("b", "/a", "aal3"), &["GET", "POST"])),
    ];
    for (a, b) in pairs {
        RouteTable::build(&[a.clone(), b.clone()], &default_none(), false)
            .unwrap_or_else(|e| panic!("{} then {}: {e}", a.path, b.path));
    }
}

#[test]
fn shadowing_respects_case_sensitivity() {
    let rules = [rule("lower", "/admin/**", "aal1"), rule("upper", "/ADMIN", "aal3")];
    assert!(RouteTable::build(&rules, &default_none(), true).is_ok());
    let e = RouteTable::build(&rules, &default_none(), false).unwrap_err();
    assert_eq!(e.to_string(), shadow_msg("upper", "lower"));
}

#[test]
fn describe_lists_rules_in_order_then_default() {
    let mut admin = with_methods(rule("admin", "/admin/**", "aal3"), &["GET", "POST"]);
    admin.max_age = Some("5m".into());
    admin.allow = Some(vec!["webauthn".into()]);
    let mut deny = with_host(rule("debug", "/debug", "none"), "*.internal");
    deny.require = None;
    deny.action = Some("deny".into());
    let t = table(&[admin, deny]);
    let text = t.describe();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(cols(lines[0]), ["#", "name", "host", "path", "methods", "mode", "expires", "action"]);
    assert_eq!(
        cols(lines[1]),
        [
            "1",
            "admin",
            "*",
            "/admin/**",
            "GET,POST,HEAD",
            "enforce",
            "-",
            "require",
            "aal3",
            "max_age",
            "5m",
            "allow",
            "webauthn"
        ]
    );
    assert_eq!(cols(lines[2]), ["2", "debug", "*.internal", "/debug", "*", "enforce", "-", "deny"]);
    assert_eq!(cols(lines[3]), ["-", "default", "*", "/**", "*", "enforce", "-", "require", "none"]);
    assert!(lines[4].contains("case-insensitively"));
    // Columns line up.
    let at =
        |l: &str| l.find("/admin").or_else(|| l.find("/debug")).or_else(|| l.find("/**")).or_else(|| l.find("path"));
    assert_eq!(at(lines[0]), at(lines[1]));
    assert_eq!(at(lines[1]), at(lines[2]));
    assert_eq!(at(lines[2]), at(lines[3]));
}

#[test]
fn unknown_methods_are_refused_and_extension_methods_must_be_declared() {
    let err = |r: RawRule, ext: &[String]| RouteTable::build_with(&[r], &default_none(), false, ext).unwrap_err();
    for bad in ["PSOT", "GETT", "PROPFIND", "FOO"] {
        let e = err(with_methods(rule("x", "/a", "aal1"), &[bad]), &[]);
        assert_eq!(e.key, "rule 'x'.methods");
        assert!(e.reason.contains(&format!("'{bad}' is not an HTTP method")), "{e}");
        assert!(e.reason.contains("routes.extension_methods"), "{e}");
    }
    let ext = vec!["PROPFIND".to_string(), "MKCOL".to_string()];
    let t = RouteTable::build_with(
        &[with_methods(rule("dav", "/dav/**", "aal2"), &["PROPFIND", "POST"])],
        &default_none(),
        false,
        &ext,
    )
    .unwrap();
    assert_eq!(t.rules[0].methods().unwrap(), ["PROPFIND", "POST"]);
    // A lower-case spelling of a known method is refused with the upper-case one to write.
    for (bad, write) in [("post", "POST"), ("Get", "GET"), ("propfind", "PROPFIND")] {
        let e = err(with_methods(rule("x", "/a", "aal1"), &[bad]), &ext);
        assert_eq!(e.key, "rule 'x'.methods");
        assert_eq!(e.reason, format!("'{bad}': write \"{write}\" (methods are upper case)"));
    }
    for bad_ext in ["propfind", "GET", "BAD METHOD", ""] {
        let e = RouteTable::build_with(&[], &default_none(), false, &[bad_ext.to_string()]).unwrap_err();
        assert_eq!(e.key, "routes.extension_methods", "{bad_ext}");
    }
}

#[test]
fn time_windows_and_thresholds_on_public_rules_are_refused() {
    let public = || rule("open", "/open/**", "none");
    let cases: [(RawRule, &str); 5] = [
        (RawRule { hours: Some("08:00-18:00".into()), ..public() }, "hours"),
        (RawRule { days: Some(vec!["mon".into()]), ..public() }, "days"),
        (RawRule { hours: Some("08:00-18:00".into()), outside_hours: Some("deny".into()), ..public() }, "hours"),
        (RawRule { deny_at: Some(50), ..public() }, "deny_at"),
        (RawRule { step_up_at: Some(20), ..public() }, "step_up_at"),
    ];
    for (r, key) in cases {
        let e = RouteTable::build(&[r], &default_none(), false).unwrap_err();
        assert_eq!(e.key, format!("rule 'open'.{key}"));
        assert!(e.reason.contains("not scored") && e.reason.contains("aal1"), "{e}");
    }
    // The same keys on a protected rule are fine.
    let ok = RawRule { hours: Some("08:00-18:00".into()), deny_at: Some(50), ..rule("p", "/p", "aal1") };
    assert!(RouteTable::build(&[ok], &default_none(), false).is_ok());
}
