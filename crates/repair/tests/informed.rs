//! Informed repair: every layer-selection heuristic on a hand-made network whose right answer
//! is worked out in its comment, the brute-force oracle's ranking, the repair-set analysis and
//! incremental repair.

mod common;

use candle_core::{Device, Tensor};
use common::out;
use netrepair_nn::{mlp, Activation, Conv2d, Layer, Linear, Network, NetworkBuilder, Param};
use netrepair_repair::{
    affine_layers, analyse, best_layer, brute_force, score_layers, Aprnn, Difficulty, Heuristic,
    Incremental, Informed, KeepSet, LabelledSet, LayerSearch, Prepared, Repair, RepairContext,
    RepairProblem, RepairStatus, SelectionInput,
};

/// 2 -> fc1 -> ReLU -> fc2 -> ReLU -> fc3, each `W = scale * I` with bias `b`.
fn diag_net(layers: [(f64, f64); 3]) -> Network {
    let t = |v: Vec<f64>, d: &[usize]| Tensor::from_vec(v, d, &Device::Cpu).unwrap();
    let mut b = NetworkBuilder::new(vec![2]);
    for (i, (scale, bias)) in layers.iter().enumerate() {
        let name = format!("fc{}", i + 1);
        let lin = Linear::new(
            &name,
            t(vec![*scale, 0., 0., *scale], &[2, 2]),
            t(vec![*bias; 2], &[2]),
        )
        .unwrap();
        b.push(&name, Layer::Linear(lin)).unwrap();
        if i < 2 {
            b.push(format!("relu{}", i + 1), Layer::Relu).unwrap();
        }
    }
    b.build().unwrap()
}

fn choose(
    net: &Network,
    xs: &[Vec<f64>],
    h: Heuristic,
    perturbed: Option<&[Vec<f64>]>,
) -> (String, Vec<f64>) {
    let labels = vec![0; xs.len()];
    let s = score_layers(
        net,
        SelectionInput {
            inputs: xs,
            labels: &labels,
            perturbed,
            seed: 0,
        },
        h,
    )
    .unwrap();
    (s.layers[s.chosen].clone(), s.scores)
}

fn pts() -> Vec<Vec<f64>> {
    vec![vec![1.0, 2.0], vec![2.0, 1.0], vec![3.0, 3.0]]
}

#[test]
fn magnitude_and_variance_pick_different_layers_when_a_bias_inflates_one() {
    // fc1 = I + 1000: representation x + 1000, large but with the inputs' variance.
    // fc2 = 10 I - 10000: ReLU(10 (x + 1000) - 10000) = 10 x: 100x the variance.
    // fc3 = 0.1 I: x again.
    let net = diag_net([(1.0, 1000.0), (10.0, -10000.0), (0.1, 0.0)]);
    let (m, ms) = choose(&net, &pts(), Heuristic::ActivationMagnitude, None);
    assert_eq!(m, "fc1", "{ms:?}");
    assert!((ms[0] - 1002.0).abs() < 1e-9, "{ms:?}"); // mean of x + 1000 over (1,2),(2,1),(3,3)
    let (v, vs) = choose(&net, &pts(), Heuristic::ActivationVariance, None);
    assert_eq!(v, "fc2", "{vs:?}");
    // Per-unit variance of (1, 2, 3) is 2/3 for both units; fc2 scales it by 100.
    assert!(
        (vs[0] - 2.0 / 3.0).abs() < 1e-9 && (vs[1] - 200.0 / 3.0).abs() < 1e-6,
        "{vs:?}"
    );
}

#[test]
fn gradient_norm_picks_the_layer_whose_input_is_largest() {
    // fc1 = I, fc2 = 100 I, fc3 = 0.01 I at x ~ 1: h1 ~ 1, h2 ~ 100, y ~ 1. With d = dL/dy:
    // dW3 = d h2^T ~ 100 |d|, dW2 = (0.01 d) h1^T ~ 0.01 |d|, dW1 = (100 * 0.01 d) x^T ~ |d|.
    let net = diag_net([(1.0, 0.0), (100.0, 0.0), (0.01, 0.0)]);
    let (g, gs) = choose(&net, &pts(), Heuristic::GradientNorm, None);
    assert_eq!(g, "fc3", "{gs:?}");
    assert!(gs[2] > 50.0 * gs[0] && gs[0] > 50.0 * gs[1], "{gs:?}");
}

