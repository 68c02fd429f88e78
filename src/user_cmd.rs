//! `stepgate user ...`: through the running gateway's admin socket when one answers there,
//! else on the store directly (the same `stepgate::admin::perform` either way).

use anyhow::{anyhow, bail, Context, Result};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use stepgate::admin::{socket, Request};
use stepgate::clock::{SharedClock, SystemClock};
use stepgate::config::{self, Config, Overrides};
use stepgate::store::config::StoreConfig;
use stepgate::store::embedded::EmbeddedStore;

/// Adds or updates a user, then has a running gateway re-read the users file at once.
pub fn add(config_path: &Path, overrides: &Overrides, name: &str, users_file: Option<PathBuf>) -> Result<String> {
    let cfg = config::load(config_path, overrides);
    let file = match (users_file, &cfg) {
        (Some(f), _) => f,
        (None, Ok(cfg)) => match &cfg.identity {
            config::Identity::Builtin { users_file } => users_file.clone(),
            config::Identity::Header { .. } | config::Identity::Oidc(_) => {
                bail!("identity.source is not \"builtin\": there is no users file")
            }
        },
        (None, Err(e)) => bail!("{}: {e}", config_path.display()),
    };
    let password = read_password(name)?;
    stepgate::authn::password::add_user(&file, name, &password).map_err(|e| anyhow!("{e}"))?;
    let mut text = format!("user '{name}' saved in {}", file.display());
    if let Ok(cfg) = &cfg {
        if let Some(reply) = socket::send(&cfg.admin_socket, &Request::ReloadUsers).map_err(|e| anyhow!("{e}"))? {
            text.push_str(if reply.ok {
                "; the running gateway re-read it: they can sign in now"
            } else {
                "; the running gateway could not re-read it (see its log)"
            });
        }
    }
    Ok(text)
}

/// The password: asked twice without echo at a terminal, else all of standard input (one
/// trailing newline dropped).
fn read_password(name: &str) -> Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: ")).context("reading the password")?;
        let again = rpassword::prompt_password("again: ").context("reading the password")?;
        if first != again {
            bail!("the two passwords differ; nothing was saved");
        }
        return Ok(first);
    }
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).context("reading the password from stdin")?;
    Ok(password.trim_end_matches(['\r', '\n']).to_string())
}

/// Runs `request`: on the gateway answering at `admin.socket`, or here on the store.
pub fn run(config_path: &Path, overrides: &Overrides, request: Request) -> Result<String> {
    let cfg = config::load(config_path, overrides).map_err(|e| anyhow!("{}: {e}", config_path.display()))?;
    if let Some(reply) = socket::send(&cfg.admin_socket, &request).map_err(|e| anyhow!("{e}"))? {
        return if reply.ok { Ok(reply.text) } else { Err(anyhow!(reply.text)) };
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(offline(&cfg, &request))
}

async fn offline(cfg: &Config, request: &Request) -> Result<String> {
    let clock: SharedClock = Arc::new(SystemClock);
    // The embedded file is opened without the gateway's sweeper: this command only does its one job.
    let store: stepgate::store::SharedStore = match &cfg.store {
        StoreConfig::Embedded { path } => Arc::new(EmbeddedStore::open(path).map_err(|e| {
            anyhow!(
                "cannot open the store {} ({e}); if a gateway runs on it, its admin socket {} did not answer: \
                 is admin.socket the same in the config it runs with?",
                path.display(),
                cfg.admin_socket.display()
            )
        })?),
        StoreConfig::Redis(_) => stepgate::server::open_store(cfg, &clock).map_err(|e| anyhow!(e))?,
    };
    let users_file = match &cfg.identity {
        config::Identity::Builtin { users_file } => Some(users_file.as_path()),
        config::Identity::Header { .. } | config::Identity::Oidc(_) => None,
    };
    let nothing = || {};
    let target = stepgate::admin::Target { store: &*store, users_file, now: clock.now(), users_changed: &nothing };
    stepgate::admin::perform(&target, request).await.map_err(|e| anyhow!("{e}"))
}
