//! The process table: every watcher the daemon has run and every process
//! slot, with the indexes requests use, so that a name, a watcher or a
//! group is found without a scan of every process.
//!
//! Ids are stable for the daemon's life. A watcher a reload removes keeps
//! its id and its slots (retired: stopped, invisible); added again under
//! the same name it gets them back. A slot `decr` removes is retired the
//! same way and revived by `incr`. The loaded configuration is never
//! changed: how many processes a watcher has now is the table's `live`.

use std::collections::HashMap;
use std::ops::{Index, IndexMut};

use ringmaster_config::{Config, WatcherConfig};
use ringmaster_protocol::ProcessName;

use crate::process::Process;

/// A watcher's place in the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct WatcherId(usize);

/// A process slot's place in the table (`web:2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SlotId(usize);

impl SlotId {
    /// The number the log pumps know the slot by.
    pub(crate) fn index(self) -> usize {
        self.0
    }

    /// The slot a log pump's number names.
    pub(crate) fn from_index(index: usize) -> Self {
        Self(index)
    }
}

/// One watcher as the table keeps it.
#[derive(Debug)]
pub(crate) struct Watcher {
    /// Its settings, from the configuration running now (its
    /// `numprocesses` is the file's; see `live`).
    pub config: WatcherConfig,
    /// How many processes it has now: slots `1..=live` are in use.
    pub live: u32,
    /// Removed by a reload: every slot retired.
    pub removed: bool,
    /// Its slots by wid (`slots[wid - 1]`), retired ones included.
    pub slots: Vec<SlotId>,
    /// Its depth in the `depends_on` graph (0: depends on nothing): what
    /// stops first, the deepest, and what starts first, the shallowest.
    pub rank: u32,
}

/// Every watcher and slot, and the indexes over them.
#[derive(Debug, Default)]
pub(crate) struct Table {
    watchers: Vec<Watcher>,
    slots: Vec<Process>,
    /// Watcher names (removed ones too) to ids.
    by_watcher: HashMap<String, WatcherId>,
    /// Aliases (`site:web_02`) to slots; `web:2` is found through its
    /// watcher, with no string kept per slot.
    by_alias: HashMap<String, SlotId>,
}

impl Table {
    /// The table for a configuration just loaded: its watchers, in order,
    /// each with its processes.
    pub(crate) fn new(config: &Config) -> Self {
        let mut table = Self::default();
        for watcher in &config.watchers {
            let id = table.add_watcher(watcher.clone());
            table.grow(id, watcher.numprocesses, config);
        }
        table.rank_watchers();
        table
    }

    /// Gives every watcher its rank in the `depends_on` graph of the
    /// watchers not removed (after a load or a reload).
    pub(crate) fn rank_watchers(&mut self) {
        let ranks = ringmaster_config::dependency_ranks(
            self.watchers
                .iter()
                .filter(|w| !w.removed)
                .map(|w| &w.config),
        );
        for watcher in &mut self.watchers {
            watcher.rank = ranks.get(&watcher.config.name).copied().unwrap_or(0);
        }
    }

    /// The watchers `id` depends on (those a reload removed are gone).
    pub(crate) fn dependencies(&self, id: WatcherId) -> Vec<WatcherId> {
        self.watchers[id.0]
            .config
            .depends_on
            .iter()
            .filter_map(|name| self.live_watcher(name))
            .collect()
    }

    /// The order key of slot `slot` for starting (ascending) and stopping
    /// (descending): its watcher's rank, then its priority.
    pub(crate) fn order(&self, slot: SlotId) -> (u32, i32) {
        let watcher = &self.watchers[self.slots[slot.0].watcher.0];
        (watcher.rank, watcher.config.priority)
    }

    /// Adds a watcher with no process yet.
    pub(crate) fn add_watcher(&mut self, mut config: WatcherConfig) -> WatcherId {
        let id = WatcherId(self.watchers.len());
        config.locations.clear();
        self.by_watcher.insert(config.name.clone(), id);
        self.watchers.push(Watcher {
            config,
            live: 0,
            removed: false,
            slots: Vec::new(),
            rank: 0,
        });
        id
    }

