//! placeholder
#[cfg(feature = "cli")]
pub mod serve;
