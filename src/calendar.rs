//! Cron schedules as systemd calendar events: the `OnCalendar=` lines of the timer that runs a
//! `[targets.T.schedule]` entry under systemd.
//!
//! The input is a schedule as `config` keeps it: five fields (minute, hour, day of month, month,
//! day of week), already validated, names and `@daily`-style shorthands already numbers. Each
//! field becomes the explicit set of values it stands for, written in systemd's syntax (`*`,
//! lists, `a..b` runs), so no cron step or range form has to have a systemd twin.
//!
//! Cron's one rule systemd does not share: when both the day of month and the day of week are
//! restricted (neither field starts with `*`), cron fires on days matching *either*; one
//! calendar event matches days matching both. A timer fires when any of its `OnCalendar=` events
//! elapses, so such an entry gets two events, one per day field, and means exactly what cron
//! means (a day matching both fires once).

/// The five fields' ranges; the day of week is 0-7, both 0 and 7 are Sunday.
const RANGES: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];

/// systemd's weekday names, Monday first (cron's 1 is Monday, 0 and 7 Sunday).
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// The `OnCalendar=` values of cron schedule `spec` (five validated numeric fields): one, or
/// two when cron would OR the day fields.
pub(crate) fn on_calendar(spec: &str) -> Vec<String> {
    let fields: Vec<&str> = spec.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "a validated schedule has five fields");
    let [minute, hour, dom, month, dow] =
        std::array::from_fn(|i| values(fields[i], RANGES[i].0, RANGES[i].1));
    // Sunday is 0 and 7 in cron; systemd's week starts on Monday: 1..=7.
    let weekdays: Vec<u32> = {
        let mut days: Vec<u32> = dow.iter().map(|d| if *d == 0 { 7 } else { *d }).collect();
        days.sort_unstable();
        days.dedup();
        days
    };
    let time = format!(
        "{}:{}:00",
        numbers(&hour, (0, 23), 2),
        numbers(&minute, (0, 59), 2)
    );
    let month = numbers(&month, (1, 12), 2);
    let dom_text = numbers(&dom, (1, 31), 2);
    let dow_text = days(&weekdays);
    let event = |dow: Option<&str>, dom: &str| match dow {
        Some(days) => format!("{days} *-{month}-{dom} {time}"),
        None => format!("*-{month}-{dom} {time}"),
    };
    let restricted = |field: &str| !field.starts_with('*');
    if restricted(fields[2]) && restricted(fields[4]) {
        // cron: either day field matching is enough.
        return vec![event(None, &dom_text), event(dow_text.as_deref(), "*")];
    }
    vec![event(dow_text.as_deref(), &dom_text)]
}

/// The values one cron field stands for, sorted.
fn values(field: &str, low: u32, high: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, step.parse().unwrap_or(1)),
            None => (part, 1),
        };
        let number = |n: &str| n.parse::<u32>().unwrap_or(low);
        let (a, b) = match range {
            "*" => (low, high),
            _ => match range.split_once('-') {
                Some((a, b)) => (number(a), number(b)),
                // `N/STEP` is N, N+STEP, ... up to the end of the range, as in cron.
                None if step > 1 => (number(range), high),
                None => (number(range), number(range)),
            },
        };
        out.extend((a..=b).step_by(step.max(1) as usize));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Runs of consecutive values: `(first, last)`.
fn runs(values: &[u32]) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &v in values {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == v => *last = v,
            _ => runs.push((v, v)),
        }
    }
    runs
}

/// A numeric field in systemd's syntax: `*` for the whole range, else a list whose runs of
/// three or more are `a..b`, each value `width` digits.
fn numbers(values: &[u32], (low, high): (u32, u32), width: usize) -> String {
    if values.len() as u32 == high - low + 1 {
        return "*".into();
    }
    list(&runs(values), |v| format!("{v:0width$}"))
}

/// The day-of-week part: `None` for every day, else names (`Mon..Fri`, `Sat,Sun`).
fn days(weekdays: &[u32]) -> Option<String> {
    if weekdays.len() == 7 {
        return None;
    }
    Some(list(&runs(weekdays), |d| {
        WEEKDAYS[d as usize - 1].to_string()
    }))
}

fn list(runs: &[(u32, u32)], show: impl Fn(u32) -> String) -> String {
    let mut parts = Vec::new();
    for &(a, b) in runs {
        match b - a {
            0 => parts.push(show(a)),
            1 => parts.extend([show(a), show(b)]),
            _ => parts.push(format!("{}..{}", show(a), show(b))),
        }
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::on_calendar;

    /// Cron schedules (as config normalizes them) and their calendar events.
    const CASES: &[(&str, &[&str])] = &[
        ("* * * * *", &["*-*-* *:*:00"]),
        ("0 3 * * *", &["*-*-* 03:00:00"]),
        ("*/15 * * * *", &["*-*-* *:00,15,30,45:00"]),
        ("5 */6 * * *", &["*-*-* 00,06,12,18:05:00"]),
        ("0 9-17 * * 1-5", &["Mon..Fri *-*-* 09..17:00:00"]),
        ("30 8 * * 0", &["Sun *-*-* 08:30:00"]),
        ("30 8 * * 7", &["Sun *-*-* 08:30:00"]),
        ("0 0 * * 0,6", &["Sat,Sun *-*-* 00:00:00"]),
        ("0 0 * * 0-7", &["*-*-* 00:00:00"]),
        ("0 0 * * 5-7", &["Fri..Sun *-*-* 00:00:00"]),
        ("0 12 1 * *", &["*-*-01 12:00:00"]),
        ("0 0 1 1 *", &["*-01-01 00:00:00"]),
        (
            "0 0 1-10/3 */2 *",
            &["*-01,03,05,07,09,11-01,04,07,10 00:00:00"],
        ),
        (
            "10-40/10 1,2,3,7 * * *",
            &["*-*-* 01..03,07:10,20,30,40:00"],
        ),
        // Both day fields restricted: cron fires on either.
        (
            "0 4 1,15 * 1",
            &["*-*-01,15 04:00:00", "Mon *-*-* 04:00:00"],
        ),
        ("0 4 13 6 5", &["*-06-13 04:00:00", "Fri *-06-* 04:00:00"]),
        // A day field starting with `*` restricts nothing in cron's sense: both must match.
        (
            "0 4 */2 * 1",
            &["Mon *-*-01,03,05,07,09,11,13,15,17,19,21,23,25,27,29,31 04:00:00"],
        ),
    ];

    #[test]
    fn cron_schedules_become_calendar_events() {
        for (spec, events) in CASES {
            assert_eq!(on_calendar(spec), *events, "{spec}");
        }
    }

    /// systemd itself reads every event as written: `systemd-analyze calendar` prints what it
    /// parsed in its normalized form, which is the form rendered here.
    #[test]
    fn systemd_reads_each_event_as_written() {
        for (_, events) in CASES {
            for event in *events {
                let out = match std::process::Command::new("systemd-analyze")
                    .args(["calendar", event])
                    .output()
                {
                    Ok(out) => out,
                    Err(e) => {
                        eprintln!("systemd-analyze cannot run here ({e}): not checked");
                        return;
                    }
                };
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success() && text.contains(&format!("Normalized form: {event}\n")),
                    "{event}: {text}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
