//! A directory of a unit test's own, removed when the test ends, also when it fails.

use std::path::{Path, PathBuf};

pub struct TestDir(PathBuf);

impl TestDir {
    /// A new, empty `rt-shim-NAME-PID` under the temporary directory.
    pub fn new(name: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("rt-shim-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("make the test's directory");
        TestDir(dir)
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
