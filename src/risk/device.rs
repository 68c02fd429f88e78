//! The device signal: a long-lived cookie, signed by the gateway, that names a device and the
//! user it was issued to. A device becomes *known* for a user when a second factor is proven on
//! it; a request from a device the user has not proven on scores points.
//!
//! Cookie value: `<device id>.<user, base64url>.<MAC>`, the MAC (HMAC-SHA-256 under a key
//! derived from `sessions.secret_key`) over the id and the user. The cookie is never forwarded.

use super::config::DeviceRules;
use super::history::RiskHistory;
use super::Finding;
use crate::secretbox::SecretBox;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

const PURPOSE: &str = "stepgate device cookie v1";

/// What the device cookie of a request says, before the user's history is consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceCookie {
    /// No device cookie.
    Absent,
    /// A cookie whose signature does not verify (forged, or issued under another secret key).
    Tampered,
    /// A valid cookie issued to another user.
    OtherUser { id: String },
    /// A valid cookie issued to this user.
    Mine { id: String },
}

/// The device as the scorer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStatus {
    Known,
    Unknown,
    OtherUser,
    Tampered,
}

pub fn new_device_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn signed_part(id: &str, user_b64: &str) -> String {
    format!("{id}.{user_b64}")
}

/// The cookie value for `id` issued to `user`.
pub fn encode(secretbox: &SecretBox, id: &str, user: &str) -> String {
    let part = signed_part(id, &URL_SAFE_NO_PAD.encode(user));
    let mac = secretbox.mac(PURPOSE, part.as_bytes());
    format!("{part}.{}", URL_SAFE_NO_PAD.encode(&mac[..16]))
}

/// Reads a cookie value against the user making the request.
pub fn decode(secretbox: &SecretBox, value: Option<&str>, user: &str) -> DeviceCookie {
    let Some(value) = value else { return DeviceCookie::Absent };
    let mut parts = value.split('.');
    let (Some(id), Some(user_b64), Some(mac), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return DeviceCookie::Tampered;
    };
    let Ok(tag) = URL_SAFE_NO_PAD.decode(mac) else { return DeviceCookie::Tampered };
    let full = secretbox.mac(PURPOSE, signed_part(id, user_b64).as_bytes());
    if tag.len() != 16 || !bool::from(subtle::ConstantTimeEq::ct_eq(&full[..16], tag.as_slice())) {
        return DeviceCookie::Tampered;
    }
    let owner = URL_SAFE_NO_PAD.decode(user_b64).ok().and_then(|b| String::from_utf8(b).ok());
    match owner {
        Some(o) if o == user => DeviceCookie::Mine { id: id.to_string() },
        Some(_) => DeviceCookie::OtherUser { id: id.to_string() },
        None => DeviceCookie::Tampered,
    }
}

pub fn status(cookie: &DeviceCookie, history: &RiskHistory) -> DeviceStatus {
    match cookie {
        DeviceCookie::Mine { id } if history.knows_device(id) => DeviceStatus::Known,
        DeviceCookie::Mine { .. } | DeviceCookie::Absent => DeviceStatus::Unknown,
        DeviceCookie::OtherUser { .. } => DeviceStatus::OtherUser,
        DeviceCookie::Tampered => DeviceStatus::Tampered,
    }
}

pub fn assess(rules: &DeviceRules, status: &DeviceStatus, out: &mut Vec<Finding>) {
    match status {
        DeviceStatus::Known => {}
        DeviceStatus::Unknown => {
            out.push(Finding::new("DEVICE_UNKNOWN", rules.unknown, "no second factor proven on this device yet"))
        }
        DeviceStatus::OtherUser => out.push(Finding::new(
            "DEVICE_OTHER_USER",
            rules.other_user,
            "the device cookie was issued to another user",
        )),
        DeviceStatus::Tampered => {
            out.push(Finding::new("DEVICE_TAMPERED", rules.tampered, "the device cookie's signature does not verify"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_reads_back_for_its_user_only_and_resists_tampering() {
        let sb = SecretBox::new([7; 32]);
        let v = encode(&sb, "dev1", "alice");
        assert_eq!(decode(&sb, Some(&v), "alice"), DeviceCookie::Mine { id: "dev1".into() });
        assert_eq!(decode(&sb, Some(&v), "bob"), DeviceCookie::OtherUser { id: "dev1".into() });
        assert_eq!(decode(&sb, None, "alice"), DeviceCookie::Absent);
        let forged = v.replacen("dev1", "dev2", 1);
        assert_eq!(decode(&sb, Some(&forged), "alice"), DeviceCookie::Tampered);
        let other_key = SecretBox::new([8; 32]);
        assert_eq!(decode(&other_key, Some(&v), "alice"), DeviceCookie::Tampered);
        assert_eq!(decode(&sb, Some("garbage"), "alice"), DeviceCookie::Tampered);
        assert_eq!(decode(&sb, Some("a.b.c.d"), "alice"), DeviceCookie::Tampered);
    }
}
