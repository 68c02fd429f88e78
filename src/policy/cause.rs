//! Why a request was decided the way it was: a closed set of reason codes. Audit records carry
//! the code in `reason`, metrics use it as a label, so both stay bounded.

/// The cause of a decision. `code()` is the stable value written to audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// Forwarded: the route needs nobody.
    Public,
    /// Forwarded: a proof satisfied the rule.
    Proven,
    /// Sign-in needed: no session.
    NoSession,
    /// Step-up needed: no proof is strong, fresh or of an allowed method enough.
    ProofTooWeak,
    /// Step-up needed: the risk score raised the requirement, or proofs from another context
    /// no longer count.
    RiskRaised,
    /// Denied: the rule denies this route (`action = "deny"`, or outside its hours).
    RuleDenies,
    /// Denied: the risk score reached `deny_at`, or a finding blocks outright.
    RiskTooHigh,
    /// Denied: the client address is in `risk.location.deny_networks`.
    DeniedNetwork,
    /// Denied (forward-auth): the front proxy asked about one of the gateway's own paths.
    GatewayPath,
    /// Denied (forward-auth): the front proxy asked about a `CONNECT`.
    MethodRefused,
    /// Refused with 503: the store cannot answer on a protected route.
    StoreUnavailable,
    /// Denied: the rule names `groups` and the user is in none of them.
    NotInGroup,
    /// Denied: a claim the rule names (`claims`) is missing or has another value.
    ClaimMismatch,
    /// Denied: the token lacks a scope the rule names (`scopes`; RFC 6750 `insufficient_scope`).
    MissingScope,
    /// Denied: the rule names `workload` and the caller is not a workload it matches.
    WorkloadNotAllowed,
    /// Denied: the rule names `client` and the caller is no bearer token client it matches.
    ClientNotAllowed,
    /// Refused: the certificate or token was issued longer ago than `max_credential_age`.
    CredentialTooOld,
    /// Step-up needed: the rule binds the transaction (`bind = "transaction"`) and no proof
    /// was made for this request (each confirms one request body, once).
    TransactionUnconfirmed,
    /// Refused: the request body is too big (or an upload) to be kept across a challenge.
    BodyNotKept,
    /// Refused: a bound rule's request whose body cannot be shown as the app will read it
    /// (compressed, not a form or JSON, not UTF-8, JSON labelled a form).
    TransactionUnreadable,
    /// Refused with 401: the bearer token does not verify (RFC 6750 `invalid_token`).
    InvalidToken,
    /// Denied: the client certificate chained to the CA but is no valid workload identity
    /// (an SVID breaking the X.509-SVID rules, or an empty subject).
    InvalidCertificate,
    /// Refused: a POST on a path whose rules differ by method names another method in its body
    /// (`_method`), or is too large to be read for it.
    MethodOverride,
}

impl Cause {
    pub fn code(self) -> &'static str {
        match self {
            Cause::Public => "public",
            Cause::Proven => "proven",
            Cause::NoSession => "no_session",
            Cause::ProofTooWeak => "proof_too_weak_or_old",
            Cause::RiskRaised => "risk_raised_requirement",
            Cause::RuleDenies => "rule_denies",
            Cause::RiskTooHigh => "risk_too_high",
            Cause::DeniedNetwork => "denied_network",
            Cause::GatewayPath => "gateway_path",
            Cause::MethodRefused => "method_refused",
            Cause::StoreUnavailable => "store_unavailable",
            Cause::NotInGroup => "not_in_group",
            Cause::ClaimMismatch => "claim_mismatch",
            Cause::MissingScope => "insufficient_scope",
            Cause::WorkloadNotAllowed => "workload_not_allowed",
            Cause::ClientNotAllowed => "client_not_allowed",
            Cause::CredentialTooOld => "credential_too_old",
            Cause::TransactionUnconfirmed => "transaction_unconfirmed",
            Cause::BodyNotKept => "body_not_kept",
            Cause::TransactionUnreadable => "transaction_unreadable",
            Cause::InvalidToken => "invalid_token",
            Cause::InvalidCertificate => "invalid_certificate",
            Cause::MethodOverride => "method_override",
        }
    }

    /// Every cause, for tests and documentation.
    pub const ALL: [Cause; 23] = [
        Cause::Public,
        Cause::Proven,
        Cause::NoSession,
        Cause::ProofTooWeak,
        Cause::RiskRaised,
        Cause::RuleDenies,
        Cause::RiskTooHigh,
        Cause::DeniedNetwork,
        Cause::GatewayPath,
        Cause::MethodRefused,
        Cause::StoreUnavailable,
        Cause::NotInGroup,
        Cause::ClaimMismatch,
        Cause::MissingScope,
        Cause::WorkloadNotAllowed,
        Cause::ClientNotAllowed,
        Cause::CredentialTooOld,
        Cause::TransactionUnconfirmed,
        Cause::BodyNotKept,
        Cause::TransactionUnreadable,
        Cause::InvalidToken,
        Cause::InvalidCertificate,
        Cause::MethodOverride,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_snake_case() {
        let codes: std::collections::HashSet<&str> = Cause::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes.len(), Cause::ALL.len());
        assert!(codes.iter().all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }
}
