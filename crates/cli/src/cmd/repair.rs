//! `netrepair repair`: fix what a network gets wrong with a provable LP-based method, export
//! the repaired network as a drop-in ONNX replacement and report what changed.
//!
//! Exit codes: 0 every item repaired and confirmed by the independent re-check ("proved"),
//! 1 no repair found or not every item confirmed, 2 error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use netrepair_experiments::cli::methods::{
    gradient_method, layer_method, layer_search, lp_method, mm_method, refuse_unread_flags,
    GradientArgs, LpArgs, MethodName, WarmArgs,
};
use netrepair_nn::Network;
use netrepair_repair::{
    affine_layers, resolve_layer, Informed, LabelledSet, LpDump, Repair, RepairContext, RepairItem,
    RepairOutcome, RepairProblem, WarmStart,
};
use netrepair_repair::{
    check_certificate_dir, finish_warm_start, proved_by_fine_tuning, write_certificate,
};
use netrepair_spec::read_vnnlib;
use netrepair_verify::{CheckOptions, PgdOptions};
use serde::Serialize;

use crate::util;
use netrepair_experiments::cli::global::{reglo_problem, GlobalArgs};
use netrepair_experiments::cli::keep::{self, Keep, KeepArgs, KeepSource};
use netrepair_experiments::cli::points::{
    labelled_npy, misclassified, read_polytopes, PointSource,
};

/// Repair a network so that given points, polytopes or VNN-LIB properties hold, provably.
///
/// Repair items come from --inputs/--labels (labelled points), --misclassified (points a data
/// split gets wrong), --spec (VNN-LIB properties) and --polytopes (JSON); they can be mixed.
/// The edited parameters are the weight of the start layer (--layer) and the biases of it and
/// every later Linear/Conv layer. The result is re-checked independently (f64 forward pass for
/// points and polytopes, the sound verifier for properties) before it is called proved.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The network (ONNX).
    #[arg(long)]
    net: PathBuf,
    /// Repair method.
    #[arg(long, value_enum, default_value = "aprnn")]
    method: MethodName,
    /// Start layer: an index among the Linear/Conv layers (0 = first, -1 = last), a node name,
    /// "auto" or "auto=HEURISTIC". "auto" with a validation slice (drawn with the keep set
    /// from --dataset/--keep-data) repairs at every layer, from the last backwards (each LP
    /// limited to --lp-timeout, default 300 s), and keeps the proved one with the least
    /// drawdown on the slice; every layer tried is reported. Without a slice, and with
    /// "auto=HEURISTIC", the layers are tried in the order a layer-selection heuristic scores
    /// them (see `netrepair analyze`) until one is proved (points), or from the last layer
    /// backwards (properties).
    #[arg(long, default_value = "-1", allow_hyphen_values = true)]
    layer: String,
    #[command(flatten)]
    points: PointSource,
    #[command(flatten)]
    global: GlobalArgs,
    /// A VNN-LIB property that must hold after the repair (repeatable).
    #[arg(long)]
    spec: Vec<PathBuf>,
    /// V-polytopes (JSON): [{"vertices": [[...], ...], "label": 3}] or with "lower"/"upper"
    /// output bounds instead of "label".
    #[arg(long)]
    polytopes: Option<PathBuf>,
    #[command(flatten)]
    keep: KeepArgs,
    /// Where to write the repaired network (ONNX; never over the input).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where to write the report (JSON).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Also write a certificate to this new folder: a VNN-COMP benchmark (the repaired ONNX,
    /// one VNN-LIB property per proved point, property case and kept property, an
    /// instances.csv and a README) that any VNN-COMP verifier can re-check, e.g.
    /// `netrepair verify --instances DIR/instances.csv`. Needs --out.
    #[arg(long)]
    certificate: Option<PathBuf>,
    /// REGLO: the largest allowed change of the output over the region (required). Only REGLO
    /// takes it; the LP methods' requirement margin is --lp-margin.
    #[arg(long)]
    eps: Option<f64>,
    /// Time limit of the verifier for each property re-check, seconds.
    #[arg(long, default_value_t = 60.0)]
    verify_timeout: f64,
    /// With --misclassified: also keep this many correctly classified samples of the same
    /// split (spread over the classes); the gradient methods' correct set of seed 001's
    /// protocol. They join the keep set.
    #[arg(long)]
    correct_size: Option<usize>,
    /// Gradient methods: seed (random locking).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    lp: LpArgs,
    #[command(flatten)]
    warm: WarmArgs,
    #[command(flatten)]
    gradient: GradientArgs,
}

