//! `when` conditions: CEL expressions (via the `cel` crate) over the
//! workflow input (`input`) and upstream outputs (`steps.<id>.output`).
//! Pure: the same expression and values always give the same answer, so
//! replay reproduces skips. A condition must evaluate to a boolean.
//!
//! The parser recurses deeply per nesting level (a debug build overflowed a
//! 2 MiB stack at 16 levels), so an expression is compiled and run on a
//! thread of its own with a [`EVAL_STACK_BYTES`] stack, and submissions
//! bound how much an expression may nest (`validate::check_bounds`).

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::{Map, Value};

use crate::domain::events::JsonText;

fn json(text: Option<&JsonText>) -> Value {
    text.and_then(|t| t.to_value().ok()).unwrap_or(Value::Null)
}

/// Evaluates `expr`; `Err` carries a message naming what went wrong.
pub fn evaluate(
    expr: &str,
    input: Option<&JsonText>,
    outputs: &[(&str, Option<&JsonText>)],
) -> Result<bool, String> {
    let mut steps = Map::new();
    for (id, out) in outputs {
        let mut step = Map::new();
        step.insert("output".into(), json(*out));
        steps.insert((*id).to_string(), Value::Object(step));
    }
    let input = json(input);
    let run = move || evaluate_here(expr, input, steps);
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("baton-cel".into())
            .stack_size(EVAL_STACK_BYTES)
            .spawn_scoped(s, run)
            .map_err(|e| format!("could not start its evaluation: {e}"))?
            .join()
            .unwrap_or_else(|_| Err("the CEL evaluator panicked on this expression".into()))
    })
}

/// Stack of the thread a condition runs on: room for the nesting
/// `validate::MAX_CONDITION_DEPTH` allows, with a wide margin (only the
/// pages touched are ever committed).
pub const EVAL_STACK_BYTES: usize = 256 << 20;

fn evaluate_here(expr: &str, input: Value, steps: Map<String, Value>) -> Result<bool, String> {
    // The parser and interpreter are third-party code fed user text: a panic
    // in them must become an evaluation error, not take the engine down.
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<bool, String> {
        let program = cel::Program::compile(expr).map_err(|e| format!("does not parse: {e}"))?;
        let mut ctx = cel::Context::default();
        let input = cel::to_value(&input).map_err(|e| e.to_string())?;
        let steps = cel::to_value(Value::Object(steps)).map_err(|e| e.to_string())?;
        ctx.add_variable_from_value("input", input);
        ctx.add_variable_from_value("steps", steps);
        match program.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("evaluates to {other:?}, not a boolean")),
            Err(e) => Err(e.to_string()),
        }
    }));
    result.unwrap_or_else(|_| Err("the CEL evaluator panicked on this expression".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_over_input_and_outputs() {
        let input = JsonText(r#"{"pr":42,"repo":"acme/api"}"#.into());
        let out = JsonText(r#"{"findings":2}"#.into());
        let outs = [("review", Some(&out))];
        assert_eq!(evaluate("input.pr > 10", Some(&input), &outs), Ok(true));
        assert_eq!(
            evaluate("steps.review.output.findings == 0", Some(&input), &outs),
            Ok(false)
        );
        assert!(evaluate("input.pr +", Some(&input), &outs)
            .unwrap_err()
            .contains("parse"));
        assert!(evaluate("input.pr", Some(&input), &outs)
            .unwrap_err()
            .contains("not a boolean"));
        assert!(evaluate("steps.missing.output.x", Some(&input), &outs).is_err());
    }
}
