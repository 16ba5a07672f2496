//! The state rules, on [`step`] alone: no process, no real time.

use std::time::{Duration, Instant};

use nix::unistd::Pid;
use ringmaster_config::{Restart, StartRetries};
use ringmaster_protocol::ProcessState as S;
use ringmaster_spawn::Exit;

use super::*;

const TERM: i32 = 15;
const KILL: i32 = 9;
const CONT: i32 = 18;
const LEADER: i32 = 4242;

/// A slot with its watcher's settings and a clock of its own.
struct Slot {
    life: Life,
    now: Instant,
    start_secs: Duration,
    ready_timeout: Option<Duration>,
    start_retries: StartRetries,
    backoff_max: Duration,
    restart: Restart,
    exit_codes: Vec<i32>,
    stop_signal: i32,
    stop_timeout: Duration,
    stop_group: bool,
    stop_orphans: bool,
    shutting_down: bool,
    retired: bool,
    /// Every transition made, in order.
    seen: Vec<(S, S)>,
}

impl Slot {
    /// ringmaster's defaults: start_secs 1 s, 3 retries, on-failure.
    fn new() -> Self {
        Self {
            life: Life::default(),
            now: Instant::now(),
            start_secs: Duration::from_secs(1),
            ready_timeout: None,
            start_retries: StartRetries::Limited(3),
            backoff_max: Duration::from_secs(60),
            restart: Restart::OnFailure,
            exit_codes: vec![0],
            stop_signal: TERM,
            stop_timeout: Duration::from_secs(10),
            stop_group: true,
            stop_orphans: true,
            shutting_down: false,
            retired: false,
            seen: Vec::new(),
        }
    }

    fn step(&mut self, input: Input) -> Vec<Effect> {
        let exit_codes = self.exit_codes.clone();
        let ctx = Context {
            settings: Settings {
                exit_codes: &exit_codes,
                ..settings_of(self)
            },
            now: self.now,
            shutting_down: self.shutting_down,
            retired: self.retired,
        };
        let effects = step(&mut self.life, input, &ctx);
        for effect in &effects {
            if let Effect::Transition { from, to } = *effect {
                assert!(
                    TRANSITIONS.contains(&(from, to)),
                    "{from} -> {to} is not in TRANSITIONS"
                );
                self.seen.push((from, to));
            }
        }
        // A pid exactly when the phase has one.
        assert_eq!(
            self.life.phase.pid().is_some(),
            matches!(
                self.life.phase,
                Phase::Starting { .. }
                    | Phase::Running { .. }
                    | Phase::Stopping(Stop {
                        leader: Some(_),
                        ..
                    })
            )
        );
        effects
    }

    fn state(&self) -> S {
        self.life.phase.state()
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Start, and the spawn succeeding with pid `LEADER`.
    fn start(&mut self) -> Vec<Effect> {
        let mut effects = self.step(Input::Start);
        assert!(effects.contains(&Effect::Spawn), "{effects:?}");
        effects.extend(self.spawned());
        effects
    }

    fn spawned(&mut self) -> Vec<Effect> {
        self.step(Input::Spawned {
            pid: Pid::from_raw(LEADER),
        })
    }

    /// Started and past start_secs.
    fn running(&mut self) {
        self.start();
        self.advance(self.start_secs);
        self.step(Input::Timer { group_alive: true });
        assert_eq!(self.state(), S::Running);
    }

    fn exit(&mut self, code: i32, group_alive: bool) -> Vec<Effect> {
        self.step(Input::Exited {
            exit: Exit::Code(code),
            group_alive,
        })
    }

    /// STARTING, then an exit before start_secs.
    fn fail_quickly(&mut self) -> Vec<Effect> {
        self.spawned();
        self.exit(1, false)
    }
}

fn schedules(effects: &[Effect]) -> Vec<Duration> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Schedule(d) => Some(*d),
            _ => None,
        })
        .collect()
}

fn signals_sent(effects: &[Effect]) -> Vec<(i32, i32)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Signal { target, signal } => Some((*target, *signal)),
            _ => None,
        })
        .collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ----- starting -------------------------------------------------------

// ----- one-shot jobs ------------------------------------------------------

/// A `restart = "never"` watcher: a migration, a cache warm-up.
fn one_shot() -> Slot {
    let mut slot = Slot::new();
    slot.restart = Restart::Never;
    slot.exit_codes = vec![0, 3];
    slot
}

#[test]
fn a_one_shot_that_exits_with_an_expected_code_at_once_has_completed() {
    for code in [0, 3] {
        let mut slot = one_shot();
        slot.start();
        let effects = slot.exit(code, false);
        assert_eq!(slot.state(), S::Exited);
        assert_eq!(
            slot.life.reason.as_deref(),
            Some(format!("completed (exit status {code})").as_str())
        );
        assert!(!effects.contains(&Effect::Spawn), "{effects:?}");
        assert_eq!(slot.life.failures, 0);
        assert_eq!(
            slot.seen,
            [(S::Stopped, S::Starting), (S::Starting, S::Exited)]
        );
        assert!(completed(&slot.life, settings_of(&slot)));
    }
}

#[test]
fn a_one_shot_that_fails_quickly_still_backs_off() {
    let mut slot = one_shot();
    slot.start();
    slot.exit(1, false);
    assert_eq!(slot.state(), S::Backoff);
    assert!(!completed(&slot.life, settings_of(&slot)));
}

