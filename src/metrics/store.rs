//! `MeteredStore`: the configured store, with each call timed and its errors counted by
//! operation (the `Store` method's name) in [`Metrics`](super::Metrics).

use super::labels::StoreOp;
use super::SharedMetrics;
use crate::clock::UnixTime;
use crate::risk::history::RiskHistory;
use crate::session::Session;
use crate::store::{Factors, SharedStore, Store, StoreError};
use async_trait::async_trait;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct MeteredStore {
    inner: SharedStore,
    metrics: SharedMetrics,
}

impl MeteredStore {
    /// `inner`, recording into `metrics`.
    pub fn wrap(inner: SharedStore, metrics: SharedMetrics) -> SharedStore {
        Arc::new(MeteredStore { inner, metrics })
    }

    async fn timed<T>(&self, op: StoreOp, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics.store_call(op, started.elapsed(), result.is_err());
        result
    }
}

#[async_trait]
impl Store for MeteredStore {
    fn answering(&self) -> bool {
        self.inner.answering()
    }
    fn optional_wait(&self) -> Option<Duration> {
        self.inner.optional_wait()
    }
    async fn get_session(&self, key: &str, now: UnixTime) -> Result<Option<Session>, StoreError> {
        self.timed(StoreOp::GetSession, self.inner.get_session(key, now)).await
    }
    async fn put_session(&self, key: &str, session: &Session, expires_at: UnixTime) -> Result<(), StoreError> {
        self.timed(StoreOp::PutSession, self.inner.put_session(key, session, expires_at)).await
    }
    async fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        self.timed(StoreOp::DeleteSession, self.inner.delete_session(key)).await
    }
    async fn end_user_sessions(&self, user: &str) -> Result<u64, StoreError> {
        self.timed(StoreOp::EndUserSessions, self.inner.end_user_sessions(user)).await
    }
    async fn index_idp_session(&self, index: &str, session_key: &str, expires_at: UnixTime) -> Result<(), StoreError> {
        self.timed(StoreOp::IndexIdpSession, self.inner.index_idp_session(index, session_key, expires_at)).await
    }
    async fn end_idp_sessions(&self, index: &str) -> Result<u64, StoreError> {
        self.timed(StoreOp::EndIdpSessions, self.inner.end_idp_sessions(index)).await
    }
    async fn get_factors(&self, user: &str) -> Result<Factors, StoreError> {
        self.timed(StoreOp::GetFactors, self.inner.get_factors(user)).await
    }
    async fn put_factors(&self, user: &str, factors: &Factors) -> Result<(), StoreError> {
        self.timed(StoreOp::PutFactors, self.inner.put_factors(user, factors)).await
    }
    async fn take_recovery_code(&self, user: &str, hash: &str) -> Result<bool, StoreError> {
        self.timed(StoreOp::TakeRecoveryCode, self.inner.take_recovery_code(user, hash)).await
    }
    async fn claim_credential(&self, credential_id: &str, user: &str) -> Result<bool, StoreError> {
        self.timed(StoreOp::ClaimCredential, self.inner.claim_credential(credential_id, user)).await
    }
    async fn release_credential(&self, credential_id: &str) -> Result<(), StoreError> {
        self.timed(StoreOp::ReleaseCredential, self.inner.release_credential(credential_id)).await
    }
    async fn get_risk_history(&self, user: &str) -> Result<RiskHistory, StoreError> {
        self.timed(StoreOp::GetRiskHistory, self.inner.get_risk_history(user)).await
    }
    async fn put_risk_history(&self, user: &str, history: &RiskHistory) -> Result<(), StoreError> {
        self.timed(StoreOp::PutRiskHistory, self.inner.put_risk_history(user, history)).await
    }
    async fn put_ephemeral(&self, key: &str, value: &[u8], expires_at: UnixTime) -> Result<(), StoreError> {
        self.timed(StoreOp::PutEphemeral, self.inner.put_ephemeral(key, value, expires_at)).await
    }
    async fn take_ephemeral(&self, key: &str, now: UnixTime) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed(StoreOp::TakeEphemeral, self.inner.take_ephemeral(key, now)).await
    }
    async fn get_ephemeral(&self, key: &str, now: UnixTime) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed(StoreOp::GetEphemeral, self.inner.get_ephemeral(key, now)).await
    }
    async fn raise_high_water(&self, key: &str, value: u64) -> Result<bool, StoreError> {
        self.timed(StoreOp::RaiseHighWater, self.inner.raise_high_water(key, value)).await
    }
    async fn hit_counter(&self, key: &str, window: Duration, now: UnixTime) -> Result<u64, StoreError> {
        self.timed(StoreOp::HitCounter, self.inner.hit_counter(key, window, now)).await
    }
    async fn read_counter(&self, key: &str, now: UnixTime) -> Result<u64, StoreError> {
        self.timed(StoreOp::ReadCounter, self.inner.read_counter(key, now)).await
    }
    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        self.timed(StoreOp::ResetCounter, self.inner.reset_counter(key)).await
    }
    async fn sweep(&self, now: UnixTime) -> Result<u64, StoreError> {
        self.timed(StoreOp::Sweep, self.inner.sweep(now)).await
    }
    /// The inner store's own probe, timed as one `ready` call.
    async fn ready(&self, now: UnixTime) -> Result<(), StoreError> {
        self.timed(StoreOp::Ready, self.inner.ready(now)).await
    }
}
