//! Every method's settings are checked before it runs: each rule, broken on its own, gives
//! `RepairError::InvalidParam` naming the setting, and the defaults pass.

use std::time::Duration;

use netrepair_nn::{mlp, Activation};
use netrepair_repair::{
    Aprnn, GradientRepair, Incremental, LabelledSet, Locking, LpRepairOptions, Mm, Pft, Prepared,
    Reglo, RegloObjective, RepairError, Result,
};

/// Asserts that `r` failed on setting `name`, and that the message names it.
fn broken(r: Result<()>, name: &str) {
    let e = r.expect_err(name);
    assert!(
        matches!(&e, RepairError::InvalidParam { name: got, .. } if *got == name),
        "expected an invalid setting '{name}', got {e:?}"
    );
    assert!(e.to_string().contains(name), "{e}");
}

fn lp(f: impl FnOnce(&mut LpRepairOptions)) -> LpRepairOptions {
    let mut o = LpRepairOptions::default();
    f(&mut o);
    o
}

#[test]
fn lp_options_rules() {
    LpRepairOptions::default().check().unwrap();
    // An infinite delta bound means no bound and is allowed.
    lp(|o| o.delta_bound = Some(f64::INFINITY)).check().unwrap();
    for (o, name) in [
        (lp(|o| o.eps = -1e-3), "eps"),
        (lp(|o| o.eps = f64::NAN), "eps"),
        (lp(|o| o.delta_bound = Some(0.0)), "delta_bound"),
        (
            lp(|o| o.delta_bound = Some(f64::NEG_INFINITY)),
            "delta_bound",
        ),
        (lp(|o| o.delta_bound = Some(f64::NAN)), "delta_bound"),
        (lp(|o| o.time_limit = Some(Duration::ZERO)), "time_limit"),
        (lp(|o| o.threads = 0), "threads"),
        (lp(|o| o.max_terms = 0), "max_terms"),
        (lp(|o| o.relu_max_terms = 0), "relu_max_terms"),
    ] {
        broken(o.check(), name);
    }
}

#[test]
fn aprnn_and_prepared_rules_include_their_lp_options() {
    Aprnn::default().check().unwrap();
    Prepared::default().check().unwrap();
    let bad_lp = lp(|o| o.eps = -1.0);
    for (a, name) in [
        (
            Aprnn {
                lp: bad_lp.clone(),
                ..Aprnn::default()
            },
            "eps",
        ),
        (
            Aprnn {
                max_box_dims: 0,
                ..Aprnn::default()
            },
            "max_box_dims",
        ),
        (
            Aprnn {
                pattern_margin: -1.0,
                ..Aprnn::default()
            },
            "pattern_margin",
        ),
        (
            Aprnn {
                keep_violation_cost: f64::INFINITY,
                ..Aprnn::default()
            },
            "keep_violation_cost",
        ),
        (
            Aprnn {
                box_splits: 21,
                ..Aprnn::default()
            },
            "box_splits",
        ),
    ] {
        broken(a.check(), name);
    }
    for (p, name) in [
        (
            Prepared {
                lp: bad_lp,
                ..Prepared::default()
            },
            "eps",
        ),
        (
            Prepared {
                max_regions: 0,
                ..Prepared::default()
            },
            "max_regions",
        ),
        (
            Prepared {
                keep_violation_cost: -1.0,
                ..Prepared::default()
            },
            "keep_violation_cost",
        ),
    ] {
        broken(p.check(), name);
    }
    let inc = |f: fn(&mut Incremental)| {
        let mut i = Incremental::default();
        f(&mut i);
        i
    };
    Incremental::default().check().unwrap();
    broken(inc(|i| i.batch = 0).check(), "batch");
    broken(inc(|i| i.max_iters = 0).check(), "max_iters");
    broken(inc(|i| i.max_drop = 1.5).check(), "max_drop");
    broken(inc(|i| i.inner.lp.threads = 0).check(), "threads");
}

#[test]
fn mm_and_reglo_rules() {
    Mm::default().check().unwrap();
    let mm = |f: fn(&mut Mm)| {
        let mut m = Mm::default();
        f(&mut m);
        m
    };
    broken(mm(|m| m.max_bound = 0.0).check(), "max_bound");
    broken(mm(|m| m.tolerance = 1.0).check(), "tolerance");
    broken(mm(|m| m.margin = -0.1).check(), "margin");
    broken(mm(|m| m.keep_tau = Some(-1.0)).check(), "keep_tau");

    Reglo::default().check().unwrap();
    let reglo = |f: fn(&mut Reglo)| {
        let mut r = Reglo::default();
        f(&mut r);
        r
    };
    broken(reglo(|r| r.max_iters = 0).check(), "max_iters");
    broken(reglo(|r| r.max_areas = 0).check(), "max_areas");
    broken(reglo(|r| r.area_radius = 0.0).check(), "area_radius");
    broken(reglo(|r| r.area_radius = 1.5).check(), "area_radius");
    broken(reglo(|r| r.keep_weight = -1.0).check(), "keep_weight");
    broken(reglo(|r| r.keep_tau = 2.0).check(), "keep_tau");
    broken(
        reglo(|r| r.objective = RegloObjective::Scale { kappa: f64::NAN }).check(),
        "kappa",
    );
    broken(reglo(|r| r.margin = 1.0).check(), "margin");
}

#[test]
fn gradient_and_pft_rules() {
    let net = mlp(&[2, 4, 2], Activation::Relu, 0).unwrap();
    let correct = LabelledSet {
        inputs: vec![vec![0.1, 0.2]],
        labels: vec![1],
    };
    GradientRepair::irepair(1.0).check(&net, &correct).unwrap();
    let grad = |f: fn(&mut GradientRepair)| {
        let mut g = GradientRepair::finetune();
        f(&mut g);
        g
    };
    broken(grad(|g| g.options.lr = 0.0).check(&net, &correct), "lr");
    broken(
        grad(|g| g.options.max_iters = 0).check(&net, &correct),
        "max_iters",
    );
    broken(
        grad(|g| g.options.margin = 1.0).check(&net, &correct),
        "margin",
    );
    broken(
        GradientRepair::irepair(-1.0).check(&net, &correct),
        "locking.gamma",
    );
    broken(
        grad(|g| g.locking = Locking::Random { p: 1.5 }).check(&net, &correct),
        "locking.p",
    );

    Pft::default().check(&net, &correct).unwrap();
    let pft = |f: fn(&mut Pft)| {
        let mut p = Pft::default();
        f(&mut p);
        p
    };
    broken(pft(|p| p.lr = f64::INFINITY).check(&net, &correct), "lr");
    broken(pft(|p| p.rounds = 0).check(&net, &correct), "rounds");
    broken(
        pft(|p| p.steps_per_round = 0).check(&net, &correct),
        "steps_per_round",
    );
    broken(
        pft(|p| p.fidelity_weight = -1.0).check(&net, &correct),
        "fidelity_weight",
    );
    broken(pft(|p| p.margin = -1.0).check(&net, &correct), "margin");
}
