//! `stepgate demo`: the demo app behind the gateway with a demo policy and user, on the
//! embedded store in a temporary directory.

use crate::authn::password::add_user;
use rand::RngCore;
use std::path::Path;

pub const DEMO_USER: &str = "demo";
pub const DEMO_PASSWORD: &str = "stepgate-demo";

/// The demo policy, as an operator would write it.
pub fn demo_config(listen: &str, upstream: &str, dir: &Path) -> String {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!(
        r#"# Written by `stepgate demo`.
[listen]
address = "{listen}"
public_url = "http://localhost:{port}"

[upstream]
url = "{upstream}"

[store]
kind = "embedded"
path = "{db}"

[identity]
source = "builtin"
users_file = "{users}"

[sessions]
secret_key = "{key}"

# GET /metrics on a free port (printed at start).
[metrics]
address = "127.0.0.1:0"

[[rule]]
name = "home"
path = "/"
require = "none"

[[rule]]
name = "public"
path = "/public/**"
require = "none"

[[rule]]
name = "transfer"
path = "/transfer"
require = "aal2"
max_age = "5m"
# Each transfer needs its own proof, shown with what it confirms (see "Confirming actions").
bind = "transaction"
confirm = "Transfer {{amount}} to {{to}}"

[[rule]]
name = "kernel"
path = "/kernel"
require = "aal2"
max_age = "5m"

[[rule]]
name = "admin"
path = "/admin/**"
require = "aal3"
max_age = "5m"
allow = ["webauthn"]

[default]
require = "aal1"
"#,
        db = dir.join("stepgate.db").display(),
        users = dir.join("users.toml").display(),
        key = hex::encode(key),
        port = listen.rsplit(':').next().unwrap_or("8080"),
    )
}

/// Writes the demo config and user into `dir`; returns the config path.
pub fn prepare(dir: &Path, listen: &str, upstream: &str) -> Result<std::path::PathBuf, String> {
    let config = dir.join("config.toml");
    std::fs::write(&config, demo_config(listen, upstream, dir)).map_err(|e| e.to_string())?;
    add_user(&dir.join("users.toml"), DEMO_USER, DEMO_PASSWORD).map_err(|e| e.to_string())?;
    Ok(config)
}
