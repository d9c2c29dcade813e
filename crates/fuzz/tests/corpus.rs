//! Replays every fuzz target's committed corpus (`fuzz/corpus/<target>/`), inputs found by
//! fuzzing that once crashed included: on stable Rust, in `cargo test`.

use std::path::PathBuf;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn every_target_replays_its_corpus() {
    for (target, run) in kuryr_fuzz::TARGETS {
        let dir = corpus(target);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{target}: corpus {} unreadable: {e}", dir.display()));
        let mut replayed = 0;
        for entry in entries {
            let path = entry.expect("corpus entry").path();
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
        // A corpus that vanished would make this test pass without replaying anything.
        assert!(
            replayed >= 2,
            "{target}: only {replayed} inputs in {}",
            dir.display()
        );
        println!("{target}: {replayed} inputs replayed");
    }
}
