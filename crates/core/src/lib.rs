//! The platform's domain: users, passwords and second factors, roles and permissions with scopes
//! and separation of duties, the audit hash chain and its signed checkpoints, and the guard
//! pipeline every mutating or executing action goes through.
//!
//! No IO, no database, no web framework, no wall clock: time comes from a [`clock::Clock`].

pub mod audit;
pub mod authz;
pub mod clock;
pub mod guard;
pub mod mfa;
pub mod password;
pub mod problem;
pub mod user;

pub use problem::Problem;
