//! The recorded ICE answers under `tests/data/sample-responses/`, which the wire shapes'
//! tests parse and serve back (test builds only).

/// The text of one recorded answer, or a panic naming the missing file.
pub(crate) fn sample(name: &str) -> String {
    let path = format!(
        "{}/../../tests/data/sample-responses/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
