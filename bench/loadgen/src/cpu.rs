//! The load generator's own CPU time (user + system, all threads), so that
//! the scripts can show how much of the machine the client side used.
//! Read from `/proc/self/stat` rather than `getrusage`, because the
//! workspace forbids `unsafe` code and libc's binding is unsafe.

/// CPU seconds this process has used so far (threads that already exited
/// included), or `None` where `/proc` is not available.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    Some(stat_ticks(&stat)? as f64 / clock_ticks_per_second() as f64)
}

/// `utime + stime` (clock ticks) from a `/proc/PID/stat` line. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted
/// from the last `)`.
fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// USER_HZ, the unit of the `/proc` times: `AT_CLKTCK` from the auxiliary
/// vector (`/proc/self/auxv`, pairs of native words), which is what
/// `sysconf(_SC_CLK_TCK)` returns; 100 (Linux's value on every common
/// architecture) if it cannot be read.
fn clock_ticks_per_second() -> u64 {
    const AT_NULL: u64 = 0;
    const AT_CLKTCK: u64 = 17;
    let word = std::mem::size_of::<usize>();
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return 100;
    };
    for pair in auxv.chunks_exact(2 * word) {
        let (key, value) = (native_word(&pair[..word]), native_word(&pair[word..]));
        match key {
            AT_CLKTCK if value > 0 => return value,
            AT_NULL => break,
            _ => {}
        }
    }
    100
}

fn native_word(bytes: &[u8]) -> u64 {
    if let Ok(bytes) = <[u8; 8]>::try_from(bytes) {
        u64::from_ne_bytes(bytes)
    } else if let Ok(bytes) = <[u8; 4]>::try_from(bytes) {
        u64::from(u32::from_ne_bytes(bytes))
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let line = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 4 0";
        assert_eq!(stat_ticks(line), Some(280));
        assert_eq!(stat_ticks("garbage"), None);
    }

    #[test]
    fn own_cpu_time_is_readable_and_grows() {
        let before = process_cpu_seconds().expect("/proc/self/stat is readable");
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = process_cpu_seconds().expect("/proc/self/stat is readable");
        assert!(after > before, "{before} -> {after}");
        assert!((1..=10_000).contains(&clock_ticks_per_second()));
    }
}
