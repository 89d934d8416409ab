//! Fuzzes the local endpoint's SQL functions (`tinybird_local::clickhouse::sqlite`, the
//! `ch_*` functions every translated query calls) with an oracle on memory and time.
//!
//! Input: a function (every name in `sqlite::FUNCTIONS`, scalar or aggregate), its arguments
//! (numbers, texts, and large texts built as `piece × times`, up to 256 KiB each), and for an
//! aggregate the number of rows it folds. Each call runs on a real SQLite connection inside a
//! query budget (`local::budget`: 100 ms, 1 MiB per value, 8 MiB held), as a query would.
//! Whatever it answers (a value or an error), it must:
//! - **memory**: never have allocated more than the budget allows: the held bytes, a few
//!   values, and a small multiple of its input (a counting global allocator watches the
//!   peak; SQLite's own memory is C's and not counted);
//! - **time**: return within the deadline plus a grace for the one step it cannot interrupt
//!   (a bounded regex match, a sort), 2 s;
//! - never panic.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};
use tinybird_local::budget::{self, FunctionLimits};
use tinybird_local::clickhouse::sqlite;

/// Counts the bytes live on the heap and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Old and new blocks may both be live during the move.
        grew(new_size);
        let out = unsafe { System.realloc(ptr, layout, new_size) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        out
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MAX_VALUE: usize = 1 << 20;
const MAX_MEMORY: usize = 8 << 20;
const DEADLINE: Duration = Duration::from_millis(100);
const GRACE: Duration = Duration::from_secs(2);
const MAX_ARG: usize = 256 * 1024;

/// Every `ch_*` function and its argument count (aggregates marked).
const TABLE: &[(&str, usize, bool)] = &[
    ("ch_like", 2, false),
    ("ch_ilike", 2, false),
    ("ch_fmod", 2, false),
    ("ch_to_date", 1, false),
    ("ch_to_datetime", 1, false),
    ("ch_to_datetime64", 2, false),
    ("ch_substring", 3, false),
    ("ch_position", 2, false),
    ("ch_starts_with", 2, false),
    ("ch_ends_with", 2, false),
    ("ch_replace_all", 3, false),
    ("ch_replace_one", 3, false),
    ("ch_replace_regexp", 4, false),
    ("ch_match", 2, false),
    ("ch_extract", 2, false),
    ("ch_extract_all", 2, false),
    ("ch_split", 2, false),
    ("ch_reverse", 1, false),
    ("ch_repeat", 2, false),
    ("ch_pad", 4, false),
    ("ch_to_string", 2, false),
    ("ch_to_int", 4, false),
    ("ch_to_float", 2, false),
    ("ch_round", 2, false),
    ("ch_floor", 2, false),
    ("ch_ceil", 2, false),
    ("ch_int_div", 3, false),
    ("ch_math", 3, false),
    ("ch_json", 4, false),
    ("ch_url", 3, false),
    ("ch_has", 2, false),
    ("ch_has_any", 2, false),
    ("ch_has_all", 2, false),
    ("ch_index_of", 2, false),
    ("ch_array_element", 2, false),
    ("ch_array_sort", 2, false),
    ("ch_array_distinct", 1, false),
    ("ch_array_reverse", 1, false),
    ("ch_array_concat", 3, false),
    ("ch_array_slice", 3, false),
    ("ch_array_string_concat", 2, false),
    ("ch_start_of", 4, false),
    ("ch_start_of_week", 2, false),
    ("ch_add", 4, false),
    ("ch_date_diff", 3, false),
    ("ch_age", 3, false),
    ("ch_date_part", 2, false),
    ("ch_format_datetime", 2, false),
    ("ch_any", 1, true),
    ("ch_any_last", 1, true),
    ("ch_arg_max", 2, true),
    ("ch_arg_min", 2, true),
    ("ch_group_array", 2, true),
    ("ch_group_uniq_array", 2, true),
    ("ch_quantile", 2, true),
    ("ch_quantile_exact", 2, true),
    ("ch_quantiles", 3, true),
    ("ch_top_k", 2, true),
    ("ch_var", 2, true),
];

#[derive(Debug, Arbitrary)]
enum Arg {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    /// A large text from a small input: `piece` repeated `times` times (capped).
    Big { piece: String, times: u16 },
    /// A JSON array of `len` copies of `item`.
    Array { item: String, len: u16 },
}

impl Arg {
    fn value(&self) -> Value {
        match self {
            Arg::Null => Value::Null,
            Arg::Int(n) => Value::Integer(*n),
            Arg::Real(f) => Value::Real(*f),
            Arg::Text(t) => Value::Text(t.chars().take(MAX_ARG).collect()),
            Arg::Big { piece, times } => {
                let times = usize::from(*times).min(MAX_ARG / piece.len().max(1));
                Value::Text(piece.repeat(times))
            }
            Arg::Array { item, len } => {
                let item = serde_json::Value::String(item.chars().take(64).collect()).to_string();
                let len = usize::from(*len).min(MAX_ARG / (item.len() + 1));
                Value::Text(format!("[{}]", vec![item; len].join(",")))
            }
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Call {
    function: u8,
    args: Vec<Arg>,
    rows: u8,
}

fn size(v: &Value) -> usize {
    match v {
        Value::Text(t) => t.len(),
        Value::Blob(b) => b.len(),
        _ => 8,
    }
}

fn conn() -> &'static std::sync::Mutex<Connection> {
    static CONN: OnceLock<std::sync::Mutex<Connection>> = OnceLock::new();
    CONN.get_or_init(|| {
        let listed: Vec<&str> = TABLE.iter().map(|(name, _, _)| *name).collect();
        for name in sqlite::FUNCTIONS {
            assert!(listed.contains(name), "{name} is not fuzzed: add it to TABLE");
        }
        let conn = Connection::open_in_memory().unwrap();
        sqlite::register(&conn).unwrap();
        conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE as i32)
            .unwrap();
        conn.execute_batch("CREATE TABLE t (a, b, c)").unwrap();
        std::sync::Mutex::new(conn)
    })
}

fuzz_target!(|call: Call| {
    let (name, arity, aggregate) = TABLE[usize::from(call.function) % TABLE.len()];
    let values: Vec<Value> = (0..arity.max(1))
        .map(|i| call.args.get(i).map_or(Value::Null, Arg::value))
        .collect();
    let conn = conn().lock().unwrap();
    let placeholders: Vec<String> = (1..=arity).map(|i| format!("?{i}")).collect();
    let (sql, input) = if aggregate {
        // `rows` rows, the arguments rotated so values differ from row to row.
        conn.execute("DELETE FROM t", []).unwrap();
        let rows = usize::from(call.rows) + 1;
        let mut input = 0;
        for r in 0..rows {
            let row: Vec<&Value> = (0..3).map(|c| &values[(r + c) % values.len()]).collect();
            input += row.iter().map(|v| size(v)).sum::<usize>();
            conn.execute("INSERT INTO t VALUES (?1, ?2, ?3)", params_from_iter(row))
                .unwrap();
        }
        let columns = ["a", "b", "c"][..arity].join(", ");
        (format!("SELECT {name}({columns}) FROM t"), input)
    } else {
        let input = values.iter().map(size).sum::<usize>();
        (format!("SELECT {name}({})", placeholders.join(", ")), input)
    };
    let binds: &[Value] = if aggregate { &[] } else { &values[..arity] };
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let started = Instant::now();
    let answer = {
        let _budget = budget::enter(FunctionLimits {
            deadline: Some(started + DEADLINE),
            max_value_bytes: MAX_VALUE,
            max_memory_bytes: MAX_MEMORY,
        });
        conn.query_row(&sql, params_from_iter(binds), |r| r.get::<_, Value>(0))
    };
    let elapsed = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(baseline);
    let allowed = MAX_MEMORY + 4 * MAX_VALUE + 16 * input + (1 << 20);
    assert!(
        peak <= allowed,
        "{name} allocated {peak} bytes at its peak, over {allowed} (input {input} bytes): {call:?}"
    );
    assert!(
        elapsed <= DEADLINE + GRACE,
        "{name} ran {elapsed:?}, past its {DEADLINE:?} deadline: {call:?}"
    );
    if let Ok(value) = answer {
        assert!(size(&value) <= MAX_VALUE, "{name} answered more than a value may hold");
    }
});