#[test]
fn a_one_shot_whose_group_lingers_completes_once_it_is_gone() {
    let mut slot = one_shot();
    slot.start();
    slot.exit(0, true);
    assert_eq!(slot.state(), S::Stopping);
    slot.step(Input::GroupCheck { group_alive: false });
    assert_eq!(slot.state(), S::Exited);
    assert!(completed(&slot.life, settings_of(&slot)));
}

#[test]
fn only_an_expected_exit_with_no_restart_coming_is_completed() {
    // on-failure, expected code after RUNNING: done, not restarted.
    let mut slot = Slot::new();
    slot.running();
    slot.exit(0, false);
    assert!(completed(&slot.life, settings_of(&slot)));
    // An unexpected code that is not restarted is not a success.
    let mut slot = one_shot();
    slot.running();
    slot.exit(1, false);
    assert_eq!(slot.state(), S::Exited);
    assert!(!completed(&slot.life, settings_of(&slot)));
    // always: EXITED only on its way to the next run.
    let mut slot = Slot::new();
    slot.restart = Restart::Always;
    slot.running();
    slot.exit(0, false);
    assert!(!completed(&slot.life, settings_of(&slot)));
    // A stopped one-shot is not complete, whatever its last exit.
    let mut slot = one_shot();
    slot.running();
    slot.step(Input::Stop);
    slot.exit(0, false);
    assert_eq!(slot.state(), S::Stopped);
    assert!(!completed(&slot.life, settings_of(&slot)));
}

/// The settings [`completed`] reads, from a test slot.
fn settings_of(slot: &Slot) -> Settings<'_> {
    Settings {
        start_secs: slot.start_secs,
        ready_timeout: slot.ready_timeout,
        start_retries: slot.start_retries,
        backoff_max: slot.backoff_max,
        restart: slot.restart,
        exit_codes: &slot.exit_codes,
        stop_signal: slot.stop_signal,
        stop_timeout: slot.stop_timeout,
        stop_group: slot.stop_group,
        stop_orphans: slot.stop_orphans,
    }
}

// ----- health -------------------------------------------------------------

#[test]
fn an_unhealthy_running_process_is_restarted_with_the_reason() {
    let mut slot = Slot::new();
    slot.running();
    let effects = slot.step(Input::Unhealthy {
        pid: Pid::from_raw(LEADER),
        reason: "unhealthy: no answer".into(),
    });
    assert_eq!(slot.state(), S::Stopping);
    assert_eq!(signals_sent(&effects), [(-LEADER, TERM), (-LEADER, CONT)]);
    assert_eq!(slot.life.reason.as_deref(), Some("unhealthy: no answer"));
    assert_eq!(slot.life.restarts, 1);
    let effects = slot.exit(0, false);
    assert!(effects.contains(&Effect::Spawn), "{effects:?}");
    assert_eq!(slot.life.failures, 0, "not a quick failure");
}

#[test]
fn a_health_verdict_on_another_process_changes_nothing() {
    let mut slot = Slot::new();
    slot.start();
    let starting = slot.step(Input::Unhealthy {
        pid: Pid::from_raw(LEADER),
        reason: "x".into(),
    });
    assert!(starting.is_empty(), "STARTING is not checked: {starting:?}");
    slot.advance(slot.start_secs);
    slot.step(Input::Timer { group_alive: true });
    let other = slot.step(Input::Unhealthy {
        pid: Pid::from_raw(LEADER + 1),
        reason: "x".into(),
    });
    assert!(other.is_empty(), "{other:?}");
    assert_eq!(slot.state(), S::Running);
}

// ----- hooks --------------------------------------------------------------

#[test]
fn a_failed_before_start_hook_is_a_quick_failure_in_its_own_words() {
    let mut slot = Slot::new();
    slot.start_retries = StartRetries::Limited(1);
    slot.step(Input::Start);
    slot.step(Input::HookFailed {
        reason: "before_start hook failed (exit status 3)".into(),
    });
    assert_eq!(slot.state(), S::Backoff);
    assert_eq!(
        slot.life.reason.as_deref(),
        Some("before_start hook failed (exit status 3); retrying in 100ms")
    );
    slot.step(Input::HookFailed {
        reason: "before_start hook failed (exit status 3)".into(),
    });
    assert_eq!(slot.state(), S::Fatal);
}

// ----- readiness --------------------------------------------------------

/// A slot whose watcher has a `ready` check with a 2 s timeout.
fn with_check() -> Slot {
    let mut slot = Slot::new();
    slot.ready_timeout = Some(Duration::from_secs(2));
    slot
}

#[test]
fn with_a_check_a_process_is_starting_until_it_passes_however_long_start_secs() {
    let mut slot = with_check();
    let effects = slot.start();
    assert!(
        effects.contains(&Effect::Schedule(Duration::from_secs(2))),
        "{effects:?}"
    );
    assert!(effects.contains(&Effect::CheckReady {
        pid: Pid::from_raw(LEADER)
    }));
    // start_secs passing means nothing with a check: no timer for it.
    assert_eq!(schedules(&effects), [Duration::from_secs(2)]);
    slot.advance(ms(1500));
    assert_eq!(slot.state(), S::Starting);
    let effects = slot.step(Input::Ready {
        pid: Pid::from_raw(LEADER),
    });
    assert_eq!(
        effects,
        [
            Effect::CancelTimer,
            Effect::Transition {
                from: S::Starting,
                to: S::Running
            }
        ]
    );
    assert_eq!(slot.life.failures, 0);
}

