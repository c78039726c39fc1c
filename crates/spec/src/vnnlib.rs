//! VNN-LIB (the VNN-COMP subset of SMT-LIB) to [`Property`].
//!
//! Supported: `declare-const` of `X_i` / `Y_j` of sort `Real`; `assert` of `<=`, `>=`, `<`,
//! `>`, `=` between linear expressions (`+`, `-`, `*` by a constant) over inputs only or outputs
//! only, combined with `and` / `or` at any depth. Strict inequalities are read as non-strict
//! (the usual reading in VNN-COMP: it only enlarges the unsafe set, so "holds" stays sound).
//! Input constraints must be single-variable bounds forming boxes. All asserts are conjoined,
//! expanded into disjunctive normal form, and grouped by input box into [`Case`]s.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Result, SpecError};
use crate::property::{BoxRegion, Case, LinearConstraint, Polytope, Property};
use crate::sexpr::{parse, Sexpr};

/// Largest disjunctive normal form accepted (terms after expanding and/or).
const MAX_TERMS: usize = 100_000;

/// Reads and parses a `.vnnlib` file.
pub fn read_vnnlib(path: impl AsRef<Path>) -> Result<Property> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_vnnlib(&text)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Var {
    X(usize),
    Y(usize),
}

/// `sum coeff * var + constant`.
#[derive(Debug, Clone, Default)]
struct Lin {
    terms: BTreeMap<Var, f64>,
    constant: f64,
}

impl Lin {
    fn scale(mut self, k: f64) -> Self {
        self.terms.values_mut().for_each(|c| *c *= k);
        self.constant *= k;
        self
    }

    fn add(mut self, other: Lin) -> Self {
        for (v, c) in other.terms {
            *self.terms.entry(v).or_insert(0.0) += c;
        }
        self.constant += other.constant;
        self
    }
}

/// `terms <= rhs`, remembering its line.
#[derive(Debug, Clone)]
struct Atom {
    terms: Vec<(Var, f64)>,
    rhs: f64,
    line: usize,
}

type Dnf = Vec<Vec<Atom>>;

fn syntax(line: usize, reason: impl Into<String>) -> SpecError {
    SpecError::Syntax {
        line,
        reason: reason.into(),
    }
}

struct Reader {
    inputs: Vec<bool>,
    outputs: Vec<bool>,
}

impl Reader {
    fn var(&self, name: &str, line: usize) -> Result<Option<Var>> {
        let parse = |rest: &str| {
            rest.parse::<usize>()
                .map_err(|_| syntax(line, format!("bad variable name '{name}'")))
        };
        let v = if let Some(r) = name.strip_prefix("X_") {
            Var::X(parse(r)?)
        } else if let Some(r) = name.strip_prefix("Y_") {
            Var::Y(parse(r)?)
        } else {
            return Ok(None);
        };
        let declared = match v {
            Var::X(i) => self.inputs.get(i).copied().unwrap_or(false),
            Var::Y(j) => self.outputs.get(j).copied().unwrap_or(false),
        };
        if !declared {
            return Err(syntax(
                line,
                format!("variable '{name}' is used before it is declared"),
            ));
        }
        Ok(Some(v))
    }

    fn declare(&mut self, items: &[Sexpr], line: usize) -> Result<()> {
        let (name, sort) = match items {
            [_, Sexpr::Atom(n, _), Sexpr::Atom(s, _)] => (*n, *s),
            _ => return Err(syntax(line, "expected (declare-const NAME Real)")),
        };
        if sort != "Real" {
            return Err(SpecError::Unsupported {
                line,
                reason: format!("variable '{name}' has sort {sort}; only Real is supported"),
            });
        }
        let (table, idx) = if let Some(r) = name.strip_prefix("X_") {
            (&mut self.inputs, r)
        } else if let Some(r) = name.strip_prefix("Y_") {
            (&mut self.outputs, r)
        } else {
            return Err(syntax(
                line,
                format!("variable '{name}' must be named X_i (input) or Y_j (output)"),
            ));
        };
        let i: usize = idx
            .parse()
            .map_err(|_| syntax(line, format!("bad variable name '{name}'")))?;
        if table.len() <= i {
            table.resize(i + 1, false);
        }
        if table[i] {
            return Err(syntax(line, format!("variable '{name}' is declared twice")));
        }
        table[i] = true;
        Ok(())
    }

