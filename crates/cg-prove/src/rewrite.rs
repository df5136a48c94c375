//! Rewrites one side's Cedar policies to read that side's copies of the derived attributes
//! (`principal.regions` → `principal.regions__new`), on the policy's JSON form (Cedar's EST), so
//! every syntax that reads an attribute (`principal.x`, `principal["x"]`, `has`) is covered.

use cedar_policy::{Policy as CedarPolicy, PolicySet};
use serde_json::Value;

use crate::error::ProveError;
use crate::model::{Side, Var, is_per_side};

/// `set`'s policies, each rewritten for `side` (ids kept).
pub(crate) fn rewrite_for_side(
    set: &PolicySet,
    side: Side,
) -> Result<Vec<CedarPolicy>, ProveError> {
    let mut out = Vec::new();
    for policy in set.policies() {
        let id = policy.id().clone();
        let model = |message: String| ProveError::Unsupported {
            policy: id.to_string(),
            message,
        };
        let mut json = policy.to_json().map_err(|e| model(e.to_string()))?;
        rename(&mut json, side).map_err(model)?;
        let rewritten = CedarPolicy::from_json(Some(id.clone()), json)
            .map_err(|e| model(format!("the rewritten policy does not parse: {e}")))?;
        out.push(rewritten);
    }
    Ok(out)
}

/// Renames per-side attribute reads in an EST value, in place. A bare `context` (the record as
/// a whole) cannot be split per side and is refused.
fn rename(value: &mut Value, side: Side) -> Result<(), String> {
    match value {
        Value::Array(items) => items.iter_mut().try_for_each(|v| rename(v, side)),
        Value::Object(map) => {
            if map.get("Var").and_then(Value::as_str) == Some("context") {
                return Err(
                    "it uses `context` as a whole; the proof can only follow reads of its attributes"
                        .to_owned(),
                );
            }
            for op in [".", "has"] {
                if let Some(Value::Object(inner)) = map.get_mut(op)
                    && let Some(var) = inner
                        .get("left")
                        .and_then(|l| l.get("Var"))
                        .and_then(Value::as_str)
                        .and_then(Var::from_est)
                {
                    match inner.get_mut("attr") {
                        Some(Value::String(attr)) => rename_attr(var, attr, side),
                        // Extended `has` (`principal has a.b`): the first name is the variable's.
                        Some(Value::Array(path)) => {
                            if let Some(Value::String(attr)) = path.first_mut() {
                                rename_attr(var, attr, side);
                            }
                        }
                        _ => return Err(format!("unexpected `{op}` node")),
                    }
                    // The left side is the variable itself: nothing else to rename there.
                    return Ok(());
                }
            }
            map.values_mut().try_for_each(|v| rename(v, side))
        }
        _ => Ok(()),
    }
}

fn rename_attr(var: Var, attr: &mut String, side: Side) {
    if is_per_side(var, attr) {
        attr.push_str(side.suffix());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn rewritten(text: &str, side: Side) -> Result<String, ProveError> {
        let set = PolicySet::from_str(text).unwrap();
        let out = rewrite_for_side(&set, side)?;
        Ok(out
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n"))
    }

    #[test]
    fn per_side_reads_are_renamed_in_every_syntax() {
        let text = r#"@id("p") permit (principal, action, resource) when {
            principal.regions.contains("EU") && principal["age_now"] > 3 &&
            context has regimes && context.purpose == "x" && principal.country == "FR" &&
            resource.kind == "post" && context.regimes.contains("li-2025-11")
        };"#;
        let out = rewritten(text, Side::New).unwrap();
        for renamed in [
            "regions__new",
            "age_now__new",
            "has regimes__new",
            "kind__new",
            "context.regimes__new",
        ] {
            assert!(out.contains(renamed), "{renamed} missing in {out}");
        }
        assert!(out.contains("context.purpose ==") && out.contains("principal.country =="));
        assert!(rewritten(text, Side::Old).unwrap().contains("regions__old"));
    }

    #[test]
    fn context_as_a_whole_is_refused() {
        let text = r#"@id("p") permit (principal, action, resource) when { context == {"purpose": "x"} };"#;
        let err = rewritten(text, Side::Old).unwrap_err().to_string();
        assert!(err.contains("as a whole"), "{err}");
    }
}
