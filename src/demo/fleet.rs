//! Simulated units — PiMeet devices, Kraliki VMs — between writes: which are down and until
//! when, which software release each runs, and what the demo agents were told to do. A command
//! takes the unit down for a while (so a restart from the dashboard visibly takes it offline
//! and back within a minute) and leaves a line for its log.

use std::collections::BTreeMap;

use parking_lot::Mutex;

const SECOND_NS: i64 = 1_000_000_000;

/// What the dashboard's actions ask a unit to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Restart,
    Reboot,
    Update,
    Screenshot,
    Rebuild,
}

impl Command {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "restart" => Self::Restart,
            "reboot" => Self::Reboot,
            "update" => Self::Update,
            "screenshot" => Self::Screenshot,
            "rebuild" => Self::Rebuild,
            _ => return None,
        })
    }

    /// How long the unit is away.
    fn downtime_ns(self) -> i64 {
        SECOND_NS
            * match self {
                Self::Restart => 30,
                Self::Update => 40,
                Self::Reboot | Self::Rebuild => 50,
                Self::Screenshot => 0,
            }
    }
}

/// Why a unit is away, while it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Away {
    pub command: Command,
    pub until_ns: i64,
}

#[derive(Debug, Clone, Default)]
pub struct UnitState {
    pub away: Option<Away>,
    /// Releases installed since the history began (an update adds one).
    pub updates: u32,
    /// Set by a rebuild: the disk starts empty again.
    pub rebuilt_at_ns: Option<i64>,
    /// Log lines waiting to be written: (time, level, message).
    pub log: Vec<(i64, &'static str, String)>,
}

/// The units of one tenant.
#[derive(Default)]
pub struct Fleet {
    units: Mutex<BTreeMap<String, UnitState>>,
}

impl Fleet {
    pub fn new(ids: impl IntoIterator<Item = String>) -> Self {
        Self {
            units: Mutex::new(
                ids.into_iter()
                    .map(|id| (id, UnitState::default()))
                    .collect(),
            ),
        }
    }

    /// Obeys `command` on `unit` at `now_ns`; an unknown unit is an error, and so is a unit
    /// still away (its agent is not answering).
    pub fn command(&self, unit: &str, command: Command, now_ns: i64) -> Result<(), String> {
        let mut units = self.units.lock();
        let state = units
            .get_mut(unit)
            .ok_or_else(|| format!("no unit {unit:?}"))?;
        if state.away.is_some_and(|a| a.until_ns > now_ns) {
            return Err(format!(
                "{unit} is not answering (busy with an earlier command)"
            ));
        }
        let what = format!("{command:?}").to_lowercase();
        state.log.push((
            now_ns,
            "INFO",
            format!("{what} requested from the dashboard"),
        ));
        match command {
            Command::Screenshot => {
                state.log.push((
                    now_ns,
                    "INFO",
                    "screenshot saved to /tmp/screenshot.png".into(),
                ));
            }
            _ => {
                state.away = Some(Away {
                    command,
                    until_ns: now_ns + command.downtime_ns(),
                });
            }
        }
        Ok(())
    }

    /// Each unit's state at `now_ns`, finishing what has run its course (and logging so).
    pub fn at(&self, now_ns: i64) -> BTreeMap<String, UnitState> {
        let mut units = self.units.lock();
        for state in units.values_mut() {
            let Some(away) = state.away.filter(|a| a.until_ns <= now_ns) else {
                continue;
            };
            state.away = None;
            match away.command {
                Command::Update => state.updates += 1,
                Command::Rebuild => {
                    state.rebuilt_at_ns = Some(away.until_ns);
                    state.updates += 1;
                }
                _ => {}
            }
            let what = format!("{:?}", away.command).to_lowercase();
            state
                .log
                .push((away.until_ns, "INFO", format!("back online after {what}")));
        }
        let snapshot = units.clone();
        for state in units.values_mut() {
            state.log.clear();
        }
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_takes_a_unit_away_and_back() {
        let fleet = Fleet::new(["a".to_string(), "b".to_string()]);
        fleet.command("a", Command::Restart, 0).unwrap();
        assert!(
            fleet.command("a", Command::Reboot, SECOND_NS).is_err(),
            "still away"
        );
        assert!(fleet.command("zz", Command::Restart, 0).is_err());
        assert!(Command::parse("format").is_none());
        let during = fleet.at(10 * SECOND_NS);
        assert!(during["a"].away.is_some() && during["b"].away.is_none());
        assert_eq!(during["a"].log.len(), 1, "the request is logged once");
        let after = fleet.at(31 * SECOND_NS);
        assert!(after["a"].away.is_none());
        assert!(after["a"].log[0].2.contains("back online after restart"));
        assert!(fleet.at(32 * SECOND_NS)["a"].log.is_empty());
        fleet.command("b", Command::Update, 0).unwrap();
        assert_eq!(fleet.at(41 * SECOND_NS)["b"].updates, 1);
    }
}
