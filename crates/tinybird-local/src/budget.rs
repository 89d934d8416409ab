//! The budget of the query running on this thread: its deadline, the largest value one SQL
//! function may build, and the bytes its functions may hold at once.
//!
//! SQLite checks its progress handler only between bytecode steps, so a function that runs
//! for minutes inside one call (a `LIKE` over megabytes, a `topK` over every row) or asks for
//! a terabyte (`repeat(repeat('x', 1048576), 1048576)`) is out of its reach. Every `ch_*`
//! function therefore asks this module first: [`value`] before it allocates its output,
//! [`hold`] for what it keeps while it works (parsed arrays, aggregate states), [`tick`]
//! inside its loops. A refusal becomes the function's error, and [`take_trip`] tells the
//! query runner why the statement failed (a timeout is a 408, a byte limit a 400).
//!
//! The budget is per thread because a query runs on one thread from start to end (a
//! `spawn_blocking` task holding one pooled connection); [`enter`] installs it for the length
//! of one query. Outside a query (unit tests, fuzzing, fixture loading) the defaults apply,
//! with no deadline.

use std::cell::RefCell;
use std::time::{Duration, Instant};

/// What one query's functions may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionLimits {
    /// When the query must stop.
    pub deadline: Option<Instant>,
    /// The largest string or array (in bytes) one function may build.
    pub max_value_bytes: usize,
    /// Bytes the query's functions may hold at once.
    pub max_memory_bytes: usize,
}

/// The default largest value: 16 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;
/// The default memory a query's functions may hold: 256 MiB.
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 256 * 1024 * 1024;

impl Default for FunctionLimits {
    fn default() -> Self {
        Self {
            deadline: None,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
        }
    }
}

/// Why a function stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trip {
    /// The query's deadline passed.
    Deadline,
    /// A value would have been larger than `max_value_bytes`.
    Value {
        /// The function.
        what: String,
        /// The size it asked for.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A call would have done more than [`WORK_PER_VALUE_BYTE`] × `max_value_bytes` units
    /// of work it cannot interrupt (a regular expression over a long text).
    Work {
        /// The function.
        what: String,
        /// The work it would have done.
        units: u128,
        /// The limit.
        limit: u128,
    },
    /// The query's functions would have held more than `max_memory_bytes`.
    Memory {
        /// The function.
        what: String,
        /// What it asked for on top of what was held.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

impl std::fmt::Display for Trip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trip::Deadline => write!(f, "the query ran past its time limit"),
            Trip::Value { what, bytes, limit } => write!(
                f,
                "{what} would build a value of {bytes} bytes, over the limit of {limit} bytes per value"
            ),
            Trip::Work { what, units, limit } => write!(
                f,
                "{what} over this text could take {units} steps, over the limit of {limit} (pattern states \
                 × text bytes): use a shorter text or a simpler pattern"
            ),
            Trip::Memory { what, bytes, limit } => write!(
                f,
                "{what} would need {bytes} more bytes, over the query's memory limit of {limit} bytes"
            ),
        }
    }
}

struct State {
    limits: FunctionLimits,
    held: usize,
    /// Units of work counted by [`tick`] and [`tick_n`] in this scope.
    ticks: u64,
    trip: Option<Trip>,
}

thread_local! {
    static CURRENT: RefCell<State> = const {
        RefCell::new(State {
            limits: FunctionLimits {
                deadline: None,
                max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
                max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            },
            held: 0,
            ticks: 0,
            trip: None,
        })
    };
}

/// The budget of one query on this thread; the previous one comes back when it drops.
#[must_use = "the budget holds only while the scope lives"]
pub struct Scope {
    previous: Option<(FunctionLimits, usize, Option<Trip>)>,
}

/// Installs `limits` for the query about to run on this thread.
pub fn enter(limits: FunctionLimits) -> Scope {
    let previous = CURRENT.with(|c| {
        let mut state = c.borrow_mut();
        let previous = (state.limits, state.held, state.trip.take());
        state.limits = limits;
        state.held = 0;
        state.ticks = 0;
        previous
    });
    Scope {
        previous: Some(previous),
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some((limits, held, trip)) = self.previous.take() {
            CURRENT.with(|c| {
                let mut state = c.borrow_mut();
                state.limits = limits;
                state.held = held;
                state.trip = trip;
            });
        }
    }
}

/// The limits in force on this thread.
pub fn limits() -> FunctionLimits {
    CURRENT.with(|c| c.borrow().limits)
}

/// Why the last refusal on this thread happened, once (the query runner asks after a failed
/// statement).
pub fn take_trip() -> Option<Trip> {
    CURRENT.with(|c| c.borrow_mut().trip.take())
}

fn refuse(trip: Trip) -> rusqlite::Error {
    let message = trip.to_string();
    CURRENT.with(|c| c.borrow_mut().trip.get_or_insert(trip).clone());
    rusqlite::Error::UserFunctionError(message.into())
}

/// Checks that `what` may build a value of `bytes` bytes, before it allocates it.
pub fn value(what: &str, bytes: usize) -> rusqlite::Result<()> {
    let limit = limits().max_value_bytes;
    if bytes > limit {
        return Err(refuse(Trip::Value {
            what: what.to_owned(),
            bytes,
            limit,
        }));
    }
    Ok(())
}

/// The same check for a size computed in `u128` (a product that may overflow `usize`).
pub fn value_u128(what: &str, bytes: u128) -> rusqlite::Result<()> {
    value(what, usize::try_from(bytes).unwrap_or(usize::MAX))
}

