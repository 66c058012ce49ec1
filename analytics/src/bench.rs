//! The benchmark behind `analytics bench`.
use crate::config::{BenchArgs, Config};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Failed(String),
}

pub async fn run(_config: &Config, _args: &BenchArgs) -> Result<String, BenchError> {
    Err(BenchError::Failed("not yet".into()))
}
