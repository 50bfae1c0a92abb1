//! Validation of a submitted workflow definition: the checks that decide
//! between WorkflowAccepted and WorkflowRejected, each rejection precise
//! enough to fix the definition (the duplicate id, the unknown dependency,
//! the steps of the cycle in order).
//!
//! Pure and deterministic: the same definition always yields the same
//! verdict and the same message (steps are visited in definition order), so
//! replay reproduces rejections exactly.

use std::collections::HashMap;

use crate::domain::events::{check_duration_ms, WorkflowDefinition};

/// Size limits of one workflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_steps: usize,
    /// Largest workflow or step input, in bytes of JSON text.
    pub max_input_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps: 1_000,
            max_input_bytes: 256 * 1024,
        }
    }
}

/// Why a definition is rejected. `code()` is the `WorkflowRejected.code`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error("the workflow has no steps")]
    Empty,
    #[error("the workflow has {count} steps, over the limit of {limit}")]
    TooManySteps { count: usize, limit: usize },
    #[error("step id `{0}` is used more than once")]
    DuplicateStep(String),
    #[error("step `{step}` depends on unknown step `{dependency}`")]
    UnknownDependency { step: String, dependency: String },
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("{what} input is {size} bytes, over the limit of {limit}")]
    InputTooLarge {
        what: String,
        size: usize,
        limit: usize,
    },
    #[error("step `{step}`: {reason}")]
    InvalidStep { step: String, reason: String },
    #[error("{0}")]
    InvalidDeadline(String),
}

impl DefinitionError {
    /// Machine-readable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            DefinitionError::Empty => "empty",
            DefinitionError::TooManySteps { .. } => "too_many_steps",
            DefinitionError::DuplicateStep(_) => "duplicate_step",
            DefinitionError::UnknownDependency { .. } => "unknown_dependency",
            DefinitionError::Cycle(_) => "cycle",
            DefinitionError::InputTooLarge { .. } => "input_too_large",
            DefinitionError::InvalidStep { .. } => "invalid_step",
            DefinitionError::InvalidDeadline(_) => "invalid_deadline",
        }
    }
}

/// A validated definition's DAG, by step index in definition order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dag {
    /// `upstream[i]`: indices step `i` depends on.
    pub upstream: Vec<Vec<usize>>,
    /// `downstream[i]`: indices that depend on step `i`.
    pub downstream: Vec<Vec<usize>>,
}

impl Dag {
    /// Steps with no dependencies: ready when the workflow starts.
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        self.upstream
            .iter()
            .enumerate()
            .filter(|(_, u)| u.is_empty())
            .map(|(i, _)| i)
    }
}

/// Checks a definition and builds its DAG.
pub fn validate(def: &WorkflowDefinition, limits: &Limits) -> Result<Dag, DefinitionError> {
    let steps = &def.steps;
    if steps.is_empty() {
        return Err(DefinitionError::Empty);
    }
    if steps.len() > limits.max_steps {
        return Err(DefinitionError::TooManySteps {
            count: steps.len(),
            limit: limits.max_steps,
        });
    }
    if let Some(input) = &def.input {
        check_input("workflow", input.0.len(), limits)?;
    }

    let mut index = HashMap::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        if index.insert(s.id.as_str(), i).is_some() {
            return Err(DefinitionError::DuplicateStep(s.id.clone()));
        }
    }
    let mut upstream = vec![Vec::new(); steps.len()];
    let mut downstream = vec![Vec::new(); steps.len()];
    for (i, s) in steps.iter().enumerate() {
        let invalid = |reason: &str| DefinitionError::InvalidStep {
            step: s.id.clone(),
            reason: reason.to_string(),
        };
        if s.id.is_empty() {
            return Err(invalid("the step id is empty"));
        }
        if let Some(input) = &s.input {
            check_input(&format!("step `{}`", s.id), input.0.len(), limits)?;
        }
        if s.timeout_ms.is_some_and(|t| t <= 0) {
            return Err(invalid("timeout_ms must be positive"));
        }
        if let Some(r) = &s.retry {
            if r.max_attempts < 1 {
                return Err(invalid("retry.max_attempts must be at least 1"));
            }
            if r.base_ms < 0 || r.max_ms < r.base_ms {
                return Err(invalid("retry delays need 0 <= base_ms <= max_ms"));
            }
        }
        for dep in &s.depends_on {
            let Some(&j) = index.get(dep.as_str()) else {
                return Err(DefinitionError::UnknownDependency {
                    step: s.id.clone(),
                    dependency: dep.clone(),
                });
            };
            if !upstream[i].contains(&j) {
                upstream[i].push(j);
                downstream[j].push(i);
            }
        }
    }
    if let Some(cycle) = find_cycle(&upstream) {
        return Err(DefinitionError::Cycle(
            cycle.into_iter().map(|i| steps[i].id.clone()).collect(),
        ));
    }
    Ok(Dag {
        upstream,
        downstream,
    })
}

/// The ranges a new submission's numbers and expressions must lie in
/// (documented in the README's event catalog). Checked by `decide` before
/// [`validate`], never on replay: facts written before a range existed
/// must fold as they did.
pub fn check_bounds(def: &WorkflowDefinition) -> Result<(), DefinitionError> {
    if let Some(ms) = def.deadline_ms {
        check_duration_ms("deadline_ms", ms, 1).map_err(DefinitionError::InvalidDeadline)?;
    }
    for s in def.steps.iter() {
        let invalid = |reason: String| DefinitionError::InvalidStep {
            step: s.id.clone(),
            reason,
        };
        if let Some(t) = s.timeout_ms {
            check_duration_ms("timeout_ms", t, 1).map_err(invalid)?;
        }
        if let Some(r) = &s.retry {
            check_duration_ms("retry.base_ms", r.base_ms, 0).map_err(invalid)?;
            check_duration_ms("retry.max_ms", r.max_ms, 0).map_err(invalid)?;
        }
        if let Some(w) = &s.when {
            check_condition(w).map_err(invalid)?;
        }
    }
    Ok(())
}