#[test]
fn a_check_passing_for_another_pid_or_after_running_changes_nothing() {
    let mut slot = with_check();
    slot.start();
    assert!(
        slot.step(Input::Ready {
            pid: Pid::from_raw(LEADER + 1)
        })
        .is_empty()
    );
    assert_eq!(slot.state(), S::Starting);
    slot.step(Input::Ready {
        pid: Pid::from_raw(LEADER),
    });
    assert!(
        slot.step(Input::Ready {
            pid: Pid::from_raw(LEADER)
        })
        .is_empty()
    );
    assert_eq!(slot.state(), S::Running);
}

#[test]
fn not_ready_in_time_is_stopped_then_counted_as_a_quick_failure() {
    let mut slot = with_check();
    slot.start();
    slot.advance(Duration::from_secs(2));
    let effects = slot.step(Input::Timer { group_alive: true });
    assert_eq!(slot.state(), S::Stopping);
    assert_eq!(signals_sent(&effects), [(-LEADER, TERM), (-LEADER, CONT)]);
    assert_eq!(
        slot.life.reason.as_deref(),
        Some("not ready within 2.0s; stopping it")
    );
    slot.exit(143, false);
    assert_eq!(slot.state(), S::Backoff);
    assert_eq!(slot.life.failures, 1);
    assert!(
        slot.life
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("not ready within 2.0s; retrying in")),
        "{:?}",
        slot.life.reason
    );
}

#[test]
fn never_ready_is_fatal_after_its_retries_with_the_reason() {
    let mut slot = with_check();
    slot.start_retries = StartRetries::Limited(1);
    for _ in 0..2 {
        if slot.state() == S::Backoff {
            slot.advance(Duration::from_secs(1));
            let effects = slot.step(Input::Timer { group_alive: false });
            assert!(effects.contains(&Effect::Spawn));
            slot.spawned();
        } else {
            slot.start();
        }
        slot.advance(Duration::from_secs(2));
        slot.step(Input::Timer { group_alive: true });
        slot.exit(143, false);
    }
    assert_eq!(slot.state(), S::Fatal);
    assert_eq!(
        slot.life.reason.as_deref(),
        Some("not ready within 2.0s; gave up after 2 attempts")
    );
}

#[test]
fn exiting_before_the_check_passes_says_so() {
    let mut slot = with_check();
    slot.start();
    slot.exit(3, false);
    assert_eq!(slot.state(), S::Backoff);
    assert!(
        slot.life
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("exited before it was ready (exit status 3)")),
        "{:?}",
        slot.life.reason
    );
}

#[test]
fn a_start_asks_for_a_spawn_and_the_spawn_enters_starting() {
    let mut slot = Slot::new();
    let effects = slot.step(Input::Start);
    assert_eq!(effects, [Effect::CancelTimer, Effect::Spawn]);
    assert_eq!(slot.state(), S::Stopped, "STOPPED until the spawn is done");
    let effects = slot.spawned();
    assert_eq!(
        effects,
        [
            Effect::Transition {
                from: S::Stopped,
                to: S::Starting
            },
            Effect::Schedule(Duration::from_secs(1)),
        ]
    );
    assert_eq!(slot.life.phase.pid(), Some(Pid::from_raw(LEADER)));
}

#[test]
fn start_secs_passing_makes_it_running_and_resets_failures() {
    let mut slot = Slot::new();
    slot.life.failures = 2;
    slot.start();
    assert_eq!(
        slot.life.failures, 0,
        "a manual start starts the count over"
    );
    slot.life.failures = 2;
    slot.advance(Duration::from_secs(1));
    slot.step(Input::Timer { group_alive: true });
    assert_eq!(slot.state(), S::Running);
    assert_eq!(slot.life.failures, 0);
}

#[test]
fn start_secs_zero_goes_straight_to_running() {
    let mut slot = Slot::new();
    slot.start_secs = Duration::ZERO;
    let effects = slot.start();
    assert_eq!(slot.state(), S::Running);
    assert!(schedules(&effects).is_empty(), "{effects:?}");
    assert_eq!(
        slot.seen,
        [(S::Stopped, S::Starting), (S::Starting, S::Running)]
    );
}

#[test]
fn a_start_of_what_runs_or_starts_does_nothing() {
    let mut slot = Slot::new();
    slot.start();
    assert!(slot.step(Input::Start).is_empty());
    slot.advance(slot.start_secs);
    slot.step(Input::Timer { group_alive: true });
    assert!(slot.step(Input::Start).is_empty());
    assert_eq!(slot.state(), S::Running);
}

#[test]
fn the_spawn_time_is_kept_through_running_and_stopping() {
    let mut slot = Slot::new();
    let spawned_at = slot.now;
    slot.running();
    assert_eq!(slot.life.phase.since(), Some(spawned_at));
    slot.step(Input::Stop);
    assert_eq!(slot.life.phase.since(), Some(spawned_at));
    slot.exit(0, false);
    assert_eq!(slot.life.phase.since(), None);
}

// ----- quick failures ---------------------------------------------------

#[test]
fn an_exit_before_start_secs_backs_off() {
    let mut slot = Slot::new();
    slot.step(Input::Start);
    let effects = slot.fail_quickly();
    assert_eq!(slot.state(), S::Backoff);
    assert_eq!(schedules(&effects), [ms(100)]);
    assert_eq!(
        slot.life.reason.as_deref(),
        Some("exited too quickly (exit status 1); retrying in 100ms")
    );
    assert_eq!(slot.life.failures, 1);
}

#[test]
fn backoff_doubles_from_100ms() {
    let mut slot = Slot::new();
    slot.start_retries = StartRetries::Infinite;
    let mut delays = Vec::new();
    for _ in 0..6 {
        delays.extend(schedules(&slot.fail_quickly()));
        slot.step(Input::Timer { group_alive: false });
    }
    assert_eq!(delays, [100, 200, 400, 800, 1600, 3200].map(ms));
}