/// The repair items and the points --correct-size draws from the repair split.
fn problem(a: &RepairArgs, net: &Network) -> Result<(RepairProblem, LabelledSet)> {
    let mut items = Vec::new();
    let mut correct = LabelledSet::default();
    if let (Some(xp), Some(lp)) = (&a.points.inputs, &a.points.labels) {
        let (flat, labels) = labelled_npy(net, xp, lp)?;
        items.extend(
            RepairProblem::from_labels(&flat, &labels, net.input_len(), net.output_len())
                .with_context(|| format!("repair set {}", xp.display()))?
                .items,
        );
    }
    if let Some(n) = a.points.misclassified {
        let (p, c) = misclassified(&a.points, a.correct_size, net, n)?;
        items.extend(p.items);
        correct = c;
    } else if a.correct_size.is_some() {
        bail!("--correct-size draws the correct set from --misclassified's data set; give --correct-inputs/--correct-labels otherwise");
    }
    for path in &a.spec {
        let property = read_vnnlib(path)
            .with_context(|| format!("cannot read property {}", path.display()))?;
        items.push(RepairItem::Property {
            name: path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            property,
        });
    }
    if let Some(p) = &a.polytopes {
        items.extend(read_polytopes(p, net.output_len())?);
    }
    if items.is_empty() {
        bail!("nothing to repair: give --inputs/--labels, --misclassified, --spec or --polytopes");
    }
    let problem = RepairProblem::new(items);
    problem.validate(net.input_len(), net.output_len())?;
    Ok((problem, correct))
}

/// Training samples of the warm-start candidate `--layer auto` adds (`--warm-start`).
const DEFAULT_WARM_START: usize = 10_000;

/// The LP time limit `--layer auto` gives each layer it tries when --lp-timeout is not set.
const AUTO_LAYER_LP_LIMIT_S: f64 = 300.0;

/// Writes the network and checks the file holds exactly the parameters that were verified.
fn export(repaired: &Network, out: &Path) -> Result<()> {
    netrepair_nn::save_onnx(repaired, out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let back = util::load_net(out)?;
    for id in repaired.param_ids() {
        let (a, b) = (repaired.param(id)?.to_vec()?, back.param(id)?.to_vec()?);
        if a != b {
            bail!(
                "the exported file stores parameter '{}' differently from the verified network",
                repaired.param(id)?.name()
            );
        }
    }
    Ok(())
}

/// The keep set's lines of the summary.
fn print_keep(r: &RepairOutcome, source: &KeepSource) {
    let Some(k) = &r.keep else {
        if source.source == "none" && r.global().is_empty() {
            println!("keep set: none (nothing protects other inputs: give --dataset or --keep to keep correctly classified samples)");
        }
        return;
    };
    println!(
        "keep set ({}{}): {} of {} kept points classified as labelled after the repair (before: {})",
        source.source,
        source
            .dataset
            .as_ref()
            .map_or(String::new(), |d| format!(", {d}")),
        k.correct_after,
        k.points,
        k.correct_before
    );
    if k.regions > 0 {
        println!(
            "  kept regions: {} of {} proved after the repair",
            k.regions_proved, k.regions
        );
        for d in &k.regions_detail {
            println!("    {d}");
        }
    }
}

/// The JSON report (`--report`, `--json`): the outcome's fields, then what the command adds.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    outcome: &'a RepairOutcome,
    /// The network repaired.
    network: &'a Path,
    /// The repaired network's file (`null` when none was written).
    output: Option<&'a Path>,
    /// The certificate folder (`--certificate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<CertificateReport<'a>>,
    /// REGLO: the seed's metric names at the top level (the first global item, after).
    #[serde(rename = "VB", skip_serializing_if = "Option::is_none")]
    vb: Option<f64>,
    #[serde(rename = "PGD_B", skip_serializing_if = "Option::is_none")]
    pgd_b: Option<f64>,
    #[serde(rename = "PGD_R", skip_serializing_if = "Option::is_none")]
    pgd_r: Option<f64>,
    /// Where the keep set came from.
    keep_source: &'a KeepSource,
}

/// What `--certificate` wrote.
#[derive(Serialize)]
struct CertificateReport<'a> {
    /// The folder (`null` when nothing proved could be stated in VNN-LIB).
    folder: Option<&'a Path>,
    properties: usize,
    left_out: &'a [String],
}