    /// The watcher called `name`, removed or not.
    pub(crate) fn watcher_named(&self, name: &str) -> Option<WatcherId> {
        self.by_watcher.get(name).copied()
    }

    /// The watcher called `name`, unless a reload removed it.
    pub(crate) fn live_watcher(&self, name: &str) -> Option<WatcherId> {
        self.watcher_named(name)
            .filter(|&id| !self.watchers[id.0].removed)
    }

    /// Every watcher id, in the order they were first loaded.
    pub(crate) fn watcher_ids(&self) -> impl Iterator<Item = WatcherId> + use<> {
        (0..self.watchers.len()).map(WatcherId)
    }

    /// A watcher.
    pub(crate) fn watcher(&self, id: WatcherId) -> &Watcher {
        &self.watchers[id.0]
    }

    /// A watcher, to change.
    pub(crate) fn watcher_mut(&mut self, id: WatcherId) -> &mut Watcher {
        &mut self.watchers[id.0]
    }

    /// A slot, to change, with its watcher's settings.
    pub(crate) fn slot_and_settings(&mut self, slot: SlotId) -> (&mut Process, &WatcherConfig) {
        let process = &mut self.slots[slot.0];
        let settings = &self.watchers[process.watcher.0].config;
        (process, settings)
    }

    /// The settings of a slot's watcher.
    pub(crate) fn settings_of(&self, slot: SlotId) -> &WatcherConfig {
        &self.watchers[self.slots[slot.0].watcher.0].config
    }

    /// Every slot id (retired ones too), in the order they were made.
    pub(crate) fn ids(&self) -> impl Iterator<Item = SlotId> + use<> {
        (0..self.slots.len()).map(SlotId)
    }

    /// Every slot.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Process> {
        self.slots.iter()
    }

    /// A slot by its log pump number, if there is one.
    pub(crate) fn get_mut(&mut self, slot: SlotId) -> Option<&mut Process> {
        self.slots.get_mut(slot.0)
    }

    /// The slots in use of a watcher, in wid order.
    pub(crate) fn live_slots(&self, id: WatcherId) -> &[SlotId] {
        let watcher = &self.watchers[id.0];
        let live = if watcher.removed { 0 } else { watcher.live };
        &watcher.slots[..live as usize]
    }

    /// Every slot in use, in configuration then wid order.
    pub(crate) fn all_live(&self) -> Vec<SlotId> {
        self.watcher_ids()
            .flat_map(|w| self.live_slots(w).iter().copied())
            .collect()
    }

    /// The slot named `name` (`web:2`, or an alias), unless retired.
    pub(crate) fn slot_named(&self, name: &str) -> Option<SlotId> {
        let by_wid = name.rsplit_once(':').and_then(|(watcher, wid)| {
            let wid: usize = wid.parse().ok()?;
            let watcher = self.by_watcher.get(watcher)?;
            self.watchers[watcher.0]
                .slots
                .get(wid.checked_sub(1)?)
                .copied()
        });
        by_wid
            .or_else(|| self.by_alias.get(name).copied())
            .filter(|&id| !self.slots[id.0].retired)
    }

    /// Raises watcher `id` to `total` processes: retired slots revived
    /// first (the lowest free wids), then new ones. Returns them, not
    /// started.
    pub(crate) fn grow(&mut self, id: WatcherId, total: u32, config: &Config) -> Vec<SlotId> {
        let live = self.watchers[id.0].live;
        self.watchers[id.0].live = total;
        let mut grown = Vec::new();
        for wid in live + 1..=total {
            let existing = self.watchers[id.0].slots.get(wid as usize - 1).copied();
            let slot = existing.unwrap_or_else(|| {
                let watcher = &self.watchers[id.0];
                let mut process = Process::new(ProcessName::new(&watcher.config.name, wid), id);
                process.alias = config.alias(&watcher.config, wid);
                let slot = SlotId(self.slots.len());
                if let Some(alias) = &process.alias {
                    self.by_alias.insert(alias.clone(), slot);
                }
                self.slots.push(process);
                self.watchers[id.0].slots.push(slot);
                slot
            });
            self.slots[slot.0].retired = false;
            grown.push(slot);
        }
        grown
    }

    /// Lowers watcher `id` to `total` processes: the slots above it are
    /// retired (the caller stops them). Returns them.
    pub(crate) fn shrink(&mut self, id: WatcherId, total: u32) -> Vec<SlotId> {
        let watcher = &mut self.watchers[id.0];
        let live = watcher.live;
        watcher.live = total.min(live);
        let shrunk: Vec<SlotId> = watcher.slots[total.min(live) as usize..live as usize].to_vec();
        for &slot in &shrunk {
            self.slots[slot.0].retired = true;
        }
        shrunk
    }

    /// Gives every slot the alias the groups of `config` give it.
    pub(crate) fn realias(&mut self, config: &Config) {
        self.by_alias.clear();
        for slot in &mut self.slots {
            let watcher = &self.watchers[slot.watcher.0];
            slot.alias = config.alias(&watcher.config, slot.name.wid);
        }
        for (index, slot) in self.slots.iter().enumerate() {
            if let Some(alias) = &slot.alias {
                self.by_alias.insert(alias.clone(), SlotId(index));
            }
        }
    }
}