#[test]
fn backoff_is_capped_at_backoff_max() {
    let mut slot = Slot::new();
    slot.start_retries = StartRetries::Infinite;
    slot.backoff_max = ms(300);
    let mut delays = Vec::new();
    for _ in 0..4 {
        delays.extend(schedules(&slot.fail_quickly()));
    }
    assert_eq!(delays, [100, 200, 300, 300].map(ms));
    assert_eq!(
        slot.life.reason.as_deref(),
        Some("exited too quickly (exit status 1); retrying in 300ms")
    );
}

#[test]
fn backoff_delay_caps_and_never_overflows() {
    assert_eq!(backoff_delay(1, Duration::from_secs(1)), ms(100));
    assert_eq!(backoff_delay(5, Duration::from_secs(1)), ms(1000));
    assert_eq!(
        backoff_delay(u32::MAX, Duration::from_secs(30)),
        Duration::from_secs(30)
    );
    assert_eq!(backoff_delay(1, Duration::ZERO), Duration::ZERO);
    assert_eq!(backoff_delay(0, Duration::from_secs(1)), ms(100));
}

#[test]
fn the_backoff_timer_spawns_again() {
    let mut slot = Slot::new();
    slot.fail_quickly();
    slot.advance(ms(100));
    assert_eq!(
        slot.step(Input::Timer { group_alive: false }),
        [Effect::Spawn]
    );
    slot.spawned();
    assert_eq!(slot.seen.last(), Some(&(S::Backoff, S::Starting)));
    assert_eq!(slot.life.failures, 1, "the count goes on until RUNNING");
}

#[test]
fn fatal_after_start_retries_quick_failures() {
    let mut slot = Slot::new();
    for _ in 0..3 {
        slot.fail_quickly();
        assert_eq!(slot.state(), S::Backoff);
    }
    let effects = slot.fail_quickly();
    assert_eq!(slot.state(), S::Fatal);
    assert!(effects.contains(&Effect::GaveUp));
    assert!(schedules(&effects).is_empty());
    assert_eq!(
        slot.life.reason.as_deref(),
        Some("exited too quickly (exit status 1); gave up after 4 attempts")
    );
}

#[test]
fn start_retries_zero_gives_up_at_the_first_failure() {
    let mut slot = Slot::new();
    slot.start_retries = StartRetries::Limited(0);
    slot.fail_quickly();
    assert_eq!(slot.state(), S::Fatal);
}

#[test]
fn infinite_retries_never_give_up() {
    let mut slot = Slot::new();
    slot.start_retries = StartRetries::Infinite;
    for _ in 0..200 {
        slot.fail_quickly();
    }
    assert_eq!(slot.state(), S::Backoff);
    assert_eq!(slot.life.failures, 200);
}

#[test]
fn a_spawn_error_is_a_quick_failure() {
    let mut slot = Slot::new();
    slot.step(Input::Start);
    slot.step(Input::SpawnFailed {
        reason: "no such user 'app'".into(),
    });
    assert_eq!(slot.state(), S::Backoff);
    assert_eq!(
        slot.life.reason.as_deref(),
        Some("spawn error: no such user 'app'; retrying in 100ms")
    );
    assert_eq!(slot.seen, [(S::Stopped, S::Backoff)]);
}

#[test]
fn a_manual_start_of_a_fatal_slot_starts_the_count_over() {
    let mut slot = Slot::new();
    slot.start_retries = StartRetries::Limited(0);
    slot.fail_quickly();
    assert_eq!(slot.state(), S::Fatal);
    slot.start();
    assert_eq!(slot.life.failures, 0);
    assert_eq!(slot.seen.last(), Some(&(S::Fatal, S::Starting)));
}

#[test]
fn surviving_start_secs_exactly_counts_as_running() {
    let mut slot = Slot::new();
    slot.start();
    // The timer fires at start_secs: RUNNING, then the exit is a plain
    // exit (restarted), not a quick failure.
    slot.advance(Duration::from_secs(1));
    slot.step(Input::Timer { group_alive: true });
    let effects = slot.exit(1, false);
    assert!(effects.contains(&Effect::Spawn));
    assert_eq!(slot.life.failures, 0);
    // One moment earlier it was still STARTING: a quick failure.
    let mut early = Slot::new();
    early.start();
    early.advance(ms(999));
    early.exit(1, false);
    assert_eq!(early.state(), S::Backoff);
}

// ----- exits from RUNNING ---------------------------------------------

#[test]
fn an_unexpected_exit_is_restarted_at_once() {
    let mut slot = Slot::new();
    slot.running();
    let effects = slot.exit(3, false);
    assert_eq!(
        effects,
        [
            Effect::CancelTimer,
            Effect::Transition {
                from: S::Running,
                to: S::Exited
            },
            Effect::Spawn,
        ]
    );
    assert_eq!(slot.life.restarts, 1);
    assert_eq!(slot.life.reason.as_deref(), Some("exit status 3"));
    assert_eq!(slot.life.last_exit, Some(Exit::Code(3)));
}

#[test]
fn an_expected_exit_is_not_restarted_and_gives_up() {
    let mut slot = Slot::new();
    slot.running();
    let effects = slot.exit(0, false);
    assert_eq!(slot.state(), S::Exited);
    assert!(!effects.contains(&Effect::Spawn));
    assert!(effects.contains(&Effect::GaveUp));
    assert_eq!(slot.life.restarts, 0);
}