    fn expr(&self, e: &Sexpr) -> Result<Lin> {
        match e {
            Sexpr::Atom(a, line) => {
                if let Some(v) = self.var(a, *line)? {
                    let mut l = Lin::default();
                    l.terms.insert(v, 1.0);
                    return Ok(l);
                }
                let c: f64 = a.parse().map_err(|_| {
                    syntax(
                        *line,
                        format!("'{a}' is neither a number nor a declared variable"),
                    )
                })?;
                if !c.is_finite() {
                    return Err(syntax(*line, format!("'{a}' is not a finite number")));
                }
                Ok(Lin {
                    constant: c,
                    ..Default::default()
                })
            }
            Sexpr::List(items, line) => {
                let (op, args) = match items.split_first() {
                    Some((Sexpr::Atom(op, _), args)) if !args.is_empty() => (*op, args),
                    _ => return Err(syntax(*line, "expected an arithmetic expression (+, -, *)")),
                };
                let mut vals = args
                    .iter()
                    .map(|a| self.expr(a))
                    .collect::<Result<Vec<_>>>()?
                    .into_iter();
                let first = vals.next().expect("non-empty");
                match op {
                    "+" => Ok(vals.fold(first, Lin::add)),
                    "-" if args.len() == 1 => Ok(first.scale(-1.0)),
                    "-" => Ok(vals.fold(first, |acc, v| acc.add(v.scale(-1.0)))),
                    "*" => vals.try_fold(first, |acc, v| {
                        match (acc.terms.is_empty(), v.terms.is_empty()) {
                            (true, _) => Ok(v.scale(acc.constant)),
                            (_, true) => Ok(acc.scale(v.constant)),
                            _ => Err(SpecError::Unsupported {
                                line: *line,
                                reason: "product of two variables (non-linear)".into(),
                            }),
                        }
                    }),
                    other => Err(syntax(
                        *line,
                        format!("unknown arithmetic operator '{other}'"),
                    )),
                }
            }
        }
    }

    /// A formula as DNF.
    fn formula(&self, e: &Sexpr) -> Result<Dnf> {
        let Sexpr::List(items, line) = e else {
            return Err(syntax(e.line(), "expected a formula in parentheses"));
        };
        let line = *line;
        let (op, args) = match items.split_first() {
            Some((Sexpr::Atom(op, _), args)) => (*op, args),
            _ => return Err(syntax(line, "expected (OP ...)")),
        };
        match op {
            "and" => args.iter().try_fold(vec![Vec::new()], |acc, a| {
                conjoin(acc, self.formula(a)?, line)
            }),
            "or" => {
                let mut out = Vec::new();
                for a in args {
                    out.extend(self.formula(a)?);
                }
                Ok(out)
            }
            "<=" | ">=" | "<" | ">" | "=" => {
                let [a, b] = args else {
                    return Err(syntax(
                        line,
                        format!("'{op}' takes two arguments, got {}", args.len()),
                    ));
                };
                let (a, b) = (self.expr(a)?, self.expr(b)?);
                let le = |l: Lin, r: Lin| {
                    let d = l.add(r.scale(-1.0));
                    Atom {
                        terms: d.terms.into_iter().filter(|(_, c)| *c != 0.0).collect(),
                        rhs: -d.constant,
                        line,
                    }
                };
                Ok(match op {
                    "<=" | "<" => vec![vec![le(a, b)]],
                    ">=" | ">" => vec![vec![le(b, a)]],
                    _ => vec![vec![le(a.clone(), b.clone()), le(b, a)]],
                })
            }
            other => Err(syntax(
                line,
                format!("unknown operator '{other}' (expected and, or, <=, >=, <, >, =)"),
            )),
        }
    }
}

