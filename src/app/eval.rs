//! (in progress) `pushback eval DIR`
use std::path::Path;

pub fn run(_dir: &Path, _rules: Option<&Path>, _json: bool) -> anyhow::Result<()> {
    anyhow::bail!("eval is not built yet")
}
