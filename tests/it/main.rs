//! stepgate's integration tests: the real server (gateway + demo app upstream) on ephemeral
//! ports, driven over HTTP and raw TCP. One test binary; modules by concern.

mod support;

mod access_log;
mod auth_endpoint;
mod bearer;
mod browser;
mod browser_transfer;
mod cli;
mod csrf;
mod forward_auth;
mod forward_auth_signin;
mod groups_header;
mod headers;
mod kept;
mod limits;
mod max_age;
mod method_override;
mod metrics;
mod oidc;
mod oidc_logout;
mod open_redirect;
mod paths;
mod policy_cases;
mod redis;
mod redis_tls;
mod restart;
mod rfc9470;
mod risk;
mod rollout;
mod signin;
mod slow_clients;
mod streaming;
mod tls;
mod totp;
mod tunnels;
mod upstream;
mod users;
mod webauthn;
mod workload;
