//! Progress bars for long work (hidden when standard error is no terminal, as in tests).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting bytes, labelled with what is being done.
pub(crate) fn bytes_bar(total_bytes: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total_bytes);
    let style = ProgressStyle::with_template("{msg:>12} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        .map_or_else(|_| ProgressStyle::default_bar(), |style| style.progress_chars("=> "));
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}