#[test]
fn activation_change_picks_the_layer_where_a_perturbation_matters_most() {
    // fc1 = I + 1000 and fc3 = I + 1000 hide a change of 0.5 behind a large offset; fc2 =
    // I - 1000 removes the offset (representation x), so the relative change is largest there.
    let net = diag_net([(1.0, 1000.0), (1.0, -1000.0), (1.0, 1000.0)]);
    let xs = pts();
    let moved: Vec<Vec<f64>> = xs
        .iter()
        .map(|x| x.iter().map(|v| v + 0.5).collect())
        .collect();
    let (c, cs) = choose(&net, &xs, Heuristic::ActivationChange, Some(&moved));
    assert_eq!(c, "fc2", "{cs:?}");
    // At (1, 2): |(0.5, 0.5)| / |(1, 2)|.
    let first = (0.5f64.powi(2) * 2.0).sqrt() / 5f64.sqrt();
    assert!(cs[1] > first * 0.5 && cs[0] < 1e-3, "{cs:?}");
    // The default perturbation (an FGSM step) also works without given copies.
    let (_, auto) = choose(&net, &xs, Heuristic::ActivationChange, None);
    assert!(auto.iter().all(|v| v.is_finite() && *v >= 0.0));
}

#[test]
fn similarity_picks_the_first_layer_that_maps_the_inputs_together() {
    // (1, 0) and (0, 1) are orthogonal after fc1 = I (cosine 0); fc2 = [[1, 1], [1, 1]] sends
    // both to (1, 1) (cosine 1), and so does everything after it.
    let t = |v: Vec<f64>, d: &[usize]| Tensor::from_vec(v, d, &Device::Cpu).unwrap();
    let mut b = NetworkBuilder::new(vec![2]);
    let lin = |n: &str, w: Vec<f64>| {
        Layer::Linear(Linear::new(n, t(w, &[2, 2]), t(vec![0.0; 2], &[2])).unwrap())
    };
    b.push("fc1", lin("fc1", vec![1., 0., 0., 1.])).unwrap();
    b.push("relu1", Layer::Relu).unwrap();
    b.push("fc2", lin("fc2", vec![1., 1., 1., 1.])).unwrap();
    b.push("relu2", Layer::Relu).unwrap();
    b.push("fc3", lin("fc3", vec![1., 0., 0., 2.])).unwrap();
    let net = b.build().unwrap();
    let (s, ss) = choose(
        &net,
        &[vec![1.0, 0.0], vec![0.0, 1.0]],
        Heuristic::Similarity,
        None,
    );
    assert_eq!(s, "fc2", "{ss:?}");
    assert!(ss[0].abs() < 1e-12 && (ss[1] - 1.0).abs() < 1e-12, "{ss:?}");
}

