//! Binary conventions: exit codes 0/1/2, `error:` / `Caused by:` / `hint:` on stderr.

use crate::util::{consentgate, stderr, stdout};

#[test]
fn help_and_version_exit_zero() {
    let o = consentgate(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("generate"));
    let o = consentgate(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("consentgate "));
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["generate", "--bogus"][..],
        &["generate", "--members", "0", "--out", "x"],
        &["generate", "--members", "ten", "--out", "x"],
        &["generate", "--format", "xlsx", "--out", "x"],
        &["generate"],
        &["no-such-command"],
    ] {
        let o = consentgate(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("error:"), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn unwritable_output_is_an_error_naming_the_path() {
    let dir = cg_test_support::tempdir();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let out = file.join("corpus");
    let o = consentgate(&[
        "generate",
        "--members",
        "10",
        "--content",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("error: cannot generate the corpus"), "{err}");
    assert!(err.contains("Caused by:"), "{err}");
    assert!(err.contains(out.to_str().unwrap()), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
