//! An input table in JSONL (consent events; the reader is the same for every table): read and
//! conformed to its contract, or refused with an error naming file, row and column — never a
//! panic, never a silently wrong value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("consent.jsonl");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let contract = cg_io::schema::contract("consent").expect("the consent contract");
    let _ = cg_io::read_table(&path, &contract, |batch, _| {
        assert_eq!(batch.schema(), contract.schema);
        Ok(())
    });
});
