//! The model registry: which models were trained on which datasets, and when. A TOML
//! (`[[model]] name, datasets = [ids], trained_at`) or JSON (`{"model": [...]}`) file the model
//! teams keep; `impact`, the member export and the records of processing read it.

use std::path::Path;

use cg_model::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ReportError;

/// One model in the registry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ModelEntry {
    /// Model name.
    pub name: String,
    /// Dataset ids it was trained on.
    pub datasets: Vec<String>,
    /// When training started (RFC 3339 or a date).
    pub trained_at: String,
}

#[derive(Deserialize)]
struct Registry {
    #[serde(alias = "models")]
    model: Vec<ModelEntry>,
}

/// Reads a registry (`.json` as JSON, anything else as TOML); every `trained_at` must parse.
pub fn read(path: &Path) -> Result<Vec<ModelEntry>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))?;
    let registry: Registry = if path.extension().and_then(|e| e.to_str()) == Some("json") {
        serde_json::from_str(&text)
            .map_err(|e| ReportError::invalid(path, format!("not a models registry: {e}")))?
    } else {
        toml::from_str(&text)
            .map_err(|e| ReportError::invalid(path, format!("not a models registry: {e}")))?
    };
    for m in &registry.model {
        Timestamp::parse(&m.trained_at).map_err(|e| {
            ReportError::invalid(path, format!("model `{}`: trained_at: {e}", m.name))
        })?;
    }
    Ok(registry.model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_json_registries_read_alike_and_bad_times_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("models.toml");
        std::fs::write(
            &t,
            "[[model]]\nname = \"m1\"\ndatasets = [\"ds-1\"]\ntrained_at = \"2025-12-02\"\n",
        )
        .unwrap();
        let j = dir.path().join("models.json");
        std::fs::write(
            &j,
            r#"{"models": [{"name": "m1", "datasets": ["ds-1"], "trained_at": "2025-12-02"}]}"#,
        )
        .unwrap();
        assert_eq!(read(&t).unwrap(), read(&j).unwrap());
        std::fs::write(
            &t,
            "[[model]]\nname = \"m2\"\ndatasets = []\ntrained_at = \"soon\"\n",
        )
        .unwrap();
        let e = read(&t).unwrap_err().to_string();
        assert!(e.contains("m2") && e.contains("trained_at"), "{e}");
    }
}
