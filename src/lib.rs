//! stepgate: a step-up authentication gateway.

pub mod access_log;
pub mod admin;
pub mod audit;
pub mod authn;
pub mod body;
pub mod clock;
pub mod config;
pub mod demo;
pub mod demo_app;
pub mod explain;
pub mod gateway;
pub mod log_line;
pub mod metrics;
pub mod parse;
pub mod pipeline;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod respond;
pub mod risk;
pub mod secretbox;
pub mod server;
pub mod session;
pub mod state;
pub mod store;
pub mod web;