#[test]
fn position_rules_and_the_random_baseline() {
    // A CNN: conv -> relu -> flatten -> fc1 -> relu -> fc2 -> relu -> fc3.
    let t = |v: Vec<f64>, d: &[usize]| Tensor::from_vec(v, d, &Device::Cpu).unwrap();
    let mut b = NetworkBuilder::new(vec![1, 3, 3]);
    let conv = Conv2d::new(
        Param::new("conv.weight", t(vec![0.1; 2 * 4], &[2, 1, 2, 2])).unwrap(),
        Param::new("conv.bias", t(vec![0.0; 2], &[2])).unwrap(),
        1,
        1,
        [0, 0, 0, 0],
        1,
    )
    .unwrap();
    b.push("conv", Layer::Conv2d(conv)).unwrap();
    b.push("relu0", Layer::Relu).unwrap();
    b.push("flat", Layer::Flatten).unwrap();
    let lin = |n: &str, i: usize, o: usize| {
        Layer::Linear(Linear::new(n, t(vec![0.1; i * o], &[o, i]), t(vec![0.0; o], &[o])).unwrap())
    };
    b.push("fc1", lin("fc1", 8, 4)).unwrap();
    b.push("relu1", Layer::Relu).unwrap();
    b.push("fc2", lin("fc2", 4, 4)).unwrap();
    b.push("relu2", Layer::Relu).unwrap();
    b.push("fc3", lin("fc3", 4, 2)).unwrap();
    let cnn = b.build().unwrap();
    let x = vec![vec![0.5; 9]];
    assert_eq!(choose(&cnn, &x, Heuristic::FirstDense, None).0, "fc1");
    assert_eq!(choose(&cnn, &x, Heuristic::Penultimate, None).0, "fc2");
    let net = mlp(&[2, 4, 4, 4, 2], Activation::Relu, 1).unwrap();
    assert_eq!(choose(&net, &pts(), Heuristic::FirstDense, None).0, "fc1");
    assert_eq!(choose(&net, &pts(), Heuristic::Penultimate, None).0, "fc3");
    // `--layer auto` tries the layers in score order, ties later layer first.
    let labels3 = vec![0; 3];
    let pen = score_layers(
        &net,
        SelectionInput {
            inputs: &pts(),
            labels: &labels3,
            perturbed: None,
            seed: 0,
        },
        Heuristic::Penultimate,
    )
    .unwrap();
    assert_eq!(pen.order(), vec![2, 3, 1, 0]);
    // Random: reproducible per seed, and it does visit more than one layer.
    let labels = vec![0; 3];
    let pick = |seed| {
        score_layers(
            &net,
            SelectionInput {
                inputs: &pts(),
                labels: &labels,
                perturbed: None,
                seed,
            },
            Heuristic::Random,
        )
        .unwrap()
        .chosen
    };
    assert_eq!(pick(3), pick(3));
    let seen: std::collections::HashSet<usize> = (0..20).map(pick).collect();
    assert!(seen.len() > 1);
    // Every heuristic parses from its name; unknown names are named.
    for h in Heuristic::ALL {
        assert_eq!(h.name().parse::<Heuristic>().unwrap(), h);
    }
    assert!("magic"
        .parse::<Heuristic>()
        .unwrap_err()
        .to_string()
        .contains("activation-variance"));
}

/// A random MLP, points it misclassifies (labelled with the runner-up class) and a validation
/// set of points labelled with its own predictions.
fn mlp_case(n: usize) -> (Network, RepairProblem, LabelledSet) {
    let net = mlp(&[3, 12, 12, 3], Activation::Relu, 11).unwrap();
    let (mut xs, mut labels, mut val) = (Vec::new(), Vec::new(), LabelledSet::default());
    for s in 0..200u64 {
        let x: Vec<f64> = (0..3)
            .map(|j| ((s * 7919 + j * 104729) % 997) as f64 / 498.5 - 1.0)
            .collect();
        let y = out(&net, &x);
        let mut order: Vec<usize> = (0..3).collect();
        order.sort_by(|&a, &b| y[b].total_cmp(&y[a]));
        if xs.len() < n && s % 3 == 0 {
            xs.extend(x);
            labels.push(order[1]);
        } else {
            val.inputs.push(x);
            val.labels.push(order[0]);
        }
    }
    (
        net,
        RepairProblem::from_labels(&xs, &labels, 3, 3).unwrap(),
        val,
    )
}

#[test]
fn brute_force_ranks_proved_layers_first_then_validation_accuracy() {
    let (net, problem, val) = mlp_case(4);
    let bf = brute_force(
        &net,
        &problem,
        &Aprnn::default(),
        &val,
        &RepairContext::default(),
    )
    .unwrap();
    assert_eq!(bf.trials.len(), 3);
    assert_eq!(bf.accuracy_before, 1.0);
    let best = &bf.trials[bf.best];
    assert_eq!(best.status, RepairStatus::Proved);
    for t in &bf.trials {
        if t.status == RepairStatus::Proved {
            assert!(t.accuracy <= best.accuracy, "{bf:?}");
        }
    }
}

