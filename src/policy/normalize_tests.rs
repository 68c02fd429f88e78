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
        "/100%25",
        "/50%25off",
        "/.well-known/x",
        "/..a/b",
        "/file.txt",
        "/v1.2/x",
        "/a.b.c/d",
        "/a%20b",
        "/a+b",
        "/~user/x",
        "/x:y",
        "/v1/projects/p:batchGet",
        "/caf%C3%A9/%E6%97%A5%E6%9C%AC",
        "/%C3%85ngstr%C3%B6m",
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
        ("/a%2bb", "/a%2Bb"),
        ("/%7Euser", "/~user"),
        ("/日本", "/%E6%97%A5%E6%9C%AC"),
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
        ("/%C0%AE", "escapes do not decode to UTF-8"),
        ("/public/%C0%AE%C0%AE/admin", "escapes do not decode to UTF-8"),
        ("/%E0%80%AE", "escapes do not decode to UTF-8"),
        ("/%ED%A0%80", "escapes do not decode to UTF-8"),
        ("/%u002e%u002e/admin", "invalid percent escape"),
        ("/admin%u0041", "invalid percent escape"),
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
    for raw in ["//a/./b/../c/", "/%61%62%c3%a9", "/x/%2e/y", "/a b/é", "/a%21", "/100%25"] {
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

fn refused_all(class: &str, reason: &str, cases: &[&str]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|raw| match normalize_path(raw) {
            Ok(p) => Some(format!("{raw:?} accepted as {:?}", p.as_str())),
            Err(PathError::Refused(why)) if why != reason => Some(format!("{raw:?} refused as {why:?}")),
            Err(_) => None,
        })
        .collect();
    assert!(wrong.is_empty(), "{class}: want {reason:?}\n{}", wrong.join("\n"));
}

#[test]
fn encoded_delimiters_are_refused() {
    refused_all("encoded ';'", "encoded ';'", &["/admin%3Bx/users", "/admin%3bx", "/admin%3B", "/%3B/admin", "/a%3Bb"]);
    refused_all("encoded '?'", "encoded '?'", &["/admin%3F", "/admin%3f", "/admin%3Fx=1", "/admin%3F/users"]);
    refused_all("encoded '#'", "encoded '#'", &["/admin%23", "/admin%23/users", "/admin%23x"]);
}

#[test]
fn double_encoding_is_refused() {
    refused_all(
        "double encoding",
        "double percent-encoding ('%25' before an escape)",
        &[
            "/admin%252fx",
            "/admin%252F",
            "/%2561dmin",
            "/adm%2569n",
            "/admin%255c",
            "/public/%252e%252e/admin",
            "/admin%253B",
            "/admin%2500",
            "/%25%32%66",
            "/%25%36%31dmin",
            "/%252561dmin",
            "/%25u002e",
            "/admin%25U0041",
            "/x%25fF",
        ],
    );
}

#[test]
fn trailing_dots_are_refused() {
    refused_all(
        "trailing dot",
        "segment ends in '.'",
        &[
            "/admin.",
            "/admin..",
            "/admin...",
            "/admin./users",
            "/admin../users",
            "/admin%2e",
            "/admin%2E",
            "/admin.%2e/x",
            "/...",
            "/.../admin",
            "/x/admin./",
            "/admin.%20.",
        ],
    );
}

#[test]
fn whitespace_at_a_segment_edge_is_refused() {
    refused_all(
        "ASCII whitespace",
        "segment starts or ends with whitespace",
        &["/admin%20", "/admin%20/users", "/%20admin", "/admin%20%20", "/admin.%20", "/%20", "/admin /x", "/ admin"],
    );
    refused_all(
        "encoded tab and friends",
        "encoded control character",
        &["/admin%09", "/admin%0d", "/admin%0B", "/admin%0c/x"],
    );
    refused_all(
        "non-ASCII whitespace",
        "non-ASCII whitespace",
        &[
            "/admin%C2%A0",
            "/admin\u{a0}",
            "/%C2%A0admin",
            "/adm%C2%A0in",
            "/admin%E3%80%80",
            "/admin%E2%80%A8",
            "/admin%E2%80%89/users",
            "/admin%E1%9A%80",
        ],
    );
    refused_all("C1 controls", "control character", &["/admin%C2%85", "/admin\u{85}", "/admin%C2%80"]);
    refused_all(
        "plus at an edge",
        "segment starts or ends with '+' (a space to form decoders)",
        &["/admin+", "/+admin", "/admin%2B", "/admin+/users", "/c++"],
    );
}

