//! What every request handler shares: the live config (reloadable), the store, the clock.

use crate::authn::users_watch::UsersWatch;
use crate::clock::SharedClock;
use crate::config::{Config, Identity};
use crate::metrics::store::MeteredStore;
use crate::metrics::SharedMetrics;
use crate::proxy::UpstreamClient;
use crate::secretbox::SecretBox;
use crate::store::SharedStore;
use std::sync::{Arc, RwLock};

/// The parts of the state that a config reload replaces together.
pub struct Live {
    pub config: Config,
    /// The users file, re-read when it changes (None: identity is not builtin).
    pub users: Option<UsersWatch>,
    pub secretbox: SecretBox,
    pub upstream: UpstreamClient,
    /// None when WebAuthn is off.
    pub webauthn: Option<Arc<webauthn_rs::prelude::Webauthn>>,
    /// The OpenID relying party (identity.source = "oidc"), discovering in the background.
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
}

impl Live {
    /// Builds everything a config needs; fails (naming the file) when the users file is broken.
    pub fn new(config: Config) -> Result<Live, String> {
        let users = match &config.identity {
            Identity::Builtin { users_file } => Some(UsersWatch::open(users_file).map_err(|e| e.to_string())?),
            Identity::Header { .. } | Identity::Oidc(_) => None,
        };
        let oidc = match &config.identity {
            Identity::Oidc(o) => Some(crate::oidc::Oidc::new((**o).clone())),
            _ => None,
        };
        let secretbox = SecretBox::new(config.sessions.secret_key);
        let upstream = UpstreamClient::new(&config.upstream);
        let webauthn = match &config.webauthn {
            Some(w) => Some(Arc::new(crate::authn::webauthn::build(w)?)),
            None => None,
        };
        Ok(Live { config, users, secretbox, upstream, webauthn, oidc })
    }
}

pub struct AppState {
    live: RwLock<Arc<Live>>,
    /// The configured store, each call timed into `metrics` (see `MeteredStore`).
    pub store: SharedStore,
    pub clock: SharedClock,
    /// Shared by every serving thread of one gateway.
    pub metrics: SharedMetrics,
}

impl AppState {
    pub fn new(live: Live, store: SharedStore, clock: SharedClock, metrics: SharedMetrics) -> AppState {
        AppState::sharing(Arc::new(live), store, clock, metrics)
    }

    /// A state on a `Live` built once and shared (`test-policy` runs each case in its own state).
    pub fn sharing(live: Arc<Live>, store: SharedStore, clock: SharedClock, metrics: SharedMetrics) -> AppState {
        let store = MeteredStore::wrap(store, metrics.clone());
        AppState { live: RwLock::new(live), store, clock, metrics }
    }

    /// The config in force now; read afresh per request so a reload is honoured at once.
    pub fn live(&self) -> Arc<Live> {
        match self.live.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, live: Live) {
        let mut g = match self.live.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = Arc::new(live);
    }
}

pub type SharedState = Arc<AppState>;