/// Work one uninterruptible call may do, per byte of `max_value_bytes`: a pattern of 64 NFA
/// states over the largest value, about a second of the slowest matching.
pub const WORK_PER_VALUE_BYTE: u128 = 64;

/// Checks that `what` may do `units` of work it cannot stop halfway (matching a regular
/// expression), before it starts.
pub fn work(what: &str, units: u128) -> rusqlite::Result<()> {
    let limit = limits().max_value_bytes as u128 * WORK_PER_VALUE_BYTE;
    if units > limit {
        return Err(refuse(Trip::Work {
            what: what.to_owned(),
            units,
            limit,
        }));
    }
    Ok(())
}

/// Bytes held against the query's memory limit; given back when dropped.
#[derive(Debug, Default)]
pub struct Held {
    bytes: usize,
}

impl Held {
    /// Nothing held yet.
    pub const fn none() -> Self {
        Self { bytes: 0 }
    }

    /// Holds `bytes` more, or refuses if the query would then hold more than its limit.
    pub fn grow(&mut self, what: &str, bytes: usize) -> rusqlite::Result<()> {
        let refused = CURRENT.with(|c| {
            let mut state = c.borrow_mut();
            let limit = state.limits.max_memory_bytes;
            match state.held.checked_add(bytes) {
                Some(total) if total <= limit => {
                    state.held = total;
                    None
                }
                _ => Some(Trip::Memory {
                    what: what.to_owned(),
                    bytes,
                    limit,
                }),
            }
        });
        match refused {
            Some(trip) => Err(refuse(trip)),
            None => {
                self.bytes += bytes;
                Ok(())
            }
        }
    }

    /// Bytes held by this holder.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let bytes = self.bytes;
            CURRENT.with(|c| {
                let mut state = c.borrow_mut();
                state.held = state.held.saturating_sub(bytes);
            });
        }
    }
}

/// Holds `bytes` for as long as the returned value lives.
pub fn hold(what: &str, bytes: usize) -> rusqlite::Result<Held> {
    let mut held = Held::none();
    held.grow(what, bytes)?;
    Ok(held)
}

/// How many [`tick`]s pass between two looks at the clock.
const TICKS_PER_CHECK: u64 = 1024;

/// Counts one unit of work; every [`TICKS_PER_CHECK`] units, refuses if the deadline passed.
/// Call it in every loop whose length the input decides.
pub fn tick() -> rusqlite::Result<()> {
    let expired = CURRENT.with(|c| {
        let mut state = c.borrow_mut();
        state.ticks += 1;
        state.ticks.is_multiple_of(TICKS_PER_CHECK)
            && state.limits.deadline.is_some_and(|d| Instant::now() > d)
    });
    if expired {
        return Err(refuse(Trip::Deadline));
    }
    Ok(())
}

/// Counts `units` of work at once (a search over `units` bytes), checking the clock if a
/// check falls due in between.
pub fn tick_n(units: usize) -> rusqlite::Result<()> {
    let expired = CURRENT.with(|c| {
        let mut state = c.borrow_mut();
        let before = state.ticks;
        let units = units as u64;
        state.ticks = before.saturating_add(units);
        let crossed =
            before / TICKS_PER_CHECK != state.ticks / TICKS_PER_CHECK || units >= TICKS_PER_CHECK;
        crossed && state.limits.deadline.is_some_and(|d| Instant::now() > d)
    });
    if expired {
        return Err(refuse(Trip::Deadline));
    }
    Ok(())
}

/// Units of work counted on this thread since the current scope began (tests check that
/// functions stay linear by counting, not by timing).
pub fn work_done() -> u64 {
    CURRENT.with(|c| c.borrow().ticks)
}

/// Time left before the deadline (`None`: no deadline).
pub fn remaining() -> Option<Duration> {
    limits()
        .deadline
        .map(|d| d.saturating_duration_since(Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_over_the_limit_are_refused_before_allocation_and_say_why() {
        let _scope = enter(FunctionLimits {
            max_value_bytes: 10,
            ..FunctionLimits::default()
        });
        assert!(value("repeat", 10).is_ok());
        let err = value("repeat", 11).unwrap_err().to_string();
        assert!(
            err.contains("repeat would build a value of 11 bytes"),
            "{err}"
        );
        assert!(matches!(take_trip(), Some(Trip::Value { bytes: 11, .. })));
        assert_eq!(take_trip(), None, "a trip is reported once");
        assert!(value_u128("repeat", u128::MAX).is_err());
    }

    #[test]
    fn held_bytes_add_up_and_come_back_when_dropped() {
        let _scope = enter(FunctionLimits {
            max_memory_bytes: 100,
            ..FunctionLimits::default()
        });
        let mut a = hold("groupArray", 60).unwrap();
        assert!(hold("topK", 50).is_err());
        a.grow("groupArray", 40).unwrap();
        assert!(a.grow("groupArray", 1).is_err());
        drop(a);
        let b = hold("topK", 100).unwrap();
        assert_eq!(b.bytes(), 100);
    }

    #[test]
    fn the_deadline_holds_inside_loops_and_the_previous_budget_returns() {
        {
            let _scope = enter(FunctionLimits {
                deadline: Some(Instant::now() - Duration::from_millis(1)),
                ..FunctionLimits::default()
            });
            let stopped = (0..10 * TICKS_PER_CHECK).try_for_each(|_| tick());
            assert!(stopped.is_err());
            assert_eq!(take_trip(), Some(Trip::Deadline));
            assert!(tick_n(1 << 20).is_err());
        }
        assert_eq!(limits(), FunctionLimits::default());
        assert!((0..10 * TICKS_PER_CHECK).try_for_each(|_| tick()).is_ok());
    }
}