#[test]
fn restart_always_restarts_a_clean_exit() {
    let mut slot = Slot::new();
    slot.restart = Restart::Always;
    slot.running();
    assert!(slot.exit(0, false).contains(&Effect::Spawn));
}

#[test]
fn restart_never_leaves_even_a_crash() {
    let mut slot = Slot::new();
    slot.restart = Restart::Never;
    slot.running();
    let effects = slot.step(Input::Exited {
        exit: Exit::Signal {
            signal: 11,
            core: true,
        },
        group_alive: false,
    });
    assert!(!effects.contains(&Effect::Spawn));
    assert_eq!(
        slot.life.reason.as_deref(),
        Some("killed by SIGSEGV (core dumped)")
    );
}

#[test]
fn a_death_by_signal_is_a_failure_for_on_failure() {
    let mut slot = Slot::new();
    slot.exit_codes = vec![0, 2];
    slot.running();
    let effects = slot.step(Input::Exited {
        exit: Exit::Signal {
            signal: KILL,
            core: false,
        },
        group_alive: false,
    });
    assert!(effects.contains(&Effect::Spawn));
    let mut expected = Slot::new();
    expected.exit_codes = vec![0, 2];
    expected.running();
    assert!(!expected.exit(2, false).contains(&Effect::Spawn));
}

#[test]
fn a_retired_slot_is_never_restarted() {
    let mut slot = Slot::new();
    slot.restart = Restart::Always;
    slot.running();
    slot.retired = true;
    assert!(!slot.exit(1, false).contains(&Effect::Spawn));
    assert_eq!(slot.state(), S::Exited);
}

#[test]
fn nothing_is_restarted_while_shutting_down() {
    let mut slot = Slot::new();
    slot.restart = Restart::Always;
    slot.running();
    slot.shutting_down = true;
    let effects = slot.exit(1, false);
    assert!(!effects.contains(&Effect::Spawn));
    assert_eq!(slot.state(), S::Exited);
}

// ----- stopping ---------------------------------------------------------

#[test]
fn a_stop_signals_the_group_with_sigcont_and_arms_the_kill_deadline() {
    let mut slot = Slot::new();
    slot.running();
    let effects = slot.step(Input::Stop);
    assert_eq!(signals_sent(&effects), [(-LEADER, TERM), (-LEADER, CONT)]);
    assert_eq!(schedules(&effects), [Duration::from_secs(10)]);
    assert_eq!(slot.state(), S::Stopping);
    assert_eq!(slot.life.phase.pid(), Some(Pid::from_raw(LEADER)));
}

#[test]
fn without_stop_group_only_the_leader_is_signalled() {
    let mut slot = Slot::new();
    slot.stop_group = false;
    slot.running();
    let effects = slot.step(Input::Stop);
    assert_eq!(signals_sent(&effects), [(LEADER, TERM), (LEADER, CONT)]);
    // And the stop does not wait for the group.
    let effects = slot.exit(0, true);
    assert_eq!(slot.state(), S::Stopped, "{effects:?}");
}

#[test]
fn stop_signal_kill_sends_no_sigcont_and_counts_as_killed() {
    let mut slot = Slot::new();
    slot.stop_signal = KILL;
    slot.running();
    let effects = slot.step(Input::Stop);
    assert_eq!(signals_sent(&effects), [(-LEADER, KILL)]);
    let Phase::Stopping(stop) = slot.life.phase else {
        panic!("{:?}", slot.life.phase)
    };
    assert!(stop.killed);
}

#[test]
fn a_stop_completes_when_the_leader_is_reaped_and_the_group_is_gone() {
    let mut slot = Slot::new();
    slot.running();
    slot.step(Input::Stop);
    let effects = slot.step(Input::Exited {
        exit: Exit::Signal {
            signal: TERM,
            core: false,
        },
        group_alive: false,
    });
    assert!(effects.contains(&Effect::StopDone));
    assert_eq!(slot.state(), S::Stopped);
    assert_eq!(
        slot.life.reason.as_deref(),
        Some("stopped (killed by SIGTERM)")
    );
    assert!(!effects.contains(&Effect::Spawn));
    assert!(
        !effects.contains(&Effect::GaveUp),
        "a stop is not giving up"
    );
}

#[test]
fn a_group_that_outlives_its_leader_keeps_the_stop_going() {
    let mut slot = Slot::new();
    slot.running();
    slot.step(Input::Stop);
    let effects = slot.exit(0, true);
    assert_eq!(slot.state(), S::Stopping);
    assert_eq!(slot.life.phase.pid(), None, "the leader is gone");
    assert_eq!(
        slot.life.phase.lingering_group(),
        Some(Pid::from_raw(LEADER))
    );
    assert_eq!(schedules(&effects), [GROUP_RECHECK]);
    // Still there at the re-check: checked again.
    slot.advance(GROUP_RECHECK);
    let effects = slot.step(Input::Timer { group_alive: true });
    assert_eq!(schedules(&effects), [GROUP_RECHECK]);
    // Gone: stopped.
    slot.step(Input::GroupCheck { group_alive: false });
    assert_eq!(slot.state(), S::Stopped);
}

#[test]
fn the_group_recheck_never_waits_past_the_kill_deadline() {
    let mut slot = Slot::new();
    slot.stop_timeout = ms(50);
    slot.running();
    slot.step(Input::Stop);
    slot.advance(ms(40));
    let effects = slot.exit(0, true);
    assert_eq!(schedules(&effects), [ms(10)]);
}

