//! [`Exit`]: a failure that carries the process exit code it should produce, for every
//! command (the codes are listed in `cli`'s module doc).

/// A failure with the exit code it should produce.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: u8,
    pub(crate) message: String,
}

/// A usage or configuration error: exit code 2.
pub(crate) fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    Exit {
        code: 2,
        message: e.to_string(),
    }
    .into()
}