fn conjoin(a: Dnf, b: Dnf, line: usize) -> Result<Dnf> {
    if a.len().saturating_mul(b.len()) > MAX_TERMS {
        return Err(SpecError::Unsupported {
            line,
            reason: format!("the formula expands to more than {MAX_TERMS} cases"),
        });
    }
    if b.len() == 1 {
        let extra = &b[0];
        return Ok(a
            .into_iter()
            .map(|mut t| {
                t.extend(extra.iter().cloned());
                t
            })
            .collect());
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for ta in &a {
        for tb in &b {
            let mut t = ta.clone();
            t.extend(tb.iter().cloned());
            out.push(t);
        }
    }
    Ok(out)
}

/// Parses VNN-LIB text into a [`Property`].
pub fn parse_vnnlib(text: &str) -> Result<Property> {
    let mut reader = Reader {
        inputs: Vec::new(),
        outputs: Vec::new(),
    };
    let mut dnf: Dnf = vec![Vec::new()];
    let mut asserted = false;
    for cmd in parse(text)? {
        let Sexpr::List(items, line) = &cmd else {
            return Err(syntax(cmd.line(), "expected a command in parentheses"));
        };
        match items.first() {
            Some(Sexpr::Atom("declare-const", _)) => reader.declare(items, *line)?,
            Some(Sexpr::Atom("assert", _)) => {
                let [_, f] = items.as_slice() else {
                    return Err(syntax(*line, "assert takes one formula"));
                };
                dnf = conjoin(dnf, reader.formula(f)?, *line)?;
                asserted = true;
            }
            Some(Sexpr::Atom("check-sat" | "get-model" | "exit" | "set-logic" | "set-info", _)) => {
            }
            Some(Sexpr::Atom(other, _)) => {
                return Err(syntax(*line, format!("unknown command '{other}'")))
            }
            _ => return Err(syntax(*line, "expected a command")),
        }
    }
    for (table, name) in [(&reader.inputs, "X"), (&reader.outputs, "Y")] {
        if table.is_empty() {
            return Err(syntax(1, format!("no {name}_ variables are declared")));
        }
        if let Some(i) = table.iter().position(|d| !d) {
            return Err(syntax(
                1,
                format!(
                    "{name}_{i} is not declared, but {name}_{} is",
                    table.len() - 1
                ),
            ));
        }
    }
    if !asserted {
        return Err(syntax(1, "the file has no assert"));
    }
    let (n, m) = (reader.inputs.len(), reader.outputs.len());
    let mut cases: Vec<Case> = Vec::new();
    for term in dnf {
        let Some((input, poly)) = split_term(term, n)? else {
            continue;
        };
        match cases.iter_mut().find(|c| c.input == input) {
            Some(c) => c.unsafe_region.push(poly),
            None => cases.push(Case {
                input,
                unsafe_region: vec![poly],
            }),
        }
    }
    if cases.is_empty() {
        return Err(SpecError::InvalidBox(
            "every case of the property has contradictory constraints".into(),
        ));
    }
    Ok(Property {
        num_inputs: n,
        num_outputs: m,
        cases,
    })
}

/// One DNF term -> (input box, output polytope); `None` when a constant constraint is false.
fn split_term(term: Vec<Atom>, n: usize) -> Result<Option<(BoxRegion, Polytope)>> {
    let mut lower = vec![f64::NEG_INFINITY; n];
    let mut upper = vec![f64::INFINITY; n];
    let mut poly = Polytope::default();
    for atom in term {
        let xs = atom
            .terms
            .iter()
            .filter(|(v, _)| matches!(v, Var::X(_)))
            .count();
        match (xs, atom.terms.len()) {
            (0, 0) => {
                if 0.0 > atom.rhs {
                    return Ok(None);
                }
            }
            (1, 1) => {
                let (Var::X(i), c) = atom.terms[0] else {
                    unreachable!("one input term")
                };
                let bound = atom.rhs / c;
                if c > 0.0 {
                    upper[i] = upper[i].min(bound);
                } else {
                    lower[i] = lower[i].max(bound);
                }
            }
            (0, _) => poly.constraints.push(LinearConstraint {
                coeffs: atom
                    .terms
                    .iter()
                    .map(|&(v, c)| (if let Var::Y(j) = v { j } else { unreachable!() }, c))
                    .collect(),
                rhs: atom.rhs,
            }),
            (_, k) if xs == k => {
                return Err(SpecError::Unsupported {
                    line: atom.line,
                    reason: "input constraints must bound one variable each (boxes)".into(),
                })
            }
            _ => {
                return Err(SpecError::Unsupported {
                    line: atom.line,
                    reason: "a constraint mixes inputs and outputs".into(),
                })
            }
        }
    }
    for i in 0..n {
        if !lower[i].is_finite() || !upper[i].is_finite() {
            return Err(SpecError::InvalidBox(format!(
                "X_{i} has no {} bound",
                if lower[i].is_finite() {
                    "upper"
                } else {
                    "lower"
                }
            )));
        }
    }
    Ok(Some((BoxRegion::new(lower, upper)?, poly)))
}