impl Index<SlotId> for Table {
    type Output = Process;

    fn index(&self, slot: SlotId) -> &Process {
        &self.slots[slot.0]
    }
}

impl IndexMut<SlotId> for Table {
    fn index_mut(&mut self, slot: SlotId) -> &mut Process {
        &mut self.slots[slot.0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringmaster.toml");
        std::fs::write(&path, text).unwrap();
        ringmaster_config::load(&path, None).unwrap()
    }

    #[test]
    fn names_watchers_and_aliases_are_indexed() {
        let config = config(
            "[watchers.web]\ncmd = \"sleep 1\"\nnumprocesses = 2\nprocess_name = \"web_$(wid)\"\n\
             [watchers.db]\ncmd = \"sleep 1\"\n[groups]\nsite = [\"web\"]\n",
        );
        let table = Table::new(&config);
        let web = table.live_watcher("web").unwrap();
        assert_eq!(table.live_slots(web).len(), 2);
        let second = table.slot_named("web:2").unwrap();
        assert_eq!(table[second].name.to_string(), "web:2");
        let alias = table[second].alias.clone().unwrap();
        assert_eq!(table.slot_named(&alias), Some(second));
        let order: Vec<String> = table
            .all_live()
            .into_iter()
            .map(|s| table[s].name.to_string())
            .collect();
        assert_eq!(order, ["web:1", "web:2", "db:1"]);
        assert_eq!(table.slot_named("web:3"), None);
    }

    #[test]
    fn shrink_retires_and_grow_revives_the_lowest_wids() {
        let config = config("[watchers.web]\ncmd = \"sleep 1\"\nnumprocesses = 3\n");
        let mut table = Table::new(&config);
        let web = table.live_watcher("web").unwrap();
        let retired = table.shrink(web, 1);
        assert_eq!(retired.len(), 2);
        assert_eq!(
            table.slot_named("web:2"),
            None,
            "a retired slot has no name"
        );
        assert_eq!(table.live_slots(web).len(), 1);
        let grown = table.grow(web, 4, &config);
        assert_eq!(grown[..2], retired[..], "the old slots come back first");
        assert_eq!(table[grown[2]].name.to_string(), "web:4");
        assert_eq!(table.ids().count(), 4, "only one slot was made");
        // Growing costs what it adds.
        let more = table.grow(web, 104, &config);
        assert_eq!(more.len(), 100);
        assert_eq!(table.watcher(web).live, 104);
    }
}