/// An informed repair of `problem` by APRNN with `search`.
fn informed(search: LayerSearch) -> Informed {
    Informed {
        method: Box::new(Aprnn::default()),
        search,
        extra: Vec::new(),
    }
}

#[test]
fn informed_ranking_keeps_the_proved_layer_with_the_least_drawdown_and_its_outcome() {
    let (net, problem, val) = mlp_case(4);
    let layers = affine_layers(&net);
    let ctx = RepairContext::default();
    let rank_all = |validation: &LabelledSet, max_params| {
        informed(LayerSearch::Rank {
            validation: validation.clone(),
            max_params,
        })
    };
    let outcome = rank_all(&val, usize::MAX)
        .repair(&net, &problem, &ctx)
        .unwrap();
    let search = outcome.layer_search.as_ref().unwrap();
    let rank = search.ranking.as_ref().unwrap();
    assert_eq!(search.tried.len(), layers.len());
    assert!(search.skipped.is_empty());
    assert_eq!(rank.validation, val.len());
    // From the output backwards.
    assert_eq!(search.tried[0].node, *layers.last().unwrap());
    let best = &search.tried[rank.best];
    assert_eq!(outcome.layer, best.layer);
    assert!(outcome.proved);
    // The outcome's network is the one the ranking measured.
    let acc = netrepair_repair::accuracy(&outcome.network, &val).unwrap();
    assert_eq!(acc, best.accuracy);
    for t in search
        .tried
        .iter()
        .filter(|t| t.status == RepairStatus::Proved)
    {
        assert!(t.accuracy <= best.accuracy, "{rank:?}");
    }
    // The report carries the search at the top level, each trial once.
    let v = serde_json::to_value(&outcome).unwrap();
    assert_eq!(v["layers_tried"].as_array().unwrap().len(), 3);
    assert!(v["layer_ranking"].get("trials").is_none());
    assert_eq!(v["layer_ranking"]["best"], rank.best);
    assert_eq!(v["layer_ranking"]["validation"], val.len());
    // The summary opens with the ranking, the kept layer starred.
    let text = outcome.summary(layers.len());
    assert!(
        text.starts_with("every layer tried, ranked by proof"),
        "{text}"
    );
    let starred: Vec<&str> = text.lines().filter(|l| l.starts_with("  * ")).collect();
    assert_eq!(starred.len(), 1, "{text}");
    assert!(starred[0].contains(&best.layer), "{text}");
    assert!(v.get("layers_skipped").is_none() && v.get("layer_selection").is_none());
    // With a keep set the same layers prove and none loses validation accuracy it keeps.
    let kept = problem.clone().with_keep(KeepSet::points(val.clone()));
    let outcome2 = rank_all(&val, usize::MAX)
        .repair(&net, &kept, &ctx)
        .unwrap();
    assert!(outcome2.proved);
    let search2 = outcome2.layer_search.unwrap();
    let best2 = search2.ranking.unwrap().best;
    assert!(search2.tried[best2].accuracy >= best.accuracy);
    // A size limit leaves out every layer but the last, and says so.
    let small = rank_all(&val, 0).repair(&net, &problem, &ctx).unwrap();
    let text = small.summary(layers.len());
    assert_eq!(text.matches(" not tried: ").count(), 2, "{text}");
    // The limit named is the one the search used (0 here), not the default.
    assert_eq!(text.matches("(more than 0: ").count(), 2, "{text}");
    let s = small.layer_search.unwrap();
    assert_eq!(s.tried.len(), 1);
    assert_eq!(s.tried[0].node, *layers.last().unwrap());
    assert_eq!(s.skipped.len(), 2);
    assert_eq!(
        s.skipped[0].params,
        net.nodes()[layers[1]].layer().param_count()
    );
    // No candidate: an error, not a panic.
    assert!(best_layer(&net, &kept, Vec::new(), &val, &ctx).is_err());
}

