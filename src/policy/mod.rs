//! What a request needs: normalization, the route table, assurance levels, and `decide`.

pub mod cause;
mod confusable;
pub mod decide;
pub mod level;
pub mod normalize;
pub mod raw;
pub mod routes;
