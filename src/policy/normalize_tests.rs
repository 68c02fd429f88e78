use super::*;

fn ok(raw: &str) -> String {
    match normalize_path(raw) {
        Ok(p) => p.as_str().to_string(),
        Err(e) => panic!("{raw:?} refused: {e}"),
    }
}

fn refused(raw: &str) -> &'static str {
    match normalize_path(raw) {
        Ok(p) => panic!("{raw:?} accepted as {:?}", p.as_str()),
        Err(PathError::Refused(why)) => why,
    }
}

#[test]
fn normal_paths_pass_unchanged() {
    for p in [
        "/",
        "/admin",
        "/admin/",
        "/Admin/X",
        "/a/b/c",
        "/users/42/settings",
        "/a-b_c~d.e",
        "/x:y@z!$&'()*+,=",
        "/caf%C3%A9",
        "/a%3Bb",
        "/100%25",
        "/.well-known/x",
        "/..a/b..",
    ] {
        assert_eq!(ok(p), p, "{p}");
    }
}

#[test]
fn rewrites_to_canonical_form() {
    let cases = [
        ("//admin", "/admin"),
        ("///admin", "/admin"),
        ("/admin//x", "/admin/x"),
        ("/./admin", "/admin"),
        ("/admin/.", "/admin/"),
        ("/admin/./", "/admin/"),
        ("/public/../admin", "/admin"),
        ("/a/b/../../admin", "/admin"),
        ("/admin/../admin/x", "/admin/x"),
        ("/a/b/..", "/a/"),
        ("/a/..", "/"),
        ("/%61dmin", "/admin"),
        ("/adm%69n", "/admin"),
        ("/%41DMIN", "/ADMIN"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/%2E%2E/admin", "/admin"),
        ("/public/.%2e/admin", "/admin"),
        ("/admin/%2e", "/admin/"),
        ("/%7e%2D%5f", "/~-_"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a%3bb", "/a%3Bb"),
        ("/a%21", "/a%21"),
        ("/café", "/caf%C3%A9"),
        ("/a b", "/a%20b"),
        ("/a\"<>", "/a%22%3C%3E"),
    ];
    for (raw, want) in cases {
        assert_eq!(ok(raw), want, "{raw}");
    }
}

#[test]
fn refuses_what_it_cannot_normalize() {
    let cases = [
        ("", "does not start with '/'"),
        ("admin", "does not start with '/'"),
        ("*", "does not start with '/'"),
        ("/admin%2fx", "encoded slash"),
        ("/admin%2Fx", "encoded slash"),
        ("/public/..%2fadmin", "encoded slash"),
        ("/admin\\x", "backslash"),
        ("/admin%5cx", "encoded backslash"),
        ("/admin%5Cx", "encoded backslash"),
        ("/admin%00", "encoded control character"),
        ("/admin%0a", "encoded control character"),
        ("/admin%7F", "encoded control character"),
        ("/admin\u{0}", "control character"),
        ("/admin\tx", "control character"),
        ("/admin\u{7f}", "control character"),
        ("/admin%zz", "invalid percent escape"),
        ("/admin%4", "invalid percent escape"),
        ("/admin%", "invalid percent escape"),
        ("/admin%%41", "invalid percent escape"),
        ("/%C0%AF", "escapes do not decode to UTF-8"),
        ("/%FF", "escapes do not decode to UTF-8"),
        ("/%C3", "escapes do not decode to UTF-8"),
        ("/../admin", "dot segments climb above the root"),
        ("/%2e%2e/admin", "dot segments climb above the root"),
        ("/a/../../b", "dot segments climb above the root"),
        ("/..", "dot segments climb above the root"),
        ("/admin;x", "path parameter (';')"),
        ("/admin/;x", "path parameter (';')"),
        ("/admin/;/x", "path parameter (';')"),
    ];
    for (raw, why) in cases {
        assert_eq!(refused(raw), why, "{raw:?}");
    }
}

#[test]
fn normalizing_twice_changes_nothing() {
    for raw in ["//a/./b/../c/", "/%61%62%c3%a9", "/x/%2e/y", "/a b/é", "/a%3b"] {
        let once = ok(raw);
        assert_eq!(ok(&once), once, "{raw}");
    }
}

#[test]
fn segments_and_trailing_slash() {
    let p = normalize_path("/a//b/").unwrap();
    assert_eq!(p.segments().collect::<Vec<_>>(), ["a", "b"]);
    assert!(p.has_trailing_slash());
    let root = normalize_path("/").unwrap();
    assert_eq!(root.segments().count(), 0);
    assert!(!normalize_path("/a").unwrap().has_trailing_slash());
}

#[test]
fn hosts() {
    let cases = [
        ("Example.COM.:8080", Some("example.com")),
        ("example.com", Some("example.com")),
        ("EXAMPLE.com.", Some("example.com")),
        ("app.example.com:443", Some("app.example.com")),
        ("example.com:", Some("example.com")),
        ("127.0.0.1:80", Some("127.0.0.1")),
        ("[::1]:8080", Some("[::1]")),
        ("[2001:DB8::0:1]", Some("[2001:db8::1]")),
        ("my_host", Some("my_host")),
        ("", None),
        (".", None),
        (":80", None),
        ("example.com:99999", None),
        ("example.com:8o", None),
        ("a:b:c", None),
        ("exa mple.com", None),
        ("example.com..", None),
        ("a..b", None),
        (".example.com", None),
        ("evil.com/x", None),
        ("evil.com@good.com", None),
        ("[::1", None),
        ("[nope]", None),
        ("[::1]x", None),
        ("ex\u{e4}mple.com", None),
    ];
    for (raw, want) in cases {
        assert_eq!(normalize_host(raw).as_deref(), want, "{raw:?}");
    }
}