#[test]
fn informed_in_order_stops_at_the_first_proved_layer_and_a_heuristic_orders_the_layers() {
    let (net, problem, _) = mlp_case(4);
    let layers = affine_layers(&net);
    let ctx = RepairContext::default();
    // Each layer alone, to know which prove.
    let proved: Vec<bool> = layers
        .iter()
        .map(|&node| {
            let mut m = Aprnn::default();
            m.lp.layer = Some(node);
            m.repair(&net, &problem, &ctx).unwrap().proved
        })
        .collect();
    assert!(proved.iter().any(|&p| p));
    let order: Vec<usize> = (0..layers.len()).collect();
    let r = informed(LayerSearch::InOrder(
        order.iter().map(|&i| layers[i]).collect(),
    ))
    .repair(&net, &problem, &ctx)
    .unwrap();
    let first = proved.iter().position(|&p| p).unwrap();
    let tried = &r.layer_search.as_ref().unwrap().tried;
    assert_eq!(tried.len(), first + 1);
    assert!(r.proved);
    assert_eq!(r.layer, net.nodes()[layers[first]].name());
    assert!(tried.iter().all(|t| t.accuracy.is_nan()));
    // A heuristic: its scores in the report, the layers tried in its order.
    let h = informed(LayerSearch::Heuristic {
        heuristic: Heuristic::GradientNorm,
        seed: 0,
    })
    .repair(&net, &problem, &ctx)
    .unwrap();
    let search = h.layer_search.unwrap();
    let sel = search.selection.unwrap();
    assert_eq!(sel.heuristic, "gradient-norm");
    assert_eq!(search.tried[0].node, layers[sel.order()[0]]);
    // An empty list is refused by name.
    let e = informed(LayerSearch::InOrder(Vec::new()))
        .repair(&net, &problem, &ctx)
        .unwrap_err();
    assert!(e.to_string().contains("layer list is empty"), "{e}");
}

#[test]
fn analysis_counts_classes_measures_geometry_and_explains_its_prediction() {
    let net = mlp(&[3, 8, 3], Activation::Relu, 2).unwrap();
    // Four collinear points, two classes evenly: 1 bit, effective dimension 1.
    let xs: Vec<Vec<f64>> = (0..4)
        .map(|i| vec![i as f64, 2.0 * i as f64, 0.0])
        .collect();
    let a = analyse(&net, &xs, &[0, 0, 1, 1]).unwrap();
    assert_eq!(a.size, 4);
    assert_eq!(a.classes.len(), 2);
    assert!((a.entropy_bits - 1.0).abs() < 1e-12);
    assert!((a.normalized_entropy - 1.0 / 3f64.log2()).abs() < 1e-12);
    assert!((a.effective_dim - 1.0).abs() < 1e-9, "{}", a.effective_dim);
    assert!((a.pca_explained[0] - 1.0).abs() < 1e-9);
    // The third input is always 0: the first layer can use only 2 of its 3 input columns.
    assert_eq!(a.layers[0].weights, 24);
    assert_eq!(a.layers[0].usable_weights, 16);
    assert_eq!(a.layers[0].constraints, 8);
    assert_eq!(a.difficulty, Difficulty::Moderate, "{:?}", a.reasons);
    assert!(a.reasons[0].contains("mixed classes"));
    // One class: easy, and the reason says why.
    let easy = analyse(&net, &xs[..2], &[1, 1]).unwrap();
    assert_eq!(easy.difficulty, Difficulty::Easy);
    assert_eq!(easy.entropy_bits, 0.0);
    // Bad input is named.
    assert!(analyse(&net, &[], &[])
        .unwrap_err()
        .to_string()
        .contains("empty"));
    assert!(analyse(&net, &xs[..1], &[7])
        .unwrap_err()
        .to_string()
        .contains("out of range"));
}