#[test]
fn stop_timeout_escalates_to_sigkill() {
    let mut slot = Slot::new();
    slot.running();
    slot.step(Input::Stop);
    slot.advance(Duration::from_secs(10));
    let effects = slot.step(Input::Timer { group_alive: true });
    assert_eq!(signals_sent(&effects), [(-LEADER, KILL)]);
    assert!(matches!(effects[0], Effect::Warn(_)), "{effects:?}");
    // The leader's reaping ends it; no timer while waiting for it.
    assert!(schedules(&effects).is_empty());
    slot.step(Input::Exited {
        exit: Exit::Signal {
            signal: KILL,
            core: false,
        },
        group_alive: false,
    });
    assert_eq!(slot.state(), S::Stopped);
}

#[test]
fn a_timer_before_the_kill_deadline_rearms_it() {
    let mut slot = Slot::new();
    slot.running();
    slot.step(Input::Stop);
    slot.advance(Duration::from_secs(4));
    let effects = slot.step(Input::Timer { group_alive: true });
    assert!(signals_sent(&effects).is_empty());
    assert_eq!(schedules(&effects), [Duration::from_secs(6)]);
}

#[test]
fn a_lingering_group_is_killed_at_the_deadline_too() {
    let mut slot = Slot::new();
    slot.running();
    slot.step(Input::Stop);
    slot.exit(0, true);
    slot.advance(Duration::from_secs(10));
    let effects = slot.step(Input::Timer { group_alive: true });
    assert_eq!(signals_sent(&effects), [(-LEADER, KILL)]);
    assert_eq!(schedules(&effects), [GROUP_RECHECK]);
}

#[test]
fn a_stop_during_starting_never_becomes_running() {
    let mut slot = Slot::new();
    slot.start();
    slot.step(Input::Stop);
    assert_eq!(slot.state(), S::Stopping);
    slot.exit(0, false);
    assert_eq!(slot.state(), S::Stopped);
    // The start_secs timer, had it been left, changes nothing now.
    assert!(slot.step(Input::Timer { group_alive: false }).is_empty());
    assert_eq!(slot.seen.last(), Some(&(S::Stopping, S::Stopped)));
}

#[test]
fn a_stop_during_backoff_cancels_the_retry() {
    let mut slot = Slot::new();
    slot.fail_quickly();
    let effects = slot.step(Input::Stop);
    assert_eq!(
        effects,
        [
            Effect::CancelTimer,
            Effect::Transition {
                from: S::Backoff,
                to: S::Stopped
            }
        ]
    );
    assert!(slot.step(Input::Timer { group_alive: false }).is_empty());
}

#[test]
fn a_stop_of_what_is_at_rest_does_nothing() {
    for code in [0, 1] {
        let mut slot = Slot::new();
        slot.restart = Restart::Never;
        slot.running();
        slot.exit(code, false);
        assert!(slot.step(Input::Stop).is_empty());
    }
    assert!(Slot::new().step(Input::Stop).is_empty());
}

// ----- restarts ---------------------------------------------------------

#[test]
fn a_restart_stops_then_starts_with_a_fresh_count() {
    let mut slot = Slot::new();
    slot.running();
    slot.step(Input::Restart);
    assert_eq!(slot.state(), S::Stopping);
    assert!(slot.life.phase.start_pending());
    slot.life.failures = 2;
    let effects = slot.exit(0, false);
    assert_eq!(slot.state(), S::Stopped);
    assert!(effects.contains(&Effect::Spawn));
    assert_eq!(slot.life.failures, 0);
    slot.spawned();
    assert_eq!(slot.seen.last(), Some(&(S::Stopped, S::Starting)));
    assert_eq!(slot.life.restarts, 0, "a restart by hand is not counted");
}

#[test]
fn a_restart_arriving_while_stopping_starts_once_stopped() {
    let mut slot = Slot::new();
    slot.running();
    slot.step(Input::Stop);
    assert!(slot.step(Input::Restart).is_empty());
    assert!(slot.exit(0, false).contains(&Effect::Spawn));
}

#[test]
fn a_start_arriving_while_stopping_starts_once_stopped() {
    let mut slot = Slot::new();
    slot.running();
    slot.step(Input::Stop);
    slot.step(Input::Start);
    assert!(slot.exit(0, false).contains(&Effect::Spawn));
}

#[test]
fn a_stop_arriving_during_a_restart_wins() {
    let mut slot = Slot::new();
    slot.running();
    slot.step(Input::Restart);
    slot.step(Input::Stop);
    assert!(!slot.life.phase.start_pending());
    let effects = slot.exit(0, false);
    assert!(!effects.contains(&Effect::Spawn));
    assert_eq!(slot.state(), S::Stopped);
}

#[test]
fn a_restart_in_backoff_or_at_rest_starts_at_once() {
    let mut slot = Slot::new();
    slot.fail_quickly();
    let effects = slot.step(Input::Restart);
    assert_eq!(effects, [Effect::CancelTimer, Effect::Spawn]);
    assert_eq!(slot.life.failures, 0);
    let mut fresh = Slot::new();
    assert!(fresh.step(Input::Restart).contains(&Effect::Spawn));
}

// ----- a leader that leaves its group behind ----------------------------

#[test]
fn a_leader_exiting_with_its_group_alive_has_the_leftovers_stopped() {
    let mut slot = Slot::new();
    slot.running();
    let effects = slot.exit(1, true);
    assert_eq!(signals_sent(&effects), [(-LEADER, TERM), (-LEADER, CONT)]);
    assert_eq!(slot.state(), S::Stopping);
    assert_eq!(
        slot.life.reason.as_deref(),
        Some("leader exit status 1; stopping what is left of its process group")
    );
    assert_eq!(schedules(&effects), [GROUP_RECHECK]);
    assert!(
        !effects.contains(&Effect::Spawn),
        "not before they are gone"
    );
}

