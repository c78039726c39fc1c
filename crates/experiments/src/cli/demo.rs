//! `netrepair demo`: the end-to-end showcase on an embedded default (no data files needed).
//!
//! Generate make_moons, train a deliberately under-trained MLP, save it as ONNX, reload it and
//! check the round trip, list its misclassified points, repair them with APRNN (proved, re-checked
//! in f64), make boxes around test errors provably correct with PREPARED, make the network
//! globally robust over the plane with REGLO (eps on probabilities, decisions kept), and draw
//! the decision regions before and after.

use std::path::PathBuf;

use crate::keep::labelled;
use crate::plot::{decision_boundaries, LabelledPoint, Panel};
use crate::training::{accuracy, tensors, train_preset, Preset, TrainRequest};
use anyhow::{ensure, Context, Result};
use clap::Args;
use netrepair_repair::{
    affine_layers, decision_keep_set, Aprnn, GradientRepair, ItemStatus, KeepSet, LabelledSet,
    LpRepairOptions, Prepared, Reglo, Repair, RepairContext, RepairItem, RepairOutcome,
    RepairProblem, WarmOptions, WarmStart,
};
use netrepair_spec::{
    BoxRegion, Case, GlobalProperty, LinearConstraint, OutputMeasure, Perturbation, Polytope,
    Property,
};
use serde_json::json;

use super::args as util;
use netrepair_data::npy;

/// "Every input within `radius` (L-inf) of `center` is classified `label`" as a property.
fn local_robustness(
    center: &[f64],
    radius: f64,
    label: usize,
    classes: usize,
) -> Result<RepairItem> {
    let input = BoxRegion::new(
        center.iter().map(|c| c - radius).collect(),
        center.iter().map(|c| c + radius).collect(),
    )?;
    let unsafe_region = (0..classes)
        .filter(|&j| j != label)
        .map(|j| Polytope {
            constraints: vec![LinearConstraint {
                coeffs: vec![(label, 1.0), (j, -1.0)],
                rhs: 0.0,
            }],
        })
        .collect();
    Ok(RepairItem::Property {
        name: format!("robust around {center:.3?}"),
        property: Property {
            num_inputs: center.len(),
            num_outputs: classes,
            cases: vec![Case {
                input,
                unsafe_region,
            }],
        },
    })
}

/// End-to-end showcase on generated data: train, find errors, prepare the repair.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo's files (network, repair set).
    #[arg(long, default_value = "netrepair-demo")]
    out_dir: PathBuf,
    /// Seed of the data, the initialisation and the training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of make_moons points (2/3 train, 1/3 test).
    #[arg(long, default_value_t = 300)]
    samples: usize,
    /// make_moons noise.
    #[arg(long, default_value_t = 0.25)]
    noise: f64,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the demo: every step printed (or one JSON object with `--json`), files in `--out-dir`.
