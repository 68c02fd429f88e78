//! Config reloads (SIGHUP, or the config file changing) and what runs beside the gateway to
//! watch its config: the file poller, and the expiry watch that keeps
//! `stepgate_rule_expiry_seconds` current and warns daily about rules expiring soon.
//!
//! Every reload, applied or refused, leaves an audit record (`config_reload`) with the file's
//! SHA-256 and the rules added, removed and changed by name; a refused one keeps the last good
//! config and is counted in `stepgate_config_reloads_total{result="error"}`.

use crate::clock::UnixTime;
use crate::config::{self, Config, Overrides};
use crate::metrics::labels::ReloadResult;
use crate::policy::routes::{RouteTable, Rule};
use crate::state::{AppState, Live, SharedState};
use crate::store::config::StoreConfig;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Re-reads the config file (and users file) on SIGHUP. A bad file is logged with its key and
/// reason, and the gateway keeps running on the last good config.
pub fn reload(state: &AppState, path: &Path, overrides: &Overrides) {
    reload_all(&[state], path, overrides)
}

/// `reload` for every serving thread at once: all of them take the new config, or none does.
pub fn reload_all(states: &[impl std::ops::Deref<Target = AppState>], path: &Path, overrides: &Overrides) {
    let text = std::fs::read_to_string(path);
    let sha256 = text.as_ref().ok().map(|t| hex_sha256(t.as_bytes()));
    let old = states.first().map(|s| s.live());
    let built = match &text {
        Ok(text) => {
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            config::parse(text, &base, overrides).map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
    }
    .and_then(|cfg| {
        if let Some(old) = &old {
            let keys = restart_needed(&old.config, &cfg);
            if !keys.is_empty() {
                tracing::warn!(
                    keys = %keys.join(", "),
                    "config changed keys that need a restart: they keep their old values until then; the rest applies now"
                );
            }
        }
        let lives = states.iter().map(|_| Live::new(cfg.clone())).collect::<Result<Vec<Live>, String>>()?;
        Ok((cfg, lives))
    });
    let Some(first) = states.first() else { return };
    let now = first.clock.now();
    match built {
        Ok((cfg, lives)) => {
            let diff = old.map(|o| RuleDiff::between(&o.config.routes, &cfg.routes)).unwrap_or_default();
            for (state, live) in states.iter().zip(lives) {
                state.replace(live);
            }
            first.metrics.config_reload(ReloadResult::Success, now);
            first.metrics.rule_expiries(&cfg.routes, now);
            diff.audit(sha256.as_deref(), "applied");
            tracing::info!(
                config = %path.display(),
                added = %diff.added.join(","),
                removed = %diff.removed.join(","),
                changed = %diff.changed.join(","),
                "config reloaded"
            );
            warn_expiring(&cfg.routes, now);
        }
        Err(e) => {
            first.metrics.config_reload(ReloadResult::Error, now);
            RuleDiff::default().audit(sha256.as_deref(), "refused");
            tracing::error!(config = %path.display(), error = %e, "config reload refused; keeping the last good config")
        }
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The rules a reload added, removed and changed (same name, different content), by name;
/// the default counts as a rule named "default".
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RuleDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl RuleDiff {
    pub fn between(old: &RouteTable, new: &RouteTable) -> RuleDiff {
        let all =
            |t: &RouteTable| -> Vec<Rule> { t.rules.iter().chain(std::iter::once(&t.default)).cloned().collect() };
        let (old, new) = (all(old), all(new));
        let find = |rules: &[Rule], name: &str| rules.iter().position(|r| r.name == name);
        let mut diff = RuleDiff::default();
        for r in &new {
            match find(&old, &r.name) {
                None => diff.added.push(r.name.clone()),
                Some(i) if old[i].digest != r.digest => diff.changed.push(r.name.clone()),
                Some(_) => {}
            }
        }
        diff.removed = old.iter().filter(|r| find(&new, &r.name).is_none()).map(|r| r.name.clone()).collect();
        diff
    }

    fn audit(&self, sha256: Option<&str>, result: &'static str) {
        fn names(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        let (added, removed, changed) = (names(&self.added), names(&self.removed), names(&self.changed));
        crate::audit::emit_reload(&crate::audit::Reload {
            sha256,
            result,
            added: &added,
            removed: &removed,
            changed: &changed,
        });
    }
}

/// Logs a warning for each rule expired or expiring within 14 days of `now`.
pub fn warn_expiring(routes: &RouteTable, now: UnixTime) {
    for line in routes.expiry_warnings(now) {
        tracing::warn!(rule_expiry = %line, "rule expiry");
    }
}

/// How often the config file is looked at for changes.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Reloads every state when the config file's modification time or size changes (looked at
/// every `every`); SIGHUP keeps working beside it. Runs until the task is dropped.
pub fn watch_file(
    states: Vec<SharedState>,
    path: PathBuf,
    overrides: Overrides,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let stamp = |p: &Path| -> Option<(SystemTime, u64)> {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    tokio::spawn(async move {
        let mut last = stamp(&path);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = stamp(&path);
            if now != last {
                last = now;
                tracing::info!(config = %path.display(), "config file changed; reloading");
                reload_all(&states, &path, &overrides);
            }
        }
    })
}

/// How often the expiry gauge is refreshed.
const EXPIRY_EVERY: Duration = Duration::from_secs(60);
const DAY: u64 = 24 * 3600;

/// Keeps `stepgate_rule_expiry_seconds` current (every minute, by the state's clock) and logs
/// rules expiring within 14 days at start and then once a day.
pub fn watch_expiry(state: SharedState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut next_warning = UnixTime(0);
        let mut tick = tokio::time::interval(EXPIRY_EVERY);
        loop {
            tick.tick().await;
            let now = state.clock.now();
            let routes = &state.live().config.routes;
            state.metrics.rule_expiries(routes, now);
            if now >= next_warning {
                warn_expiring(routes, now);
                next_warning = now.plus(Duration::from_secs(DAY));
            }
        }
    })
}

/// The keys that differ between `old` and `new` but are only read at start-up (the listeners
/// and serving threads, hyper's header timer, the store, which is opened once): a reload cannot
/// apply them. Everything else (rules, risk, identity, sessions, upstream, TLS files, WebAuthn)
/// is read afresh per request and applies at once.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    use crate::store::config::RedisTarget;
    let mut keys = Vec::new();
    let mut changed = |key: &'static str, differs: bool| {
        if differs {
            keys.push(key);
        }
    };
    changed("listen.address", old.listen != new.listen);
    changed("listen.workers", old.workers != new.workers);
    changed("listen.header_timeout", old.header_timeout != new.header_timeout);
    changed("listen.idle_timeout", old.limits.idle_timeout != new.limits.idle_timeout);
    changed("listen.max_connections", old.limits.max_connections != new.limits.max_connections);
    changed("listen.max_header_bytes", old.limits.max_header_bytes != new.limits.max_header_bytes);
    changed("listen.max_concurrent_streams", old.limits.max_concurrent_streams != new.limits.max_concurrent_streams);
    changed("listen.h2_keepalive_interval", old.limits.h2_keepalive_interval != new.limits.h2_keepalive_interval);
    changed("metrics.address", old.metrics != new.metrics);
    // Compared field by field, never printed: a Redis URL may carry a password.
    match (&old.store, &new.store) {
        (StoreConfig::Embedded { path: a }, StoreConfig::Embedded { path: b }) => changed("store.path", a != b),
        (StoreConfig::Redis(a), StoreConfig::Redis(b)) => {
            match (&a.target, &b.target) {
                (
                    RedisTarget::Sentinel { sentinels: sa, master: ma, master_url: ua, tls: ta },
                    RedisTarget::Sentinel { sentinels: sb, master: mb, master_url: ub, tls: tb },
                ) => {
                    changed("store.url", (sa, ua, ta) != (sb, ub, tb));
                    changed("store.sentinel_master", ma != mb);
                }
                (ta, tb) => changed("store.url", ta != tb),
            }
            changed("store.prefix", a.prefix != b.prefix);
            changed("store.timeout", a.timeout != b.timeout);
        }
        _ => changed("store.kind", true),
    }
    // The default socket sits next to the store: named only when it changed on its own.
    if !keys.iter().any(|k| k.starts_with("store.")) && old.admin_socket != new.admin_socket {
        keys.push("admin.socket");
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::restart_needed;
    use crate::config::{parse, Config, Overrides};

    fn config(listen: &str, store: &str, rule: &str) -> Config {
        let address = if listen.contains("address") { "" } else { "address = \"127.0.0.1:8080\"" };
        let text = format!(
            "[listen]\n{address}\npublic_url = \"https://app.example\"\n{listen}\n\
             [upstream]\nurl = \"http://127.0.0.1:3000\"\n[sessions]\nsecret_key = \"{}\"\n{store}\n\
             [default]\nrequire = \"{rule}\"\n",
            "ab".repeat(32)
        );
        parse(&text, std::path::Path::new("/srv"), &Overrides::default()).unwrap()
    }

    #[test]
    fn names_each_changed_key_that_only_start_up_reads() {
        let redis = |url: &str, extra: &str| format!("[store]\nkind = \"redis\"\nurl = \"{url}\"\n{extra}");
        let base = config("workers = 2", "", "aal1");
        let cases: [(Config, &[&str]); 10] = [
            // Rules, and everything else read per request, apply at once.
            (config("workers = 2", "", "aal2"), &[]),
            (config("workers = 2\naddress = \"127.0.0.1:9090\"", "", "aal1"), &["listen.address"]),
            (config("workers = 3", "", "aal2"), &["listen.workers"]),
            (config("workers = 2\nheader_timeout = \"10s\"", "", "aal1"), &["listen.header_timeout"]),
            (config("workers = 2", "[store]\npath = \"other.db\"", "aal1"), &["store.path"]),
            (config("workers = 2", &redis("redis://127.0.0.1:6379/0", ""), "aal1"), &["store.kind"]),
            (config("workers = 4\nheader_timeout = \"5s\"", "", "aal1"), &["listen.workers", "listen.header_timeout"]),
            (config("workers = 2", "", "none"), &[]),
            (config("workers = 2", "[metrics]\naddress = \"127.0.0.1:9108\"", "aal1"), &["metrics.address"]),
            (base.clone(), &[]),
        ];
        for (new, want) in cases {
            assert_eq!(restart_needed(&base, &new), want);
        }
        let moved = config("workers = 2", "[admin]\nsocket = \"/run/stepgate.sock\"", "aal1");
        assert_eq!(restart_needed(&base, &moved), ["admin.socket"]);
        // A changed Redis URL is seen even though its Debug form hides it (a password).
        let r = |url: &str, extra: &str| config("workers = 2", &redis(url, extra), "aal1");
        let one = r("redis://:pw@a:6379/0", "");
        assert_eq!(restart_needed(&one, &r("redis://:pw@b:6379/0", "")), ["store.url"]);
        assert_eq!(restart_needed(&one, &r("redis://:other@a:6379/0", "")), ["store.url"]);
        assert_eq!(
            restart_needed(&one, &r("redis://:pw@a:6379/0", "prefix = \"x\"\ntimeout = \"2s\"")),
            ["store.prefix", "store.timeout"]
        );
        let sentinel = |m: &str| r("redis+sentinel://s1:26379,s2:26379/0", &format!("sentinel_master = \"{m}\""));
        assert_eq!(restart_needed(&sentinel("a"), &sentinel("b")), ["store.sentinel_master"]);
        assert!(restart_needed(&sentinel("a"), &sentinel("a")).is_empty());
    }
}
