//! `ballast-agent`: the agent runtime (`client`), its wire protocol (`proto`), the server-side hub
//! (`hub`) and the server's private CA (`pki`).
//!
//! Transport: TLS 1.3 (rustls, ring) on one port; agents authenticate with client certificates
//! issued by the server's CA at enrolment. See `hub` for the server side and `client` for the
//! agent side.

pub mod client;
pub mod facts;
pub mod hub;
pub mod pki;
pub mod proto;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
mod tls;

pub use client::{
    AgentConfig, AgentError, Identity, SessionOptions, connect_and_serve, enroll, run,
};
pub use hub::{AgentInfo, Authority, Connected, DispatchError, Enrolled, Hub, HubError, Refusal};
pub use pki::{Ca, EnrollToken, PkiError, generate_key_and_csr, hash_secret};
pub use proto::{AgentMsg, Disk, Facts, PROTOCOL_VERSION, ServerMsg};
pub use tls::TlsConfigError;
