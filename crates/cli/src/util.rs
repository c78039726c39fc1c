//! Small helpers shared by the subcommands.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use netrepair_data::Dataset;
use netrepair_nn::Network;

pub use netrepair_experiments::cli::args::{check_output, load_net, parse_list};

/// The network path from either the positional argument or `--net`.
pub fn net_path(positional: &Option<PathBuf>, flag: &Option<PathBuf>) -> Result<PathBuf> {
    match (positional, flag) {
        (Some(p), None) | (None, Some(p)) => Ok(p.clone()),
        (Some(_), Some(_)) => bail!("give the network once, either as an argument or with --net"),
        (None, None) => bail!("no network given: pass --net NET.onnx"),
    }
}

/// Reshapes `n` samples of `len` scalars to the network's input `[n, input_shape...]`.
/// Accepted layouts: exactly `[n, input_shape...]`, the input shape alone (one sample), or
/// flat `[n, len]` / `[len]` when the element count matches.
pub fn batch_for(net: &Network, shape: &[usize], data: Vec<f64>) -> Result<Tensor> {
    let want = net.input_shape();
    let len = net.input_len();
    let n = if shape.len() > want.len()
        && &shape[shape.len() - want.len()..] == want
        && shape.len() == want.len() + 1
    {
        shape[0]
    } else if shape == want || shape == [len] {
        1
    } else if shape.len() == 2 && shape[1] == len {
        shape[0]
    } else {
        bail!(
            "input shape {shape:?} does not match the network input {want:?} (expected [N, {}] or [N, {len}])",
            want.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        );
    };
    let mut dims = vec![n];
    dims.extend_from_slice(want);
    Ok(Tensor::from_vec(data, dims, &Device::Cpu)?)
}

/// A data set's samples as a network input batch (reshaped when the element count matches).
pub fn dataset_batch(net: &Network, data: &Dataset) -> Result<Tensor> {
    if data.sample_len() != net.input_len() {
        bail!(
            "the {} samples have shape {:?} but the network expects {:?}",
            data.name,
            data.sample_shape,
            net.input_shape()
        );
    }
    let mut dims = vec![data.len()];
    dims.extend_from_slice(net.input_shape());
    Tensor::from_slice(&data.inputs, dims, &Device::Cpu).context("building the input batch")
}

/// Predicts classes in chunks (bounded memory on large data sets).
pub fn predict_all(
    net: &Network,
    x: &Tensor,
    chunk: usize,
    mut tick: impl FnMut(usize),
) -> Result<Vec<u32>> {
    let n = x.dims()[0];
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        out.extend(net.predict(&x.narrow(0, start, len)?)?);
        start += len;
        tick(len);
    }
    Ok(out)
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
