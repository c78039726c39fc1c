//! The certificate folder from the library: written complete, refused over a non-empty folder,
//! re-checked from its files alone, and a missing file named.

mod common;

use common::out;
use netrepair_nn::{mlp, save_onnx, Activation};
use netrepair_repair::{
    check_certificate_dir, recheck_certificate, write_certificate, Aprnn, Repair, RepairContext,
    RepairProblem,
};

#[test]
fn a_certificate_is_written_whole_rechecked_from_its_files_and_names_a_missing_file() {
    let net = mlp(&[2, 8, 3], Activation::Relu, 3).unwrap();
    // Two inputs labelled with their runner-up class.
    let (mut xs, mut labels) = (Vec::new(), Vec::new());
    for s in 0..50u64 {
        let x = vec![(s as f64 * 0.37).sin(), (s as f64 * 0.91).cos()];
        let y = out(&net, &x);
        let mut order: Vec<usize> = (0..3).collect();
        order.sort_by(|&a, &b| y[b].total_cmp(&y[a]));
        if labels.len() < 2 {
            xs.extend(x);
            labels.push(order[1]);
        }
    }
    let problem = RepairProblem::from_labels(&xs, &labels, 2, 3).unwrap();
    let r = Aprnn::default()
        .repair(&net, &problem, &RepairContext::default())
        .unwrap();
    assert!(r.proved, "{}", r.message);
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("repaired.onnx");
    save_onnx(&r.network, &onnx).unwrap();
    let cert = dir.path().join("cert");
    check_certificate_dir(&cert).unwrap();
    let w = write_certificate(&cert, &problem, &r, &onnx, "net.onnx".as_ref()).unwrap();
    assert_eq!(w.properties, 2);
    assert!(cert.join("instances.csv").is_file() && cert.join("README.md").is_file());
    // Not over itself: the folder exists and is not empty.
    let e = check_certificate_dir(&cert).unwrap_err().to_string();
    assert!(e.contains("not empty"), "{e}");
    // Every instance holds when re-checked from the files.
    assert_eq!(recheck_certificate(&cert).unwrap(), (2, 2));
    // A missing property file is named, not skipped.
    let first = std::fs::read_dir(cert.join("vnnlib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&first).unwrap();
    let e = recheck_certificate(&cert).unwrap_err().to_string();
    assert!(e.contains("1 listed file(s) missing"), "{e}");
    assert!(e.contains("instances.csv"), "{e}");
}
