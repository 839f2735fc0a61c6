//! The one way the commands write their results to stdout: a value as a table or as pretty JSON ([`show`]), or
//! text ([`text`]). Logs, progress and errors go to stderr, never through here.

use std::io::Write as _;

use anyhow::Context as _;

/// `-o table|json`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Writes `text` to stdout as it is, and flushes (a line such as `twin serve`'s `listening on ADDR` is read by
/// another process while this one goes on).
pub fn text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

/// `value` as pretty JSON, one final newline.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

/// Writes `value` to stdout: with `-o table` as `table` renders it, with `-o json` as pretty JSON.
pub fn show<T: serde::Serialize + ?Sized>(
    output: Output,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    match output {
        Output::Table => text(&table(value)),
        Output::Json => text(&json(value)?),
    }
}
