//! Small helpers shared by the subcommands.

use std::path::PathBuf;

use anyhow::{bail, Result};

pub use netrepair_experiments::cli::args::{
    batch_for, check_output, dataset_batch, load_net, parse_list, predict_all,
};

/// The network path from either the positional argument or `--net`.
pub fn net_path(positional: &Option<PathBuf>, flag: &Option<PathBuf>) -> Result<PathBuf> {
    match (positional, flag) {
        (Some(p), None) | (None, Some(p)) => Ok(p.clone()),
        (Some(_), Some(_)) => bail!("give the network once, either as an argument or with --net"),
        (None, None) => bail!("no network given: pass --net NET.onnx"),
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// What a long command is doing, on stderr: a spinner on a terminal; elsewhere (a log file, a
/// batch job) a line per message with the seconds since the start, so that a 20-minute LP is
/// not silent in a log. Messages that differ from the last printed one only in their numbers
/// (a training loop's step counts) are printed at most every 5 seconds.
pub struct Status {
    spinner: indicatif::ProgressBar,
    log: Option<std::sync::Mutex<StatusLog>>,
}

struct StatusLog {
    start: std::time::Instant,
    last: Option<(std::time::Instant, String)>,
}

impl Status {
    /// Starts showing status.
    pub fn new() -> Self {
        use std::io::IsTerminal;
        let spinner = indicatif::ProgressBar::new_spinner();
        let log = if std::io::stderr().is_terminal() {
            spinner.enable_steady_tick(std::time::Duration::from_millis(200));
            None
        } else {
            Some(std::sync::Mutex::new(StatusLog {
                start: std::time::Instant::now(),
                last: None,
            }))
        };
        Self { spinner, log }
    }

    /// Shows `msg` as the current status.
    pub fn say(&self, msg: &str) {
        let Some(log) = &self.log else {
            self.spinner.set_message(msg.to_string());
            return;
        };
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        let kind: String = msg.chars().filter(|c| !c.is_ascii_digit()).collect();
        let repeat = log.last.as_ref().is_some_and(|(at, k)| {
            *k == kind && now.duration_since(*at) < std::time::Duration::from_secs(5)
        });
        if !repeat {
            eprintln!(
                "[{:7.1} s] {msg}",
                now.duration_since(log.start).as_secs_f64()
            );
            log.last = Some((now, kind));
        }
    }

    /// Clears the spinner.
    pub fn finish(&self) {
        self.spinner.finish_and_clear();
    }
}

impl Default for Status {
    fn default() -> Self {
        Self::new()
    }
}