#[test]
fn windows_file_system_spellings_are_refused() {
    refused_all(
        "NTFS streams",
        "NTFS stream name (':$')",
        &["/admin::$DATA", "/admin::$INDEX_ALLOCATION/users", "/admin:$I30:$INDEX_ALLOCATION/x", "/admin%3A%3A$DATA"],
    );
    refused_all(
        "8.3 short names",
        "DOS 8.3 short name ('~' and a number)",
        &["/ADMINI~1", "/admini~1/users", "/ADMINI~1.ASP", "/TRANSF~1", "/a~12", "/ADMINI%7E1"],
    );
    for ok_path in ["/~user", "/a~b", "/backup~", "/longername~1", "/x~1.html5"] {
        assert_eq!(ok(ok_path), ok_path, "{ok_path}");
    }
}

#[test]
fn non_ascii_that_folds_onto_ascii_is_refused() {
    refused_all(
        "case and compatibility folds",
        "non-ASCII character that folds to ASCII",
        &[
            "/adm\u{131}n/users", // dotless i, raw
            "/adm%C4%B1n/users",  // dotless i, encoded
            "/%C4%B1",
            "/ADM\u{130}N",    // capital I with dot above
            "/tran\u{17F}fer", // long s
            "/\u{212A}ey",     // Kelvin sign
            "/%E2%84%AAey",
            "/pa\u{DF}word", // sharp s: SS
            "/\u{1E9E}ession",
            "/o\u{FB00}ice", // ff ligature
            "/pro\u{FB01}le",
            "/\u{FF41}\u{FF44}\u{FF4D}\u{FF49}\u{FF4E}", // fullwidth admin
            "/%EF%BD%81dmin",
            "/admin%EF%BC%8Fusers",             // fullwidth solidus
            "/public/%EF%BC%8E%EF%BC%8E/admin", // fullwidth full stops
            "/public/\u{2025}/admin",           // two dot leader: ..
            "/\u{1D41A}dmin",                   // mathematical bold a
            "/\u{1D68A}dmin",                   // mathematical monospace a
            "/\u{24D0}dmin",                    // circled a
            "/a\u{217E}\u{217F}\u{2170}n",      // small roman numerals d m i
            "/\u{2100}",                        // account of: a/c
            "/\u{AA}dmin",                      // feminine ordinal: a
            "/\u{1D6A4}",                       // mathematical italic dotless i: NFKC, then upper-case
        ],
    );
    refused_all(
        "invisible",
        "invisible character",
        &[
            "/ad\u{AD}min",
            "/ad%C2%ADmin",
            "/admin%E2%80%8B",
            "/%E2%80%8Badmin",
            "/ad%E2%80%8Dmin",
            "/admin%EF%BB%BF",
            "/ad%E2%81%A0min",
            "/admin%E2%80%AE",
            "/admin%EF%B8%8F",
            "/admin%F3%A0%80%81",
        ],
    );
    refused_all(
        "slash look-alikes",
        "look-alike of '/' or '\\'",
        &[
            "/admin%E2%88%95users",
            "/public%E2%88%95..%E2%88%95admin",
            "/admin\u{2044}x",
            "/admin%C2%A5x",
            "/x\u{20A9}",
            "/x\u{2216}y",
        ],
    );
    for p in ["/caf%C3%A9", "/%E6%97%A5%E6%9C%AC", "/%C3%85", "/%E2%84%AB", "/%D0%B0dmin", "/%C3%BCber", "/%C4%9F"] {
        assert_eq!(ok(p), p, "{p}: ordinary non-ASCII passes");
    }
}

/// The allocation-free fast path gives exactly what the general one gives, refusals included.
#[test]
fn the_fast_path_agrees_with_the_general_one() {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ab/./~1+:$.-AD_%2F5E;\\ @";
    let mut rng = rand::thread_rng();
    let mut fast = 0;
    for _ in 0..200_000 {
        let len = rng.gen_range(0..14);
        let mut p = String::from("/");
        for _ in 0..len {
            p.push(ALPHABET[rng.gen_range(0..ALPHABET.len())] as char);
        }
        fast += usize::from(already_normal(&p).is_some());
        let (a, b) = (normalize_path(&p), normalize_slowly(&p));
        assert_eq!(a.as_ref().map(NormalizedPath::as_str), b.as_ref().map(NormalizedPath::as_str), "{p:?}");
        assert_eq!(a.err().map(|e| e.to_string()), b.err().map(|e| e.to_string()), "{p:?}");
    }
    assert!(fast > 10_000, "the fast path was taken {fast} times");
    for p in ["/", "/account", "/public/page", "/a/b/c/", "/static/app.js"] {
        assert!(matches!(already_normal(p), Some(Ok(()))), "{p} takes the fast path");
    }
    for p in ["/", "/a", "/a/", "/public/page", "/ADMINI~1", "/a./b", "/a:$DATA", "/+a", "/a/../b", "/a//b"] {
        assert_eq!(
            normalize_path(p).map(|n| n.as_str().to_string()).map_err(|e| e.to_string()),
            normalize_slowly(p).map(|n| n.as_str().to_string()).map_err(|e| e.to_string()),
            "{p}"
        );
    }
}