pub fn run(a: &RepairArgs, given: &clap::ArgMatches) -> Result<u8> {
    refuse_unread_flags(a.method, given)?;
    // Every file the repair reads; what it writes must be none of them, and writable now
    // rather than after a long repair.
    let inputs: Vec<&Path> = std::iter::once(a.net.as_path())
        .chain(a.points.inputs.as_deref())
        .chain(a.points.labels.as_deref())
        .chain(a.spec.iter().map(PathBuf::as_path))
        .chain(a.polytopes.as_deref())
        .chain(a.keep.keep.as_deref())
        .chain(a.keep.keep_labels.as_deref())
        .collect();
    for out in a.out.iter().chain(&a.report) {
        util::check_output(out, &inputs)?;
    }
    if let (Some(out), Some(rep)) = (&a.out, &a.report) {
        if out == rep {
            bail!("--out and --report name the same file {}", out.display());
        }
    }
    if let Some(dir) = &a.certificate {
        if a.out.is_none() {
            bail!(
                "--certificate needs --out (the certificate holds the repaired network as written)"
            );
        }
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        if inputs.iter().any(|i| canon(i).starts_with(canon(dir))) {
            bail!(
                "the certificate folder {} holds an input file (give a new folder)",
                dir.display()
            );
        }
        check_certificate_dir(dir)?;
    }
    let net = util::load_net(&a.net)?;
    let mut reglo = None;
    let (problem, correct) = if a.method == MethodName::Reglo {
        if a.points.inputs.is_some()
            || a.points.misclassified.is_some()
            || !a.spec.is_empty()
            || a.polytopes.is_some()
        {
            bail!("--method reglo repairs one global property (--fairness or --global-robustness); --inputs, --misclassified, --spec and --polytopes are for the other methods");
        }
        let (p, mut r) =
            reglo_problem(&a.global, a.eps, &a.points, a.seed, a.verify_timeout, &net)?;
        if let Some(m) = a.lp.lp_method {
            r.lp_method = Some(lp_method(m));
        }
        r.lp_time_limit = a.lp.lp_timeout.map(Duration::from_secs_f64);
        reglo = Some(r);
        if a.keep.keep.is_some() {
            bail!("--method reglo keeps the decisions of --dataset samples (--keep-samples N, --no-keep), not a --keep file");
        }
        (p, LabelledSet::default())
    } else {
        if a.global.fairness || a.global.global_robustness {
            bail!("--fairness and --global-robustness need --method reglo");
        }
        if a.eps.is_some() {
            bail!("--eps is REGLO's bound on the output change; the LP methods' requirement margin is --lp-margin");
        }
        problem(a, &net)?
    };
    let Keep {
        set: keep_set,
        validation,
        source: keep_source,
    } = if reglo.is_some() {
        // REGLO's keep set (the decisions of --dataset samples) is already in the problem.
        keep::reglo(&a.keep, &a.points, &problem.keep)
    } else {
        keep::build(
            &a.keep,
            &a.points,
            &net,
            correct,
            reglo.is_none(),
            &problem
                .items
                .iter()
                .filter_map(|i| match i {
                    RepairItem::Point { x, .. } => Some(x.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )?
    };
    let problem = problem.with_keep(keep_set);
    if reglo.is_none() {
        problem.validate(net.input_len(), net.output_len())?;
    }
    if !problem.keep.regions.is_empty() && a.method == MethodName::Aprnn {
        bail!("APRNN keeps points only; kept regions need --method prepared");
    }
    let affine = affine_layers(&net);
    // Methods that are not pointed at a start layer.
    let any_layer = a.method.is_gradient() || reglo.is_some() || a.method == MethodName::Mm;
    // `--layer auto` with a validation slice and a point problem: try every layer, keep the
    // proved one with the least drawdown on the slice.
    let rank_layers = a.layer == "auto" && !validation.is_empty() && !any_layer;
    let search = if any_layer {
        None
    } else {
        layer_search(&a.layer, rank_layers.then_some(&validation), a.seed)?
    };
    let layer = match (any_layer, &search) {
        (false, None) => Some(resolve_layer(&net, &a.layer)?),
        _ => None,
    };
    let pb = std::sync::Arc::new(crate::util::Status::new());
    let pb2 = pb.clone();
    let ctx = RepairContext {
        check: CheckOptions {
            timeout: Duration::from_secs_f64(a.verify_timeout.max(0.001)),
            pgd: PgdOptions::default(),
            ..CheckOptions::default()
        },
        progress: Some(Box::new(move |m: &str| pb2.say(m))),
        lp_dump: a.lp.dump_lp.as_ref().map(LpDump::new).transpose()?,
    };
    // The warm start: under `--layer auto` one more candidate (fine-tune, then the last
    // layer's LP); with a given layer, fine-tune once and repair the fine-tuned network. The
    // outcome is re-checked from the original network either way.
    let started = std::time::Instant::now();
    let warm_n = match a.warm.warm_start {
        Some(n) => n,
        None if rank_layers => DEFAULT_WARM_START,
        None => 0,
    };
    let warm_train = if warm_n > 0 {
        pb.say(&format!("drawing {warm_n} samples for the warm start"));
        Some(keep::draw_training(&a.keep, &a.points, &net, warm_n)?)
    } else {
        None
    };
    let warm_options = a.warm.options(a.seed);
    let warm = match (&warm_train, rank_layers) {
        (Some(train), false) => {
            pb.say(&format!("warm start on {} samples", train.len()));
            Some(warm_options.fine_tune(&net, &problem, train, &ctx)?)
        }
        _ => None,
    };
    // A fine-tuned network that already passes the re-check needs no LP stage.
    let warm_proved = match &warm {
        Some((tuned, report)) => {
            pb.say("re-checking the fine-tuned network");
            proved_by_fine_tuning(&net, tuned, report, &problem, &ctx, started)?
        }
        None => None,
    };
    let base = warm.as_ref().map_or(&net, |(tuned, _)| tuned);
    let best = if warm_proved.is_some() {
        None
    } else {
        let m: Box<dyn Repair> = if let Some(r) = &reglo {
            Box::new(r.clone())
        } else if a.method.is_gradient() {
            gradient_method(a.method, &a.gradient, a.seed, &validation)?
        } else if a.method == MethodName::Mm {
            mm_method(&a.lp)?
        } else if let Some(search) = search {
            let limit = if rank_layers {
                a.lp.lp_timeout.or(Some(AUTO_LAYER_LP_LIMIT_S))
            } else {
                a.lp.lp_timeout
            };
            let at = layer_method(a.method, &a.lp, limit)?;
            let mut extra: Vec<(usize, Box<dyn Repair>)> = Vec::new();
            if let (Some(train), true) = (warm_train, rank_layers) {
                let last = *affine
                    .last()
                    .context("the network has no affine layer to edit")?;
                extra.push((
                    last,
                    Box::new(WarmStart {
                        train,
                        options: warm_options.clone(),
                        then: at.at_layer(last),
                    }),
                ));
            }
            Box::new(Informed {
                method: at,
                search,
                extra,
            })
        } else {
            let node = layer.context("a start layer")?;
            pb.say(&format!(
                "{} at '{}'",
                a.method.label(),
                net.nodes()[node].name()
            ));
            layer_method(a.method, &a.lp, a.lp.lp_timeout)?.at_layer(node)
        };
        Some(m.repair(base, &problem, &ctx)?)
    };
    pb.finish();
    let r = match (warm_proved, warm) {
        (Some(r), _) => r,
        (None, Some((_, report))) => {
            let r = best.expect("at least one layer tried");
            finish_warm_start(&net, report, r, &problem, &ctx, started)?
        }
        (None, None) => best.expect("at least one layer tried"),
    };
    let wrote = match (&a.out, r.status) {
        (
            Some(out),
            netrepair_repair::RepairStatus::Proved | netrepair_repair::RepairStatus::Unconfirmed,
        ) => {
            export(&r.network, out)?;
            Some(out.clone())
        }
        _ => None,
    };
    let certified = match (&a.certificate, &wrote) {
        (Some(dir), Some(onnx)) => Some((dir, write_certificate(dir, &problem, &r, onnx, &a.net)?)),
        _ => None,
    };
    let global = r.global().first();
    let report = Report {
        outcome: &r,
        network: &a.net,
        output: wrote.as_deref(),
        certificate: certified.as_ref().map(|(dir, w)| CertificateReport {
            folder: (w.properties > 0).then_some(dir.as_path()),
            properties: w.properties,
            left_out: &w.left_out,
        }),
        vb: global.map(|g| g.vb_after),
        pgd_b: global.map(|g| g.pgd_b_after),
        pgd_r: global.map(|g| g.pgd_r_after),
        keep_source: &keep_source,
    };
    if let Some(path) = &a.report {
        let tmp = tempfile::NamedTempFile::new_in(
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?;
        serde_json::to_writer_pretty(tmp.as_file(), &report)?;
        tmp.persist(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", r.summary(affine.len()));
        print_keep(&r, &keep_source);
        match (&wrote, &a.out) {
            (Some(p), _) => println!(
                "wrote {} (its parameters re-read and identical to the re-checked network)",
                p.display()
            ),
            (None, Some(p)) => println!("{} not written: no repaired network", p.display()),
            _ => {}
        }
        match (&certified, &a.certificate) {
            (Some((dir, w)), _) if w.properties == 0 => {
                println!(
                    "certificate {} not written: nothing proved can be stated in VNN-LIB",
                    dir.display()
                );
                for l in &w.left_out {
                    println!("  {l}");
                }
            }
            (Some((dir, w)), _) => {
                println!(
                    "certificate: {} VNN-LIB properties in {} (check: netrepair verify --instances {})",
                    w.properties,
                    dir.display(),
                    dir.join("instances.csv").display()
                );
                for l in &w.left_out {
                    println!("  not in the certificate: {l}");
                }
            }
            (None, Some(dir)) => println!("{} not written: no repaired network", dir.display()),
            _ => {}
        }
    }
    Ok(if r.proved { 0 } else { 1 })
}
