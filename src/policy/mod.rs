//! What a request needs: normalization, the route table, assurance levels, and `decide`.

pub mod bind;
pub mod cause;
pub mod conditions;
mod confusable;
pub mod decide;
mod describe;
pub use describe::EXPIRY_WARNING;
pub mod level;
pub mod method_override;
pub mod normalize;
pub mod raw;
pub mod rollout;
pub mod routes;
