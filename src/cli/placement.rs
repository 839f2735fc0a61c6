//! `placement`: where ECS could and would place a new task of a service (or of each), and why every other instance
//! is ruled out.

use ecs_rebalancer::model::Service;
use ecs_rebalancer::placement::{PlacementIndex, ServicePlacement};

use super::{load_cluster, output, BadInput, PlacementArgs};

pub fn run(args: PlacementArgs) -> anyhow::Result<()> {
    let cluster = load_cluster(&args.snapshot)?;
    let index = PlacementIndex::new(&cluster);
    let services: Vec<&Service> = match &args.service {
        Some(name) => vec![cluster.service(name).ok_or_else(|| {
            let known: Vec<&str> = cluster.services().iter().map(|s| s.service_name.as_str()).collect();
            BadInput(format!(
                "{}: no service {name:?}; the snapshot has: {}",
                args.snapshot.display(),
                known.join(", ")
            ))
        })?],
        None => cluster.services().iter().collect(),
    };
    let answers: Vec<ServicePlacement> = services.iter().map(|s| ServicePlacement::new(&index, s)).collect();
    match (&args.service, answers.as_slice()) {
        // One service asked for: its answer alone, not a list of one.
        (Some(_), [answer]) => output::show(args.output, answer, |a| a.to_table(&cluster)),
        _ => output::show(args.output, &answers, |all| {
            all.iter().map(|a| a.to_table(&cluster)).collect::<Vec<_>>().join("\n")
        }),
    }
}
