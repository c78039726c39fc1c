//! Tabular data: UCI German credit and UCI Adult, one numeric column per attribute.
//!
//! Qualitative attributes are encoded by their code's ordinal (German: `A34` of attribute 3 is
//! 4; Adult: the index of the category in the sorted list of categories seen in either file),
//! so every attribute, and in particular the sensitive ones (`age`, `sex`, `race`), stays one
//! identifiable column. Values are raw; scale them with [`Dataset::scale_min_max`].

use std::collections::BTreeSet;
use std::path::Path;

use crate::dataset::Dataset;
use crate::error::{format, io, DataError, Result};

/// Column names of German credit, in file order (attribute 13 is `age`).
pub const GERMAN_FEATURES: [&str; 20] = [
    "checking_status",
    "duration",
    "credit_history",
    "purpose",
    "credit_amount",
    "savings",
    "employment_since",
    "installment_rate",
    "personal_status_sex",
    "other_debtors",
    "residence_since",
    "property",
    "age",
    "other_installment_plans",
    "housing",
    "existing_credits",
    "job",
    "people_liable",
    "telephone",
    "foreign_worker",
];

/// German credit from `german.data` (1000 rows, 20 attributes, label 1 good / 2 bad). Labels
/// become 0 = good, 1 = bad.
pub fn load_german(path: &Path) -> Result<Dataset> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let (mut inputs, mut labels) = (Vec::new(), Vec::new());
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 21 {
            return Err(format(
                path,
                format!("line {}: {} fields, expected 21", i + 1, fields.len()),
            ));
        }
        for (a, f) in fields[..20].iter().enumerate() {
            let prefix = format!("A{}", a + 1);
            let v = match f.strip_prefix(&prefix) {
                Some(code) if f.starts_with('A') => code.parse::<f32>().ok(),
                _ => f.parse::<f32>().ok(),
            };
            inputs.push(v.ok_or_else(|| {
                format(
                    path,
                    format!(
                        "line {}: attribute {} has unexpected value '{f}'",
                        i + 1,
                        a + 1
                    ),
                )
            })?);
        }
        labels.push(match fields[20] {
            "1" => 0,
            "2" => 1,
            other => {
                return Err(format(
                    path,
                    format!("line {}: label '{other}' is neither 1 nor 2", i + 1),
                ))
            }
        });
    }
    let mut d = Dataset::new(
        "german",
        inputs,
        vec![20],
        labels,
        vec!["good".into(), "bad".into()],
    )?;
    d.feature_names = GERMAN_FEATURES.iter().map(|s| s.to_string()).collect();
    Ok(d)
}

/// Column names of Adult (without the label).
pub const ADULT_FEATURES: [&str; 14] = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
];

const ADULT_NUMERIC: [usize; 6] = [0, 2, 4, 10, 11, 12];

fn adult_rows(path: &Path) -> Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('|') {
            continue;
        }
        let fields: Vec<String> = line
            .split(',')
            .map(|f| f.trim().trim_end_matches('.').to_string())
            .collect();
        if fields.len() != 15 {
            return Err(format(
                path,
                format!("line {}: {} fields, expected 15", i + 1, fields.len()),
            ));
        }
        rows.push(fields);
    }
    Ok(rows)
}

/// Adult from `dir/adult.data` (train) or `dir/adult.test`. Rows with a missing value (`?`)
/// are dropped, as is customary (30,162 train / 15,060 test rows remain). Labels: 0 = `<=50K`,
/// 1 = `>50K`.
pub fn load_adult(dir: &Path, train: bool) -> Result<Dataset> {
    let (tr, te) = (dir.join("adult.data"), dir.join("adult.test"));
    for p in [&tr, &te] {
        if !p.exists() {
            return Err(DataError::Missing {
                path: p.display().to_string(),
                hint: "expected UCI adult.data and adult.test".into(),
            });
        }
    }
    let both = [adult_rows(&tr)?, adult_rows(&te)?];
    let complete = |r: &&Vec<String>| !r.iter().any(|f| f == "?");
    let mut categories: Vec<BTreeSet<String>> = vec![BTreeSet::new(); 14];
    for r in both.iter().flatten().filter(complete) {
        for (j, set) in categories
            .iter_mut()
            .enumerate()
            .filter(|(j, _)| !ADULT_NUMERIC.contains(j))
        {
            set.insert(r[j].clone());
        }
    }
    let path = if train { &tr } else { &te };
    let rows = &both[usize::from(!train)];
    let (mut inputs, mut labels) = (Vec::new(), Vec::new());
    for r in rows.iter().filter(complete) {
        for j in 0..14 {
            let v = if ADULT_NUMERIC.contains(&j) {
                r[j].parse::<f32>().map_err(|_| {
                    format(
                        path,
                        format!("'{}' is not a number ({})", r[j], ADULT_FEATURES[j]),
                    )
                })?
            } else {
                categories[j]
                    .iter()
                    .position(|c| c == &r[j])
                    .expect("collected above") as f32
            };
            inputs.push(v);
        }
        labels.push(match r[14].as_str() {
            "<=50K" => 0,
            ">50K" => 1,
            other => return Err(format(path, format!("unknown label '{other}'"))),
        });
    }
    let name = if train { "adult-train" } else { "adult-test" };
    let mut d = Dataset::new(
        name,
        inputs,
        vec![14],
        labels,
        vec!["<=50K".into(), ">50K".into()],
    )?;
    d.feature_names = ADULT_FEATURES.iter().map(|s| s.to_string()).collect();
    Ok(d)
}
