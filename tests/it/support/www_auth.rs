//! A parser of `WWW-Authenticate` written against the grammar of RFC 9110 §11.6.1 / §11.2:
//!
//! ```text
//! challenge   = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param  = token BWS "=" BWS ( token / quoted-string )
//! token       = 1*tchar
//! quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
//! ```
//! One challenge per header value here (the gateway sends one). Parameter names are
//! case-insensitive (lower-cased); a name given twice is an error (RFC 9110 §11.2).

use std::collections::BTreeMap;

#[derive(Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

fn tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

pub fn parse(value: &str) -> Result<Challenge, String> {
    let b = value.as_bytes();
    let mut i = 0;
    let token = |i: &mut usize| -> Result<String, String> {
        let start = *i;
        while *i < b.len() && tchar(b[*i]) {
            *i += 1;
        }
        if *i == start {
            return Err(format!("a token expected at {start} in {value:?}"));
        }
        Ok(value[start..*i].to_string())
    };
    let ows = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    let scheme = token(&mut i)?;
    let mut params = BTreeMap::new();
    if i == b.len() {
        return Ok(Challenge { scheme, params });
    }
    if b[i] != b' ' {
        return Err(format!("SP expected after the scheme in {value:?}"));
    }
    ows(&mut i);
    loop {
        let name = token(&mut i)?.to_ascii_lowercase();
        ows(&mut i);
        if i >= b.len() || b[i] != b'=' {
            return Err(format!("'=' expected after {name:?} in {value:?}"));
        }
        i += 1;
        ows(&mut i);
        let v = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut s = String::new();
            loop {
                match b.get(i) {
                    None => return Err(format!("unterminated quoted-string in {value:?}")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let c = *b.get(i + 1).ok_or("a quoted-pair at the end")?;
                        s.push(c as char);
                        i += 2;
                    }
                    Some(&c) if c == b'\t' || c == b' ' || (0x21..=0x7e).contains(&c) || c >= 0x80 => {
                        s.push(c as char);
                        i += 1;
                    }
                    Some(c) => return Err(format!("byte {c:#x} not allowed in a quoted-string")),
                }
            }
            s
        } else {
            token(&mut i)?
        };
        if params.insert(name.clone(), v).is_some() {
            return Err(format!("parameter {name:?} given twice in {value:?}"));
        }
        ows(&mut i);
        if i == b.len() {
            return Ok(Challenge { scheme, params });
        }
        if b[i] != b',' {
            return Err(format!("',' expected at {i} in {value:?}"));
        }
        i += 1;
        ows(&mut i);
    }
}

#[test]
fn the_parser_follows_the_grammar() {
    let c =
        parse(r#"Bearer error="insufficient_user_authentication", error_description="a \"b\"", max_age=5"#).unwrap();
    assert_eq!(c.scheme, "Bearer");
    assert_eq!(c.params["error_description"], "a \"b\"");
    assert_eq!(c.params["max_age"], "5");
    assert!(parse("Bearer error=").is_err());
    assert!(parse("Bearer a=1 b=2").is_err());
    assert!(parse("Bearer a=1, A=2").is_err());
    assert!(parse(r#"Bearer a="open"#).is_err());
    assert_eq!(parse("Basic").unwrap().params.len(), 0);
}
