//! ECS's string enumerations (`"ACTIVE"`, `"DRAINING"`, …) as Rust enums.
//!
//! ECS adds values over time (`REGISTRATION_FAILED` arrived years after `ACTIVE`), so every enum keeps an
//! `Other(String)` variant: an unknown value still loads, round-trips unchanged, and code that matches on the known
//! variants treats it as "not the state I need", which is the fail-closed reading (an instance whose status we do not
//! understand is never `Active`).

/// Declares a string-backed enum with the given `Variant => "WIRE"` pairs plus `Other(String)`.
macro_rules! ecs_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this build does not know; kept verbatim.
            Other(String),
        }

        impl $name {
            /// The value exactly as ECS spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($wire => Self::$variant,)+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Ok(Self::from(s.as_ref()))
            }
        }
    };
}

ecs_enum! {
    /// `ContainerInstance.status` (docs/ecs.md: Container instances).
    InstanceStatus {
        Registering => "REGISTERING",
        RegistrationFailed => "REGISTRATION_FAILED",
        Active => "ACTIVE",
        Inactive => "INACTIVE",
        Deregistering => "DEREGISTERING",
        Draining => "DRAINING",
    }
}

ecs_enum! {
    /// `Task.lastStatus` / `Task.desiredStatus`: the task lifecycle.
    TaskStatus {
        Provisioning => "PROVISIONING",
        Pending => "PENDING",
        Activating => "ACTIVATING",
        Running => "RUNNING",
        Deactivating => "DEACTIVATING",
        Stopping => "STOPPING",
        Deprovisioning => "DEPROVISIONING",
        Stopped => "STOPPED",
        Deleted => "DELETED",
    }
}

ecs_enum! {
    /// `Service.schedulingStrategy`.
    SchedulingStrategy {
        Replica => "REPLICA",
        Daemon => "DAEMON",
    }
}

ecs_enum! {
    /// `Deployment.status`: the newest deployment is `PRIMARY`, older ones still running tasks are `ACTIVE`.
    DeploymentStatus {
        Primary => "PRIMARY",
        Active => "ACTIVE",
        Inactive => "INACTIVE",
    }
}

ecs_enum! {
    /// `Deployment.rolloutState` (docs/ecs.md: UpdateService with forceNewDeployment, deployment circuit breaker).
    RolloutState {
        InProgress => "IN_PROGRESS",
        Completed => "COMPLETED",
        Failed => "FAILED",
    }
}

ecs_enum! {
    /// `PlacementStrategy.type`.
    PlacementStrategyType {
        Binpack => "binpack",
        Spread => "spread",
        Random => "random",
    }
}

ecs_enum! {
    /// `PlacementConstraint.type`.
    PlacementConstraintType {
        DistinctInstance => "distinctInstance",
        MemberOf => "memberOf",
    }
}

ecs_enum! {
    /// `TaskDefinition.networkMode`. Absent means `bridge` on Linux EC2 instances.
    NetworkMode {
        Bridge => "bridge",
        Host => "host",
        Awsvpc => "awsvpc",
        None => "none",
    }
}

ecs_enum! {
    /// Transport of a port mapping or network binding.
    Protocol {
        Tcp => "tcp",
        Udp => "udp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_parse_to_their_variant_and_print_back() {
        assert_eq!(InstanceStatus::from("DRAINING"), InstanceStatus::Draining);
        assert_eq!(InstanceStatus::Draining.as_str(), "DRAINING");
        assert_eq!(RolloutState::from("IN_PROGRESS").to_string(), "IN_PROGRESS");
    }

    #[test]
    fn unknown_values_are_kept_verbatim_and_are_never_the_known_variant() {
        let s: InstanceStatus = serde_json::from_str("\"HIBERNATING\"").unwrap();
        assert_eq!(s, InstanceStatus::Other("HIBERNATING".into()));
        assert_ne!(s, InstanceStatus::Active);
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"HIBERNATING\"");
    }
}
