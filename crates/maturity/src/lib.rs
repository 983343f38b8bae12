//! The maturity model.
