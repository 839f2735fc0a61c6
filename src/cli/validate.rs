//! `validate`: every error of the policy files, placed; exit 2 if any.

use ecs_rebalancer::policy;

use super::{BadInput, ValidateArgs};

pub fn run(args: ValidateArgs) -> anyhow::Result<()> {
    policy::load_paths(&args.paths).map_err(|d| BadInput(d.to_string()))?;
    Ok(())
}