/// Longest `when` expression, in bytes.
pub const MAX_CONDITION_BYTES: usize = 16 << 10;
/// Most nesting a `when` expression may have: brackets plus the operators
/// the CEL parser recurses on (`!`, `-`, `?`), counted over the whole
/// expression, so no combination nests deeper (see `condition`).
pub const MAX_CONDITION_DEPTH: usize = 64;

/// Why a `when` expression is refused before it is ever parsed, if it is.
fn check_condition(expr: &str) -> Result<(), String> {
    if expr.len() > MAX_CONDITION_BYTES {
        return Err(format!(
            "`when` is {} bytes, over the limit of {MAX_CONDITION_BYTES}",
            expr.len()
        ));
    }
    let nesting = expr
        .bytes()
        .filter(|b| matches!(b, b'(' | b'[' | b'{' | b'!' | b'-' | b'?'))
        .count();
    if nesting > MAX_CONDITION_DEPTH {
        return Err(format!(
            "`when` has {nesting} brackets and `!`, `-`, `?` operators, over the limit of {MAX_CONDITION_DEPTH}"
        ));
    }
    Ok(())
}

fn check_input(what: &str, size: usize, limits: &Limits) -> Result<(), DefinitionError> {
    if size > limits.max_input_bytes {
        return Err(DefinitionError::InputTooLarge {
            what: what.to_string(),
            size,
            limit: limits.max_input_bytes,
        });
    }
    Ok(())
}

/// The first cycle found by an iterative depth-first search over
/// dependencies, as step indices in dependency order with the first step
/// repeated at the end (`a -> b -> a`).
fn find_cycle(upstream: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut mark = vec![Mark::New; upstream.len()];
    for start in 0..upstream.len() {
        if mark[start] != Mark::New {
            continue;
        }
        // (node, next edge to follow); the stack is the current path.
        let mut stack = vec![(start, 0usize)];
        mark[start] = Mark::OnStack;
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            if let Some(&next) = upstream[node].get(*edge) {
                *edge += 1;
                match mark[next] {
                    Mark::New => {
                        mark[next] = Mark::OnStack;
                        stack.push((next, 0));
                    }
                    Mark::OnStack => {
                        let from = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|(n, _)| *n).collect();
                        cycle.push(next);
                        return Some(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::{JsonText, StepDefinition};

    fn step(id: &str, deps: &[&str]) -> StepDefinition {
        StepDefinition::new(id, deps)
    }

    fn def(steps: Vec<StepDefinition>) -> WorkflowDefinition {
        WorkflowDefinition {
            name: "t".into(),
            steps: steps.into(),
            input: None,
            deadline_ms: None,
            priority: 0,
            labels: Default::default(),
        }
    }

    #[test]
    fn table_of_verdicts() {
        let limits = Limits {
            max_steps: 4,
            max_input_bytes: 10,
        };
        let mut big_input = step("a", &[]);
        big_input.input = Some(JsonText("\"01234567890\"".into()));
        let cases: Vec<(&str, WorkflowDefinition, Result<(), &str>)> = vec![
            (
                "diamond",
                def(vec![
                    step("a", &[]),
                    step("b", &["a"]),
                    step("c", &["a", "b"]),
                ]),
                Ok(()),
            ),
            ("empty", def(vec![]), Err("the workflow has no steps")),
            (
                "too many",
                def(vec![
                    step("a", &[]),
                    step("b", &[]),
                    step("c", &[]),
                    step("d", &[]),
                    step("e", &[]),
                ]),
                Err("5 steps, over the limit of 4"),
            ),
            (
                "duplicate",
                def(vec![step("a", &[]), step("a", &[])]),
                Err("step id `a` is used more than once"),
            ),
            (
                "unknown dep",
                def(vec![step("a", &["zz"])]),
                Err("step `a` depends on unknown step `zz`"),
            ),
            (
                "self loop",
                def(vec![step("a", &["a"])]),
                Err("dependency cycle: a -> a"),
            ),
            (
                "cycle",
                def(vec![
                    step("x", &[]),
                    step("a", &["c"]),
                    step("b", &["a"]),
                    step("c", &["b", "x"]),
                ]),
                Err("dependency cycle: a -> c -> b -> a"),
            ),
            (
                "input",
                def(vec![big_input]),
                Err("step `a` input is 13 bytes, over the limit of 10"),
            ),
        ];
        for (name, d, want) in cases {
            let got = validate(&d, &limits).map(|_| ()).map_err(|e| e.to_string());
            match want {
                Ok(()) => assert!(got.is_ok(), "{name}: {got:?}"),
                Err(msg) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(msg)),
                    "{name}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn dag_edges_and_roots() {
        let dag = validate(
            &def(vec![
                step("a", &[]),
                step("b", &["a"]),
                step("c", &["a", "b", "a"]),
            ]),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(dag.upstream, vec![vec![], vec![0], vec![0, 1]]);
        assert_eq!(dag.downstream, vec![vec![1, 2], vec![2], vec![]]);
        assert_eq!(dag.roots().collect::<Vec<_>>(), vec![0]);
    }
}
