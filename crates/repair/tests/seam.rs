//! The seam every repair method plugs into, shown with a toy method defined here, outside the
//! crate: implementing `Repair` (and `AtLayer` to be pointed at a layer) is all it takes for
//! the informed layer search, incremental repair, the one result constructor, the shared
//! re-check and the JSON report to work with it.

mod common;

use std::time::Instant;

use candle_core::{Device, Tensor};
use common::out;
use netrepair_nn::{mlp, Activation, Network, ParamId};
use netrepair_repair::{
    affine_layers, recheck, AtLayer, EditedLayer, Incremental, Informed, ItemStatus, LayerSearch,
    Repair, RepairContext, RepairError, RepairOutcome, RepairProblem, RepairStatus, Result,
};

/// A toy method: raises the bias of one output of the last layer until every repair point is
/// classified as that output (all points must share one label); at any other layer it changes
/// nothing.
#[derive(Debug, Clone)]
struct BiasNudge {
    /// The node it edits.
    layer: usize,
}

impl Repair for BiasNudge {
    fn name(&self) -> &'static str {
        "bias-nudge"
    }

    fn repair(
        &self,
        net: &Network,
        problem: &RepairProblem,
        ctx: &RepairContext,
    ) -> Result<RepairOutcome> {
        let started = Instant::now();
        let (xs, labels) = problem
            .labelled_points(net.output_len())
            .ok_or_else(|| RepairError::Unsupported("labelled points only".into()))?;
        let mut after = net.clone();
        let last = *affine_layers(net).last().expect("an affine layer");
        if self.layer == last {
            let c = labels[0];
            // The smallest raise that makes `c` win on every point, plus a margin.
            let raise = xs
                .iter()
                .map(|x| {
                    let y = out(net, x);
                    let other = (0..y.len())
                        .filter(|&j| j != c)
                        .map(|j| y[j])
                        .fold(f64::NEG_INFINITY, f64::max);
                    other - y[c]
                })
                .fold(0.0, f64::max)
                + 0.01;
            let id = ParamId {
                node: last,
                slot: 1,
            };
            let mut b: Vec<f64> = net.param(id)?.to_vec()?;
            b[c] += raise;
            let n = b.len();
            after.set_param(id, Tensor::from_vec(b, n, &Device::Cpu).unwrap())?;
        }
        let items = recheck(net, &after, problem, &ctx.check)?;
        let status = RepairStatus::of_items(&items);
        RepairOutcome::new(
            net,
            after,
            self.name(),
            EditedLayer::Node(self.layer),
            status,
            format!("{status:?}"),
            items,
            started,
        )
    }
}

impl AtLayer for BiasNudge {
    fn at_layer(&self, node: usize) -> Box<dyn Repair> {
        Box::new(BiasNudge { layer: node })
    }
}

/// A random MLP and four inputs it does not classify as class 2, all labelled 2.
fn case() -> (Network, RepairProblem) {
    let net = mlp(&[3, 8, 8, 3], Activation::Relu, 5).unwrap();
    let mut xs = Vec::new();
    for s in 0..400u64 {
        let x: Vec<f64> = (0..3)
            .map(|j| ((s * 7919 + j * 104_729) % 997) as f64 / 498.5 - 1.0)
            .collect();
        let y = out(&net, &x);
        if y[2] < y[0].max(y[1]) && xs.len() < 12 {
            xs.extend(x);
        }
    }
    assert_eq!(xs.len(), 12, "four misclassified inputs");
    let problem = RepairProblem::from_labels(&xs, &[2; 4], 3, 3).unwrap();
    (net, problem)
}

#[test]
fn a_method_defined_outside_the_crate_runs_through_every_strategy_and_the_report() {
    let (net, problem) = case();
    let ctx = RepairContext::default();
    let layers = affine_layers(&net);
    let last = *layers.last().unwrap();
    // Alone: proved at the last layer by the shared re-check, the change derived by the one
    // constructor (only the last bias moved).
    let alone = BiasNudge { layer: last }
        .repair(&net, &problem, &ctx)
        .unwrap();
    assert_eq!(alone.status, RepairStatus::Proved);
    assert!(alone.proved);
    assert_eq!(alone.layer_index, Some(layers.len() - 1));
    assert_eq!(alone.param_delta.params.len(), 1);
    assert_eq!(alone.param_delta.params[0].changed, 1);
    // At the first layer it changes nothing, and the re-check says so.
    let first = BiasNudge { layer: layers[0] }
        .repair(&net, &problem, &ctx)
        .unwrap();
    assert_eq!(first.count(ItemStatus::Failed), 4);
    // Informed: tried from the first layer on, the first proved layer is kept.
    let informed = Informed {
        method: Box::new(BiasNudge { layer: 0 }),
        search: LayerSearch::InOrder(layers.clone()),
        extra: Vec::new(),
    }
    .repair(&net, &problem, &ctx)
    .unwrap();
    assert!(informed.proved);
    assert_eq!(informed.layer, alone.layer);
    assert_eq!(
        informed.layer_search.as_ref().unwrap().tried.len(),
        layers.len()
    );
    // Incremental: batches of one, each proved, the last one fixes the set.
    let inc = Incremental {
        batch: 1,
        ..Incremental::of(BiasNudge { layer: last })
    }
    .repair(&net, &problem, &ctx)
    .unwrap();
    assert!(inc.proved, "{}", inc.message);
    assert_eq!(inc.layer, alone.layer);
    // The text summary names the method, the layer and the verdict, item by item.
    let text = alone.summary(layers.len());
    assert!(
        text.starts_with(&format!(
            "bias-nudge at layer '{}' (affine layer 2 of 3): PROVED",
            alone.layer
        )),
        "{text}"
    );
    assert!(
        text.contains("items: 4 repaired, 0 failed, 0 unconfirmed"),
        "{text}"
    );
    assert!(first.summary(3).contains("NOT PROVED"));
    // The report serialises like any method's.
    let v = serde_json::to_value(&informed).unwrap();
    assert_eq!(v["method"], "bias-nudge");
    assert_eq!(v["status"], "proved");
    assert_eq!(v["layers_tried"].as_array().unwrap().len(), layers.len());
}
