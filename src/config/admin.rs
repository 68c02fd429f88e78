//! `[admin]`: where the running gateway's admin socket listens (`stepgate user ...` uses it).

use crate::parse::ConfigError;
use crate::store::config::StoreConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// The Unix socket's path (relative to the config file). Default: next to the embedded
    /// store's file (`stepgate.db.sock`), or `stepgate-admin.sock` beside the config with Redis.
    #[serde(default)]
    pub socket: Option<String>,
}

/// A Unix socket path holds at most 107 bytes (`sun_path`); leave a little room.
const MAX_SOCKET_PATH: usize = 100;

pub fn parse(raw: &RawAdmin, store: &StoreConfig, base: &Path) -> Result<PathBuf, ConfigError> {
    let path = match (&raw.socket, store) {
        (Some(s), _) if s.trim().is_empty() => return Err(ConfigError::new("admin.socket", "must not be empty")),
        (Some(s), _) => base.join(s),
        (None, StoreConfig::Embedded { path }) => {
            let mut name = path.as_os_str().to_os_string();
            name.push(".sock");
            PathBuf::from(name)
        }
        (None, StoreConfig::Redis(_)) => base.join("stepgate-admin.sock"),
    };
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(ConfigError::new(
            "admin.socket",
            format!(
                "'{}' is longer than {MAX_SOCKET_PATH} bytes, too long for a Unix socket; set a shorter path",
                path.display()
            ),
        ));
    }
    Ok(path)
}