#[test]
fn incremental_repair_fixes_the_set_batch_by_batch_and_stops_early_on_drawdown() {
    let (net, problem, val) = mlp_case(6);
    // The keep set is the validation set of early stopping.
    let kept = problem.clone().with_keep(KeepSet::points(val.clone()));
    let inc = Incremental {
        batch: 2,
        ..Incremental::default()
    };
    let r = netrepair_repair::Repair::repair(&inc, &net, &kept, &RepairContext::default()).unwrap();
    let rep = r.incremental().unwrap();
    assert!(rep.steps.iter().all(|s| s.batch.len() <= 2));
    assert!(rep
        .steps
        .windows(2)
        .all(|w| w[1].repair_accuracy >= w[0].repair_accuracy || !w[1].kept));
    assert!(r.proved, "{}", r.message);
    assert_eq!(rep.steps.last().unwrap().repair_accuracy, 1.0);
    // Cumulative: earlier batches stay held, so the share of the set that is right never
    // falls and every point ends up repaired.
    let cum = Incremental {
        batch: 2,
        cumulative: true,
        ..Incremental::default()
    };
    let c =
        netrepair_repair::Repair::repair(&cum, &net, &problem, &RepairContext::default()).unwrap();
    let steps = &c.incremental().unwrap().steps;
    assert!(
        steps
            .windows(2)
            .all(|w| w[1].repair_accuracy >= w[0].repair_accuracy),
        "{steps:?}"
    );
    assert!(c.proved, "{}", c.message);
    // With no drawdown allowed, it stops at the first iteration that costs validation accuracy
    // and returns the network from before it.
    let strict = Incremental {
        batch: 1,
        max_drop: 0.0,
        ..Incremental::default()
    };
    let s =
        netrepair_repair::Repair::repair(&strict, &net, &kept, &RepairContext::default()).unwrap();
    let rep = s.incremental().unwrap();
    let last = rep.steps.last().unwrap();
    assert!(last.validation_accuracy < rep.validation_before, "{rep:?}");
    assert!(rep.stopped.starts_with("early stop"), "{}", rep.stopped);
    assert!(rep.returned < last.iter);
    // The network returned is the one before the costly batch: its validation accuracy is
    // the original's.
    let kept_acc = netrepair_repair::accuracy(&s.network, &kept.keep.points).unwrap();
    assert_eq!(kept_acc, rep.validation_before);
    assert!(Incremental {
        batch: 0,
        ..Incremental::default()
    }
    .repair_checked(&net, &problem)
    .is_err());
}

#[test]
fn incremental_repair_runs_any_method_and_reports_the_layer_it_edits() {
    let (net, problem, _) = mlp_case(4);
    let layers = affine_layers(&net);
    let mut middle = Prepared::default();
    middle.lp.layer = Some(layers[1]);
    let inc = Incremental {
        batch: 2,
        ..Incremental::of(middle)
    };
    let r = inc
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    assert_eq!(r.method, "incremental");
    assert!(r.proved, "{}", r.message);
    assert_eq!(r.layer, net.nodes()[layers[1]].name());
    assert_eq!(r.layer_index, Some(1));
    // Only that layer's weight and the biases from it on changed.
    assert!(r
        .param_delta
        .params
        .iter()
        .all(|p| p.node != net.nodes()[layers[0]].name()));
    // The inner method's settings are checked before any work.
    let mut broken = Prepared::default();
    broken.lp.threads = 0;
    let e = Incremental::of(broken).check().unwrap_err().to_string();
    assert!(e.contains("threads"), "{e}");
}

trait Checked {
    fn repair_checked(&self, net: &Network, p: &RepairProblem) -> netrepair_repair::Result<()>;
}

impl Checked for Incremental {
    fn repair_checked(&self, net: &Network, p: &RepairProblem) -> netrepair_repair::Result<()> {
        netrepair_repair::Repair::repair(self, net, p, &RepairContext::default()).map(|_| ())
    }
}
