//! Replays every fuzz target's committed corpus (`fuzz/corpus/<target>/`, minimized) and the
//! inputs that once crashed it (`fuzz/regressions/<target>/`, kept by name whatever the
//! minimization drops): on stable Rust, in `cargo test`.

use std::path::PathBuf;

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join(target);
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.expect("a directory entry").path())
            .collect(),
        // Only regressions may be missing: a target that never crashed has none.
        Err(_) if kind == "regressions" => Vec::new(),
        Err(e) => panic!("{target}: {} unreadable: {e}", dir.display()),
    }
}

#[test]
fn every_target_replays_its_corpus() {
    for (target, run) in kuryr_fuzz::TARGETS {
        let corpus = inputs("corpus", target);
        // A corpus that vanished would make this test pass without replaying anything.
        assert!(
            corpus.len() >= 100,
            "{target}: only {} corpus inputs",
            corpus.len()
        );
        let mut replayed = 0;
        for path in corpus.into_iter().chain(inputs("regressions", target)) {
            let data = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{target}: {} unreadable: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(
                outcome.is_ok(),
                "{target}: input {} panics (reproduce with `cargo fuzz run {target} {}`)",
                path.display(),
                path.display()
            );
            replayed += 1;
        }
        println!("{target}: {replayed} inputs replayed");
    }
}
