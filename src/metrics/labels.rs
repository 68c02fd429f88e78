//! The label values metrics take: closed enums (and rule names, which the config bounds), so a
//! caller cannot put a user name, a path or an address into a label.

use crate::policy::level::AuthMethod;
use crate::proxy::ProxyError;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use std::fmt::Write;

/// Implements `as_str`, `ALL` and prometheus-client's `EncodeLabelValue` for a fieldless enum.
macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    };
}

label_enum! {
    /// How a request reached the decision.
    Mode { Proxy => "proxy", ForwardAuth => "forward_auth" }
}

label_enum! {
    /// What was decided for a request (`page`: one of the gateway's own pages was served).
    DecisionLabel {
        Forward => "forward",
        SignIn => "signin",
        Challenge => "challenge",
        Deny => "deny",
        Unavailable => "unavailable",
        BadRequest => "bad_request",
        Page => "page",
    }
}

label_enum! {
    /// The second factors a step-up can be made with.
    StepUpMethod { Totp => "totp", Recovery => "recovery", Webauthn => "webauthn", Idp => "idp" }
}

label_enum! {
    StepUpResult { Success => "success", Fail => "fail" }
}

label_enum! {
    SignInResult { Success => "success", Fail => "fail", Locked => "locked" }
}

label_enum! {
    /// The kinds of [`ProxyError`].
    UpstreamErrorKind {
        Timeout => "timeout",
        Connect => "connect",
        PoolFull => "pool_full",
        Upstream => "upstream",
        ClientBody => "client_body",
        BadTarget => "bad_target",
    }
}

label_enum! {
    /// Forwards that failed through the client's doing (see `respond::Blame::Client`).
    ClientErrorKind {
        BodyCut => "body_cut",
        BodyStalled => "body_stalled",
        BadTarget => "bad_target",
    }
}

impl ClientErrorKind {
    pub fn of(err: &ProxyError) -> Option<ClientErrorKind> {
        match err {
            ProxyError::ClientBody(e) if crate::body::caused_by_stall(&**e) => Some(ClientErrorKind::BodyStalled),
            ProxyError::ClientBody(_) => Some(ClientErrorKind::BodyCut),
            ProxyError::BadTarget(_) => Some(ClientErrorKind::BadTarget),
            ProxyError::Timeout { .. }
            | ProxyError::Connect { .. }
            | ProxyError::PoolFull { .. }
            | ProxyError::Upstream { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ClientErrorLabels {
    pub kind: ClientErrorKind,
}

label_enum! {
    ReloadResult { Success => "success", Error => "error" }
}

label_enum! {
    /// The methods of the `Store` trait, by name.
    StoreOp {
        GetSession => "get_session",
        PutSession => "put_session",
        DeleteSession => "delete_session",
        EndUserSessions => "end_user_sessions",
        IndexIdpSession => "index_idp_session",
        EndIdpSessions => "end_idp_sessions",
        GetFactors => "get_factors",
        PutFactors => "put_factors",
        TakeRecoveryCode => "take_recovery_code",
        ClaimCredential => "claim_credential",
        ReleaseCredential => "release_credential",
        GetRiskHistory => "get_risk_history",
        PutRiskHistory => "put_risk_history",
        PutEphemeral => "put_ephemeral",
        TakeEphemeral => "take_ephemeral",
        GetEphemeral => "get_ephemeral",
        RaiseHighWater => "raise_high_water",
        HitCounter => "hit_counter",
        ReadCounter => "read_counter",
        ResetCounter => "reset_counter",
        Sweep => "sweep",
        Ready => "ready",
    }
}

impl StepUpMethod {
    /// The step-up method an `AuthMethod` is; None for the first-factor ones (password, header).
    pub fn of(method: AuthMethod) -> Option<StepUpMethod> {
        match method {
            AuthMethod::Totp => Some(StepUpMethod::Totp),
            AuthMethod::Recovery => Some(StepUpMethod::Recovery),
            AuthMethod::Webauthn => Some(StepUpMethod::Webauthn),
            AuthMethod::Idp => Some(StepUpMethod::Idp),
            AuthMethod::Password | AuthMethod::Header | AuthMethod::Bearer | AuthMethod::Certificate => None,
        }
    }
}

impl UpstreamErrorKind {
    pub fn of(err: &ProxyError) -> UpstreamErrorKind {
        match err {
            ProxyError::Timeout { .. } => UpstreamErrorKind::Timeout,
            ProxyError::Connect { .. } => UpstreamErrorKind::Connect,
            ProxyError::PoolFull { .. } => UpstreamErrorKind::PoolFull,
            ProxyError::Upstream { .. } => UpstreamErrorKind::Upstream,
            ProxyError::ClientBody(_) => UpstreamErrorKind::ClientBody,
            ProxyError::BadTarget(_) => UpstreamErrorKind::BadTarget,
        }
    }
}

/// A risk reason code, one of [`crate::risk::REASON_CODES`]; any other is counted as `OTHER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReasonCode(&'static str);

impl ReasonCode {
    pub fn of(code: &str) -> ReasonCode {
        ReasonCode(crate::risk::REASON_CODES.iter().find(|c| **c == code).copied().unwrap_or("OTHER"))
    }
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl EncodeLabelValue for ReasonCode {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    pub mode: Mode,
    pub decision: DecisionLabel,
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ModeLabels {
    pub mode: Mode,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StepUpLabels {
    pub method: StepUpMethod,
    pub result: StepUpResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SignInLabels {
    pub result: SignInResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: ReasonCode,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StoreOpLabels {
    pub operation: StoreOp,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub kind: UpstreamErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: ReloadResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ShadowLabels {
    pub rule: String,
    pub decision: DecisionLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
}
