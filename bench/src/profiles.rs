//! The workloads: the scaled Bellyfed profile and synthetic manifests.

use std::path::{Path, PathBuf};

use anyhow::Context;
use stackwave_core::synth::{self, Shape};

/// Seconds of a Bellyfed stack in the emulator: one emulated second stands for one real minute
/// (Aurora ~15 min, the ECS service ~6 min, the network ~3 min, the rest 1–2 min). `name` is
/// the stack name with or without its `-<environment>` suffix.
pub fn bellyfed_seconds(name: &str) -> f64 {
    let base = name.split('-').next().unwrap_or(name);
    match base {
        "BellyfedAuroraStack" => 15.0,
        "BellyfedEcsServiceStack" => 6.0,
        "BellyfedNetworkStack" => 3.0,
        "BellyfedEcsInfraStack"
        | "BellyfedTypesenseInfraStack"
        | "BellyfedDbMigrationStack"
        | "BellyfedTypesenseServiceStack"
        | "BellyfedLambdaStack"
        | "BellyfedFrontendCicdStack" => 2.0,
        _ => 1.0,
    }
}

/// The synthetic manifest's name (stack names `sy-s<i>-n<j>-<environment>`).
pub const SYNTH_NAME: &str = "sy";
pub const SYNTH_TEMPLATE: &str = "templates/stack.yaml";

/// Write a synthetic manifest and its template under `dir`; returns `dir`.
pub fn write_synth(
    dir: &Path,
    stages: usize,
    per_stage: usize,
    shape: Shape,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir.join("templates"))
        .with_context(|| format!("create {}", dir.display()))?;
    let text = synth::manifest_yaml(SYNTH_NAME, stages, per_stage, shape, SYNTH_TEMPLATE);
    std::fs::write(dir.join("manifest.yaml"), text)?;
    std::fs::write(dir.join(SYNTH_TEMPLATE), synth::TEMPLATE_YAML)?;
    Ok(dir.to_path_buf())
}

/// A fresh environment name: `<prefix><6 hex>`.
pub fn fresh_env(prefix: &str) -> String {
    format!("{prefix}{:06x}", fastrand::u32(..0x0100_0000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bellyfed_profile() {
        assert_eq!(bellyfed_seconds("BellyfedAuroraStack-bf12ab"), 15.0);
        assert_eq!(bellyfed_seconds("BellyfedEcsServiceStack"), 6.0);
        assert_eq!(bellyfed_seconds("BellyfedNetworkStack-x"), 3.0);
        assert_eq!(bellyfed_seconds("BellyfedLambdaStack-x"), 2.0);
        assert_eq!(bellyfed_seconds("BellyfedBootstrapStack-x"), 1.0);
    }

    #[test]
    fn the_bellyfed_example_plans_with_these_durations() {
        let dir = stackwave_cli::local::repo_root().join("examples/bellyfed");
        let text = std::fs::read_to_string(dir.join("manifest.yaml")).expect("manifest");
        let plan = stackwave_core::plan::from_text(&text, "bench", &|p| dir.join(p).is_file())
            .expect("plan");
        assert_eq!(plan.stacks.len(), 14);
        let ideal = crate::schedule::ideal(&plan, &bellyfed_seconds);
        // bootstrap 1+1, infrastructure 3+2, data 15+2, application 6, frontend 2.
        assert_eq!(ideal, 32.0);
        assert_eq!(crate::schedule::dag(&plan, &bellyfed_seconds), 23.0);
    }

    #[test]
    fn synthetic_dir() {
        let dir = std::env::temp_dir().join(format!("sw-bench-test-{:08x}", fastrand::u32(..)));
        write_synth(&dir, 2, 3, Shape::FanIn).expect("write");
        let text = std::fs::read_to_string(dir.join("manifest.yaml")).expect("read");
        let plan =
            stackwave_core::plan::from_text(&text, "e", &|p| dir.join(p).is_file()).expect("plan");
        assert_eq!(plan.stacks.len(), 6);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(fresh_env("bf").starts_with("bf"));
        assert_eq!(fresh_env("bf").len(), 8);
    }
}