#[test]
fn once_the_leftovers_are_gone_the_leaders_exit_counts() {
    let mut slot = Slot::new();
    slot.running();
    slot.exit(1, true);
    let effects = slot.step(Input::GroupCheck { group_alive: false });
    assert_eq!(slot.seen.last(), Some(&(S::Stopping, S::Exited)));
    assert!(effects.contains(&Effect::Spawn), "restarted: exit 1 failed");
    assert!(!effects.contains(&Effect::StopDone));
    assert_eq!(slot.life.restarts, 1);
}

#[test]
fn leftovers_of_a_starting_leader_make_a_quick_failure() {
    let mut slot = Slot::new();
    slot.start();
    slot.exit(1, true);
    slot.step(Input::GroupCheck { group_alive: false });
    assert_eq!(slot.state(), S::Backoff);
    assert_eq!(slot.seen.last(), Some(&(S::Stopping, S::Backoff)));
}

#[test]
fn stop_orphans_false_leaves_the_group_and_goes_on() {
    let mut slot = Slot::new();
    slot.stop_orphans = false;
    slot.running();
    let effects = slot.exit(1, true);
    assert!(signals_sent(&effects).is_empty());
    assert!(effects.contains(&Effect::Spawn));
}

#[test]
fn a_stop_asked_for_while_the_leftovers_go_wins() {
    let mut slot = Slot::new();
    slot.running();
    slot.exit(1, true);
    slot.step(Input::Stop);
    let effects = slot.step(Input::GroupCheck { group_alive: false });
    assert_eq!(slot.state(), S::Stopped);
    assert!(!effects.contains(&Effect::Spawn));
    assert!(effects.contains(&Effect::StopDone));
}

#[test]
fn a_restart_asked_for_while_the_leftovers_go_starts_afresh() {
    let mut slot = Slot::new();
    slot.running();
    slot.exit(0, true);
    slot.step(Input::Restart);
    let effects = slot.step(Input::GroupCheck { group_alive: false });
    assert!(effects.contains(&Effect::Spawn));
    assert_eq!(slot.life.restarts, 0);
}

#[test]
fn a_group_check_leaves_other_phases_alone() {
    let mut slot = Slot::new();
    slot.running();
    assert!(
        slot.step(Input::GroupCheck { group_alive: false })
            .is_empty()
    );
    slot.step(Input::Stop);
    // The leader is alive: its reaping, not a group check, ends the stop.
    assert!(
        slot.step(Input::GroupCheck { group_alive: false })
            .is_empty()
    );
    assert_eq!(slot.state(), S::Stopping);
}

// ----- shutdown ---------------------------------------------------------

#[test]
fn a_shutdown_puts_backoff_to_rest() {
    let mut slot = Slot::new();
    slot.fail_quickly();
    slot.shutting_down = true;
    let effects = slot.step(Input::Shutdown);
    assert_eq!(slot.state(), S::Stopped);
    assert!(effects.contains(&Effect::CancelTimer));
}

#[test]
fn a_shutdown_drops_a_pending_start() {
    let mut slot = Slot::new();
    slot.running();
    slot.step(Input::Restart);
    slot.shutting_down = true;
    slot.step(Input::Shutdown);
    assert!(!slot.life.phase.start_pending());
    let effects = slot.exit(0, false);
    assert_eq!(slot.state(), S::Stopped);
    assert!(!effects.contains(&Effect::Spawn));
}

#[test]
fn a_shutdown_keeps_a_leaders_exit_but_restarts_nothing() {
    let mut slot = Slot::new();
    slot.restart = Restart::Always;
    slot.running();
    slot.exit(1, true);
    slot.shutting_down = true;
    slot.step(Input::Shutdown);
    let effects = slot.step(Input::GroupCheck { group_alive: false });
    assert_eq!(slot.state(), S::Exited);
    assert!(!effects.contains(&Effect::Spawn));
}

#[test]
fn a_quick_failure_during_shutdown_is_stopped_not_retried() {
    let mut slot = Slot::new();
    slot.start();
    slot.shutting_down = true;
    let effects = slot.exit(1, false);
    assert_eq!(slot.state(), S::Stopped);
    assert!(schedules(&effects).is_empty());
    assert_eq!(slot.life.failures, 0);
}

#[test]
fn kill_sigkills_the_group_of_whatever_is_alive() {
    let mut running = Slot::new();
    running.running();
    assert_eq!(signals_sent(&running.step(Input::Kill)), [(-LEADER, KILL)]);
    let mut stopping = Slot::new();
    stopping.running();
    stopping.step(Input::Stop);
    stopping.exit(0, true);
    assert_eq!(signals_sent(&stopping.step(Input::Kill)), [(-LEADER, KILL)]);
    let Phase::Stopping(stop) = stopping.life.phase else {
        panic!()
    };
    assert!(stop.killed);
    assert!(Slot::new().step(Input::Kill).is_empty());
}

#[test]
fn shutdown_stops_the_highest_priority_level_first() {
    let alive = [("web", 20), ("db", 10), ("worker", 20), ("cache", 5)];
    assert_eq!(shutdown_wave(&alive, false), ["web", "worker"]);
    assert_eq!(
        shutdown_wave(&alive, true),
        ["web", "db", "worker", "cache"]
    );
    assert!(shutdown_wave::<&str, i32>(&[], false).is_empty());
}

// ----- essential --------------------------------------------------------

