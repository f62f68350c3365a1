//! Progress for uploads and waits: an indicatif bar on a terminal, plain lines otherwise
//! (CI logs), printed only when the count changes.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    label: &'static str,
    bar: Option<ProgressBar>,
    last: Option<(u64, u64)>,
}

impl Progress {
    /// A bar counting `unit` (e.g. `finished`) up to `total`.
    pub fn new(label: &'static str, total: u64, unit: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let template = format!("{label}: {{bar:40.cyan/blue}} {{pos}}/{{len}} {unit} {{msg}}");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            label,
            bar,
            last: None,
        }
    }

    /// Sets the count (and the total, which may grow); `message` says what was last done.
    pub fn set(&mut self, done: u64, total: u64, message: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(message.to_string());
            }
            None => {
                if self.last != Some((done, total)) {
                    let line = format!("{}: {done}/{total} {message}", self.label);
                    eprintln!("{}", line.trim_end());
                }
            }
        }
        self.last = Some((done, total));
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish();
        }
    }
}
