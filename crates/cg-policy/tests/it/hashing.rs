//! Content hashes: stable for the same inputs, different for any change.

use cg_policy::{Policy, PolicyConfig, SourceFile};

#[test]
fn hash_is_stable_and_sensitive() {
    let a = Policy::bundled("timeline", PolicyConfig::default()).unwrap();
    let b = Policy::bundled("timeline", PolicyConfig::default()).unwrap();
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.hash().len(), 64);
    assert_eq!(a.name(), "timeline");
    let pinned = Policy::bundled("li-2024-09", PolicyConfig::default()).unwrap();
    assert_ne!(a.hash(), pinned.hash());
    let mut cfg = PolicyConfig::default();
    cfg.set("minimum_age=16").unwrap();
    assert_ne!(a.hash(), Policy::bundled("timeline", cfg).unwrap().hash());
    let extra = SourceFile {
        name: "extra.cedar".into(),
        text: "@id(\"extra/x\")\n@reason(\"region_suspended\")\nforbid (principal, action == Action::\"train\", resource) when { principal.country == \"FR\" };\n".into(),
    };
    let user = Policy::with_files(vec![extra], PolicyConfig::default()).unwrap();
    assert_eq!(user.name(), "extra");
    assert_ne!(a.hash(), user.hash());
}

#[test]
fn unknown_policy_names_the_bundled_ones() {
    let err = Policy::resolve("li-2099", PolicyConfig::default()).unwrap_err();
    assert!(err.is_usage());
    let msg = err.to_string();
    assert!(msg.contains("li-2099") && msg.contains("timeline"), "{msg}");
}

#[test]
fn a_recipe_remakes_the_same_policy_after_a_json_round_trip() {
    let mut cfg = PolicyConfig::default();
    cfg.set("minimum_age=16").unwrap();
    let extra = SourceFile {
        name: "extra.cedar".into(),
        text: "@id(\"extra/x\")\n@reason(\"region_suspended\")\nforbid (principal, action == Action::\"train\", resource) when { principal.country == \"FR\" };\n".into(),
    };
    for policy in [
        Policy::bundled("li-2024-09", cfg.clone()).unwrap(),
        Policy::with_files(vec![extra], cfg).unwrap(),
    ] {
        let json = serde_json::to_string(policy.recipe()).unwrap();
        let again = Policy::from_recipe(&serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(again.hash(), policy.hash(), "{json}");
        assert_eq!(again.name(), policy.name());
    }
}

#[test]
fn a_user_file_named_like_a_bundled_one_replaces_it() {
    let common = cg_policy::BUNDLED_FILES
        .iter()
        .find(|(n, _)| *n == "common.cedar")
        .unwrap()
        .1;
    let gpc = "@id(\"common/opted_out\")";
    assert!(common.contains(gpc));
    // Without the replacement, the same ids twice would be refused as duplicates.
    let edited = SourceFile {
        name: "team/policies/common.cedar".into(),
        text: common.replace(
            "principal.consent == \"denied\" ||\n  (principal.gpc_signal && context.gpc_as_objection)",
            "principal.consent == \"denied\"",
        ),
    };
    let replaced = Policy::with_files(vec![edited], PolicyConfig::default()).unwrap();
    let bundled = Policy::bundled("timeline", PolicyConfig::default()).unwrap();
    assert_eq!(replaced.len(), bundled.len());
    assert_ne!(replaced.hash(), bundled.hash());
    let text = replaced.cedar_policies().to_cedar().unwrap_or_default();
    assert!(!text.contains("gpc_signal"), "the bundled rule is gone");
}

#[test]
fn a_directory_is_its_cedar_files_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let rule = |id: &str| {
        format!(
            "@id(\"{id}\")\n@reason(\"content_kind_excluded\")\nforbid (principal, action == Action::\"train\", resource) when {{ resource.kind == \"{id}\" }};\n"
        )
    };
    std::fs::write(dir.path().join("b.cedar"), rule("poll")).unwrap();
    std::fs::write(dir.path().join("a.cedar"), rule("quiz")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a policy").unwrap();
    let p = Policy::resolve(dir.path().to_str().unwrap(), PolicyConfig::default()).unwrap();
    assert_eq!(p.name(), "a");
    let bundled = Policy::bundled("timeline", PolicyConfig::default()).unwrap();
    assert_eq!(p.len(), bundled.len() + 2);
    let empty = tempfile::tempdir().unwrap();
    let err = Policy::resolve(empty.path().to_str().unwrap(), PolicyConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no `.cedar` file"), "{err}");
}
