//! Reading the few things the tests need out of the gateway's pages.

/// The `value` of `<input ... name="NAME" value="...">`.
pub fn input_value(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = page[start..].find('"')? + start;
    Some(unescape(&page[start..end]))
}

/// The texts of every `<code class="CLASS">...</code>`.
pub fn codes(page: &str, class: &str) -> Vec<String> {
    let marker = format!("<code class=\"{class}\">");
    let mut out = Vec::new();
    let mut rest = page;
    while let Some(i) = rest.find(&marker) {
        rest = &rest[i + marker.len()..];
        let Some(end) = rest.find("</code>") else { break };
        out.push(unescape(&rest[..end]));
        rest = &rest[end..];
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