#[test]
fn giving_up_is_said_for_fatal_and_for_an_exit_not_restarted_only() {
    let mut restarted = Slot::new();
    restarted.running();
    assert!(!restarted.exit(1, false).contains(&Effect::GaveUp));
    let mut backoff = Slot::new();
    assert!(!backoff.fail_quickly().contains(&Effect::GaveUp));
    let mut fatal = Slot::new();
    fatal.start_retries = StartRetries::Limited(0);
    assert!(fatal.fail_quickly().contains(&Effect::GaveUp));
}

// ----- odd inputs ---------------------------------------------------------

#[test]
fn a_reap_of_a_slot_at_rest_is_an_anomaly_not_a_crash() {
    let mut slot = Slot::new();
    let effects = slot.exit(0, false);
    assert!(
        matches!(&effects[..], [Effect::Anomaly(text)] if text.contains("STOPPED")),
        "{effects:?}"
    );
    assert_eq!(slot.state(), S::Stopped);
}

#[test]
fn timers_of_phases_without_deadlines_do_nothing() {
    let mut slot = Slot::new();
    assert!(slot.step(Input::Timer { group_alive: false }).is_empty());
    slot.running();
    assert!(slot.step(Input::Timer { group_alive: true }).is_empty());
    assert_eq!(slot.state(), S::Running);
}

// ----- the table ------------------------------------------------------------

/// docs/configuration.md's transitions table lists exactly what `step`
/// can do, and its states table every state.
#[test]
fn the_documented_tables_match_the_code() {
    let doc = include_str!("../../../../docs/configuration.md");
    let section = doc
        .split("### Transitions")
        .nth(1)
        .expect("docs/configuration.md has a Transitions section");
    let mut documented: Vec<(S, S)> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(|c| c.trim().trim_matches('`')).collect();
            let state =
                |c: &str| serde_json::from_value::<S>(serde_json::Value::String(c.to_owned())).ok();
            Some((state(cells.get(1)?)?, state(cells.get(2)?)?))
        })
        .collect();
    let mut code = TRANSITIONS.to_vec();
    let key = |t: &(S, S)| (t.0 as u8, t.1 as u8);
    documented.sort_by_key(key);
    code.sort_by_key(key);
    assert_eq!(documented, code);
    for state in [
        S::Stopped,
        S::Starting,
        S::Running,
        S::Backoff,
        S::Stopping,
        S::Exited,
        S::Fatal,
    ] {
        assert!(
            doc.contains(&format!("| `{state}` |")),
            "{state} undocumented"
        );
    }
}

/// Every transition in the table is made by some sequence above; this
/// walks the ones the other tests do not reach on their way.
#[test]
fn every_listed_transition_can_happen() {
    let mut seen: Vec<(S, S)> = Vec::new();
    let mut record = |slot: &Slot| seen.extend(slot.seen.iter().copied());
    // Fatal -> Fatal, Exited/Stopped -> Fatal, Fatal -> Backoff.
    let mut slot = Slot::new();
    slot.start_retries = StartRetries::Limited(0);
    slot.step(Input::SpawnFailed { reason: "x".into() });
    slot.step(Input::Start);
    slot.step(Input::SpawnFailed { reason: "x".into() });
    slot.start_retries = StartRetries::Limited(5);
    slot.step(Input::Start);
    slot.step(Input::SpawnFailed { reason: "x".into() });
    record(&slot);
    // Exited -> Backoff and Exited -> Fatal: the restart's spawn fails.
    for retries in [5, 0] {
        let mut slot = Slot::new();
        slot.running();
        slot.exit(1, false);
        slot.start_retries = StartRetries::Limited(retries);
        slot.step(Input::SpawnFailed { reason: "x".into() });
        record(&slot);
    }
    // Exited -> Starting, Starting -> Fatal, Stopping -> Fatal.
    let mut slot = Slot::new();
    slot.running();
    slot.exit(1, false);
    slot.spawned();
    slot.start_retries = StartRetries::Limited(0);
    slot.exit(1, true);
    slot.step(Input::GroupCheck { group_alive: false });
    record(&slot);
    let mut slot = Slot::new();
    slot.start_retries = StartRetries::Limited(0);
    slot.start();
    slot.exit(1, false);
    record(&slot);
    let mut slot = Slot::new();
    slot.start();
    slot.exit(1, false);
    record(&slot);
    // Starting -> Stopped (shutting down), Backoff -> Backoff/Fatal,
    // Backoff -> Starting, Stopping -> Stopped/Exited/Backoff.
    let mut slot = Slot::new();
    slot.start();
    slot.shutting_down = true;
    slot.exit(1, false);
    record(&slot);
    for retries in [3, 1] {
        let mut slot = Slot::new();
        slot.start_retries = StartRetries::Limited(retries);
        slot.step(Input::SpawnFailed { reason: "x".into() });
        slot.step(Input::SpawnFailed { reason: "x".into() });
        slot.spawned();
        slot.step(Input::Stop);
        record(&slot);
    }
    let mut slot = Slot::new();
    slot.running();
    slot.exit(1, true);
    slot.step(Input::GroupCheck { group_alive: false });
    slot.spawned();
    slot.exit(1, true);
    slot.step(Input::GroupCheck { group_alive: false });
    slot.step(Input::Stop);
    record(&slot);
    let mut slot = Slot::new();
    slot.running();
    slot.step(Input::Stop);
    slot.exit(0, false);
    record(&slot);
    // Starting -> Exited: a one-shot job completes.
    let mut slot = one_shot();
    slot.start();
    slot.exit(0, false);
    record(&slot);
    for transition in TRANSITIONS {
        assert!(seen.contains(transition), "never made: {transition:?}");
    }
}