pub fn run(a: &DemoArgs) -> Result<()> {
    let say = |s: String| {
        if !a.json {
            println!("{s}");
        }
    };
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("cannot create {}", a.out_dir.display()))?;
    let preset = Preset::MoonsMlp;
    let req = TrainRequest {
        seed: a.seed,
        moons_samples: Some(a.samples),
        moons_noise: Some(a.noise),
        ..Default::default()
    };
    let data = preset.data(None, &req)?;
    say(format!(
        "1. data: make_moons, {} points with noise {} (seed {}): {} train, {} test",
        a.samples,
        a.noise,
        a.seed,
        data.train.len(),
        data.test.len()
    ));
    let cfg = preset.config(&req);
    let trained = train_preset(preset, &data, &req, |_, _| {}, |_| {})?;
    say(format!(
        "2. trained a 2-16-16-2 ReLU MLP for only {} epochs (under-trained on purpose) in {:.2} s: train accuracy {:.1}%, test accuracy {:.1}%",
        cfg.epochs,
        trained.seconds,
        100.0 * trained.train_accuracy,
        100.0 * trained.test_accuracy
    ));

    let net_path = a.out_dir.join("moons_mlp.onnx");
    netrepair_nn::save_onnx(&trained.net, &net_path)?;
    let reloaded = util::load_net(&net_path)?;
    let (x, _) = tensors(&trained.net, &data.test)?;
    let gap = (trained.net.forward_f64(&x)? - reloaded.forward_f64(&x)?)?
        .abs()?
        .max_all()?
        .to_scalar::<f64>()?;
    let reloaded_acc = accuracy(&reloaded, &data.test)?;
    ensure!(gap < 1e-4, "ONNX round trip changed the outputs by {gap}");
    say(format!(
        "3. saved {} and reloaded it: outputs agree within {gap:.1e} (float32 storage), test accuracy {:.1}%",
        net_path.display(),
        100.0 * reloaded_acc
    ));

    let (xt, yt) = tensors(&reloaded, &data.train)?;
    let pred = reloaded.predict(&xt)?;
    let wrong: Vec<usize> = (0..yt.len()).filter(|&i| pred[i] != yt[i]).collect();
    say(format!(
        "4. the network misclassifies {} of {} training points:",
        wrong.len(),
        yt.len()
    ));
    if !a.json {
        println!(
            "   {:>5} {:>9} {:>9} {:>6} {:>10}",
            "index", "x", "y", "label", "predicted"
        );
        for &i in wrong.iter().take(15) {
            let p = data.train.sample(i);
            println!(
                "   {:>5} {:>9.4} {:>9.4} {:>6} {:>10}",
                i, p[0], p[1], yt[i], pred[i]
            );
        }
        if wrong.len() > 15 {
            println!("   ... and {} more", wrong.len() - 15);
        }
    }
    let xs: Vec<f32> = wrong
        .iter()
        .flat_map(|&i| data.train.sample(i).to_vec())
        .collect();
    let ls: Vec<i64> = wrong.iter().map(|&i| i64::from(yt[i])).collect();
    let (xp, lp) = (
        a.out_dir.join("repair_inputs.npy"),
        a.out_dir.join("repair_labels.npy"),
    );
    npy::write_f32(&xp, &[wrong.len(), 2], &xs)?;
    npy::write_i64(&lp, &[wrong.len()], &ls)?;
    say(format!(
        "5. saved the repair set: {} and {}",
        xp.display(),
        lp.display()
    ));
    // 6. Repair the training errors with APRNN at every layer; keep the proved repair that
    // keeps the most training accuracy (the layer choice matters: seed 000).
    let problem = RepairProblem::from_labels(
        &xs.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
        &ls.iter().map(|&l| l as usize).collect::<Vec<_>>(),
        2,
        2,
    )?;
    let ctx = RepairContext::default();
    // The keep set: the correctly classified training points, each of which must keep its
    // class (the LP holds it by a margin) and move its outputs as little as possible.
    let correct_idx: Vec<usize> = (0..yt.len()).filter(|&i| pred[i] == yt[i]).collect();
    let keep = labelled(&data.train, &correct_idx);
    let kept_problem = problem.clone().with_keep(KeepSet::points(keep.clone()));
    let (kxp, klp) = (
        a.out_dir.join("keep_inputs.npy"),
        a.out_dir.join("keep_labels.npy"),
    );
    let kx: Vec<f32> = correct_idx
        .iter()
        .flat_map(|&i| data.train.sample(i).to_vec())
        .collect();
    npy::write_f32(&kxp, &[correct_idx.len(), 2], &kx)?;
    npy::write_i64(
        &klp,
        &[correct_idx.len()],
        &correct_idx
            .iter()
            .map(|&i| i64::from(yt[i]))
            .collect::<Vec<_>>(),
    )?;
    let before_train = accuracy(&reloaded, &data.train)?;
    say(format!(
        "6. APRNN repairs of the {} errors at each start layer, without and with the keep set (the {} correct training points, each held to its class); accuracy before: train {:.1}%, test {:.1}%:",
        wrong.len(),
        keep.len(),
        100.0 * before_train,
        100.0 * reloaded_acc
    ));
    say(format!(
        "   {:<6} {:<8} {:<10} {:>8} {:>10} {:>10} {:>10} {:>8}",
        "layer", "keep", "result", "changed", "Linf", "train acc", "test acc", "time"
    ));
    let mut repaired: Option<(RepairOutcome, f64)> = None;
    for &layer in affine_layers(&reloaded).iter().rev() {
        for with_keep in [false, true] {
            let method = Aprnn {
                lp: LpRepairOptions {
                    layer: Some(layer),
                    ..Aprnn::default().lp
                },
                ..Aprnn::default()
            };
            let p = if with_keep { &kept_problem } else { &problem };
            let r = method.repair(&reloaded, p, &ctx)?;
            let (tr, te) = (
                accuracy(&r.network, &data.train)?,
                accuracy(&r.network, &data.test)?,
            );
            say(format!(
                "   {:<6} {:<8} {:<10} {:>8} {:>10.3} {:>9.1}% {:>9.1}% {:>7.2}s",
                r.layer,
                if with_keep { "yes" } else { "no" },
                if r.proved { "proved" } else { "no repair" },
                r.param_delta.changed,
                r.param_delta.linf,
                100.0 * tr,
                100.0 * te,
                r.time_s
            ));
            if r.proved && repaired.as_ref().is_none_or(|(_, best)| tr > *best) {
                repaired = Some((r, tr));
            }
        }
    }
    // The warm start: fine-tune on the correct training points and the errors, then the
    // last layer's LP proves what the fine-tuning reached (whole network moved), unless the
    // fine-tuned network already passes the re-check.
    {
        let warm = WarmStart {
            train: keep.clone(),
            options: WarmOptions {
                lr: 1e-2,
                ..WarmOptions::default()
            },
            then: Box::new(Aprnn::default()),
        };
        let r = warm.repair(&reloaded, &kept_problem, &ctx)?;
        let (tr, te) = (
            accuracy(&r.network, &data.train)?,
            accuracy(&r.network, &data.test)?,
        );
        say(format!(
            "   {:<6} {:<8} {:<10} {:>8} {:>10.3} {:>9.1}% {:>9.1}% {:>7.2}s  (warm start: fine-tuned {} steps, {})",
            "all",
            "yes",
            if r.proved { "proved" } else { "no repair" },
            r.param_delta.changed,
            r.param_delta.linf,
            100.0 * tr,
            100.0 * te,
            r.time_s,
            r.warm_start.as_ref().map_or(0, |w| w.steps),
            if r.lp.is_empty() {
                "no LP needed: the fine-tuned network passed the re-check"
            } else {
                "then the last layer's LP"
            }
        ));
        if r.proved && repaired.as_ref().is_none_or(|(_, best)| tr > *best) {
            repaired = Some((r, tr));
        }
    }
    // 6b. The gradient methods on the same errors, from a small correct set (I-REPAIR's
    // setting): no guarantee beyond the re-checked points.
    let mut correct = LabelledSet::default();
    for c in 0..2u32 {
        for i in (0..yt.len())
            .filter(|&i| yt[i] == c && pred[i] == c)
            .take(20)
        {
            correct
                .inputs
                .push(data.train.sample(i).iter().map(|&v| f64::from(v)).collect());
            correct.labels.push(c as usize);
        }
    }
    say(format!(
        "   gradient repairs of the same errors from a {}-point correct set (no guarantee beyond the points):",
        correct.len()
    ));
    let small_keep = problem.clone().with_keep(KeepSet::points(correct.clone()));
    for mut m in [GradientRepair::irepair(1.0), GradientRepair::finetune()] {
        m.options.lr = 1e-2;
        let r = m.repair(&reloaded, &small_keep, &ctx)?;
        let steps = r.training().map_or(0, |t| t.iterations);
        say(format!(
            "   {:<15} {:<10} {:>8} {:>10.3} {:>9.1}% {:>9.1}% {:>7.2}s  ({steps} steps)",
            m.name(),
            if r.proved {
                "all fixed".to_string()
            } else {
                format!("{}/{} fixed", r.count(ItemStatus::Repaired), r.items.len())
            },
            r.param_delta.changed,
            r.param_delta.linf,
            100.0 * accuracy(&r.network, &data.train)?,
            100.0 * accuracy(&r.network, &data.test)?,
            r.time_s
        ));
    }
    let (repaired, _) = repaired.context("APRNN found no repair at any layer")?;
    let repaired_path = a.out_dir.join("moons_mlp_repaired.onnx");
    netrepair_nn::save_onnx(&repaired.network, &repaired_path)?;
    let report_path = a.out_dir.join("repair_report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&repaired)?)?;
    let after = util::load_net(&repaired_path)?;
    let (acc_train, acc_test) = (
        accuracy(&after, &data.train)?,
        accuracy(&after, &data.test)?,
    );
    say(format!(
        "   kept the repair at '{}' (the proved one with the best training accuracy): every error fixed and re-checked in f64; {} parameters changed ({})",
        repaired.layer,
        repaired.param_delta.changed,
        repaired.param_delta.params.iter().map(|p| p.param.as_str()).collect::<Vec<_>>().join(", "),
    ));
    say(format!(
        "   saved {} and {}",
        repaired_path.display(),
        report_path.display()
    ));
    // 6c. What was proved, as a VNN-COMP benchmark any verifier can re-check.
    let cert_dir = a.out_dir.join("certificate");
    if cert_dir.exists() {
        // The demo's own folder from an earlier run.
        std::fs::remove_dir_all(&cert_dir)
            .with_context(|| format!("cannot replace {}", cert_dir.display()))?;
    }
    let w = netrepair_repair::write_certificate(
        &cert_dir,
        &kept_problem,
        &repaired,
        &repaired_path,
        &net_path,
    )?;
    let (cert_n, cert_proved) = netrepair_repair::recheck_certificate(&cert_dir)?;
    ensure!(
        cert_n == w.properties && cert_proved == cert_n,
        "the certificate's properties do not all hold: {cert_proved} of {cert_n}"
    );
    say(format!(
        "   certificate: {cert_n} VNN-LIB properties (one per fixed error) in {} for any VNN-COMP verifier; re-read from the folder and verified: {cert_proved} of {cert_n} hold (netrepair verify --instances {})",
        cert_dir.display(),
        cert_dir.join("instances.csv").display()
    ));

    // 7. PREPARED: make small boxes around test errors provably correct (not just the points).
    let (xe, ye) = tensors(&after, &data.test)?;
    let pe = after.predict(&xe)?;
    let radius = 0.03;
    let boxes: Vec<usize> = (0..ye.len()).filter(|&i| pe[i] != ye[i]).take(3).collect();
    let mut edited = None;
    if !boxes.is_empty() {
        let items = boxes
            .iter()
            .map(|&i| {
                let c: Vec<f64> = data.test.sample(i).iter().map(|&v| f64::from(v)).collect();
                local_robustness(&c, radius, ye[i] as usize, 2)
            })
            .collect::<Result<Vec<_>>>()?;
        // Keep: the training points the repaired network gets right.
        let (xt, _) = tensors(&after, &data.train)?;
        let pt = after.predict(&xt)?;
        let right: Vec<usize> = (0..yt.len()).filter(|&i| pt[i] == yt[i]).collect();
        let keep_after = labelled(&data.train, &right);
        let problem = RepairProblem::new(items).with_keep(KeepSet::points(keep_after));
        let r = Prepared::default().repair(&after, &problem, &ctx)?;
        say(format!(
            "7. PREPARED: the boxes of radius {radius} around {} test errors must be classified correctly, keeping the {} training points it gets right: {} ({:.2} s); test accuracy {:.1}% -> {:.1}%",
            boxes.len(),
            problem.keep.points.len(),
            if r.proved { "proved by the verifier".to_string() } else { r.message.clone() },
            r.time_s,
            100.0 * acc_test,
            100.0 * accuracy(&r.network, &data.test)?
        ));
        edited = Some(r);
    }

    // 8. REGLO: global robustness over the whole plotted plane, eps on probabilities.
    let plane = BoxRegion::new(vec![-1.5, -1.0], vec![2.5, 1.5])?;
    let global = GlobalProperty::new(plane, Perturbation::Linf { delta: 0.05 }, 0.05)?
        .with_measure(OutputMeasure::Probabilities);
    let train_rows: Vec<Vec<f64>> = (0..data.train.len())
        .map(|i| data.train.sample(i).iter().map(|&v| f64::from(v)).collect())
        .collect();
    let problem = RepairProblem::new(vec![RepairItem::Global {
        name: "global robustness".into(),
        property: global,
    }])
    .with_keep(decision_keep_set(&after, train_rows)?);
    let reglo = Reglo {
        samples: 300,
        eval_points: 300,
        ..Reglo::default()
    };
    let g = reglo.repair(&after, &problem, &ctx)?;
    let gr = &g.global()[0];
    say(format!(
        "8. REGLO: no move of 0.05 anywhere in the plane may change a class probability by more than 0.05: VB {:.3} -> {:.4} ({}), PGD-B {:.3} -> {:.4}; {} of {} training decisions kept, test accuracy {:.1}% -> {:.1}% ({:.2} s)",
        gr.vb_before,
        gr.vb_after,
        if g.proved { "proved over the whole plane" } else { "not proved" },
        gr.pgd_b_before,
        gr.pgd_b_after,
        g.keep.as_ref().map_or(0, |k| k.correct_after),
        g.keep.as_ref().map_or(0, |k| k.points),
        100.0 * acc_test,
        100.0 * accuracy(&g.network, &data.test)?,
        g.time_s
    ));

    // 9. The picture.
    let mut points: Vec<LabelledPoint> = (0..data.train.len())
        .map(|i| {
            let p = data.train.sample(i);
            LabelledPoint {
                xy: (f64::from(p[0]), f64::from(p[1])),
                label: yt[i],
                marked: pred[i] != yt[i],
            }
        })
        .collect();
    points.extend(boxes.iter().map(|&i| {
        let p = data.test.sample(i);
        LabelledPoint {
            xy: (f64::from(p[0]), f64::from(p[1])),
            label: ye[i],
            marked: true,
        }
    }));
    let mut panels = vec![
        Panel {
            title: "original".into(),
            net: &reloaded,
        },
        Panel {
            title: format!("APRNN at {}", repaired.layer),
            net: &after,
        },
    ];
    if let Some(r) = &edited {
        panels.push(Panel {
            title: format!("+ PREPARED at {}", r.layer),
            net: &r.network,
        });
    }
    let plot = a.out_dir.join("decision_boundary.png");
    decision_boundaries(&plot, &panels, &points, (-1.5, 2.5), (-1.0, 1.5))?;
    say(format!(
        "9. decision regions before and after: {} (circled: the repaired points)",
        plot.display()
    ));
    say(format!(
        "\nthe same from the command line: netrepair repair --net {} --method aprnn --layer auto --inputs {} --labels {} --keep {} --keep-labels {} --out repaired.onnx --report report.json",
        net_path.display(),
        xp.display(),
        lp.display(),
        kxp.display(),
        klp.display()
    ));
    if a.json {
        let v = json!({
            "network": net_path, "train_accuracy": trained.train_accuracy, "test_accuracy": trained.test_accuracy,
            "round_trip_max_abs_diff": gap, "misclassified": wrong.len(), "train_samples": yt.len(),
            "repair_inputs": xp, "repair_labels": lp,
            "repair": serde_json::to_value(&repaired)?,
            "repaired_train_accuracy": acc_train, "repaired_test_accuracy": acc_test,
            "prepared": edited.as_ref().map(serde_json::to_value).transpose()?,
            "reglo": serde_json::to_value(&g)?,
            "certificate": {"folder": cert_dir, "properties": cert_n, "proved": cert_proved},
            "plot": plot,
        });
        println!("{v}");
    }
    Ok(())
}
