//! Key names. Every key starts with `PREFIX:`; the part in braces is the Redis Cluster hash tag.
//!
//! - `P:s:{KEY}`       session (value: `EXPIRES_AT\n` + JSON)
//! - `P:{u:USER}:f`    factors as JSON (recovery hashes in enrollment order)
//! - `P:{u:USER}:r`    SET of the recovery hashes not used yet (same slot as `:f`)
//! - `P:e:{KEY}`       ephemeral value (`EXPIRES_AT\n` + bytes)
//! - `P:hw:{KEY}`      high-water mark (decimal)
//! - `P:c:{KEY}`       counter: HASH { c: count, e: window_end }
//! - `P:idp:{INDEX}`  SET of the session keys filed under an IdP session or subject
//! - `P:inval`         pub/sub channel: session keys whose cached copies must go
//!
//! The prefix is validated to hold no braces or glob characters, so the hash tag is always the
//! braced part that follows it, and `P:s:*` matches session keys only.

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.to_string() }
    }
    pub fn session(&self, key: &str) -> String {
        format!("{}:s:{{{key}}}", self.prefix)
    }
    pub fn factors(&self, user: &str) -> String {
        format!("{}:{{u:{user}}}:f", self.prefix)
    }
    /// Not per user: the credential index spans users (one key per credential id).
    pub fn credential(&self, id: &str) -> String {
        format!("{}:cred:{{{id}}}", self.prefix)
    }
    pub fn risk_history(&self, user: &str) -> String {
        format!("{}:{{u:{user}}}:h", self.prefix)
    }
    pub fn recovery(&self, user: &str) -> String {
        format!("{}:{{u:{user}}}:r", self.prefix)
    }
    pub fn ephemeral(&self, key: &str) -> String {
        format!("{}:e:{{{key}}}", self.prefix)
    }
    pub fn high_water(&self, key: &str) -> String {
        format!("{}:hw:{{{key}}}", self.prefix)
    }
    pub fn counter(&self, key: &str) -> String {
        format!("{}:c:{{{key}}}", self.prefix)
    }
    pub fn idp_sessions(&self, index: &str) -> String {
        format!("{}:idp:{{{index}}}", self.prefix)
    }
    pub fn channel(&self) -> String {
        format!("{}:inval", self.prefix)
    }
    /// SCAN patterns of the records that expire, and the field that holds their expiry.
    pub fn expiring(&self) -> [(String, Expiry); 3] {
        let p = &self.prefix;
        [
            (format!("{p}:s:*"), Expiry::Prefixed),
            (format!("{p}:e:*"), Expiry::Prefixed),
            (format!("{p}:c:*"), Expiry::Hash),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A string `EXPIRES_AT\n...`.
    Prefixed,
    /// A hash with the expiry in field `e`.
    Hash,
}

impl Expiry {
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::Prefixed => "prefixed",
            Expiry::Hash => "hash",
        }
    }
}

/// `EXPIRES_AT\n` followed by the payload: readable in redis-cli, and checkable by a script.
pub fn encode(expires_at: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = format!("{expires_at}\n").into_bytes();
    v.extend_from_slice(payload);
    v
}

/// Splits what `encode` made; None if it is not in that form.
pub fn decode(value: &[u8]) -> Option<(u64, &[u8])> {
    let nl = value.iter().position(|&b| b == b'\n')?;
    let expires_at = std::str::from_utf8(&value[..nl]).ok()?.parse().ok()?;
    Some((expires_at, &value[nl + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_and_recovery_share_a_hash_tag() {
        let k = Keys::new("sg");
        assert_eq!(k.factors("alice"), "sg:{u:alice}:f");
        assert_eq!(k.recovery("alice"), "sg:{u:alice}:r");
        assert_eq!(k.session("ab12"), "sg:s:{ab12}");
        assert_eq!(k.channel(), "sg:inval");
    }

    #[test]
    fn encoding_round_trips_binary() {
        let payload: Vec<u8> = (0..=255).collect();
        let v = encode(42, &payload);
        assert_eq!(decode(&v), Some((42, payload.as_slice())));
        assert_eq!(decode(&encode(7, b"")), Some((7, &b""[..])));
        assert_eq!(decode(b"nonsense"), None);
    }
}
