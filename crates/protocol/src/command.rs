//! The protocol's commands, as one table: the enum, the wire names and
//! the list every did-you-mean and documentation test reads come from
//! the same lines, so none can be left out of one of them.

/// Defines [`Command`] from `Variant => "wire name"` lines.
macro_rules! commands {
    ($($variant:ident => $name:literal,)*) => {
        /// A command of the control protocol.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Command {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Command {
            /// Every command, in the order docs/protocol.md lists them.
            pub const ALL: &'static [Command] = &[$(Command::$variant),*];
            /// Every command's wire name, in the same order.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// The wire name (`status`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Command::$variant => $name,)*
                }
            }

            /// The command called `name` on the wire.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Command::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

commands! {
    Status => "status",
    Start => "start",
    Stop => "stop",
    Restart => "restart",
    Signal => "signal",
    Pid => "pid",
    Tail => "tail",
    Maintail => "maintail",
    Clear => "clear",
    Incr => "incr",
    Decr => "decr",
    Stats => "stats",
    Reread => "reread",
    Reload => "reload",
    Reopen => "reopen",
    Events => "events",
    Shutdown => "shutdown",
    Version => "version",
    Sockets => "sockets",
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_named_once_and_found_by_its_name() {
        assert_eq!(Command::ALL.len(), Command::NAMES.len());
        for (command, name) in Command::ALL.iter().zip(Command::NAMES) {
            assert_eq!(command.name(), *name);
            assert_eq!(Command::from_name(name), Some(*command));
        }
        assert_eq!(Command::from_name("tial"), None);
    }
}
