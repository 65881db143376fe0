//! The `[targets.T.schedule]` table: commands run on the primary at times given as cron
//! expressions, parsed and normalised to five fields.

use super::*;

/// A schedule entry's commands: one, or several run in order at the same times.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawSchedule {
    One(String),
    Several(Vec<String>),
}

/// Validates the entries: a schedule each, and commands of one non-empty line.
pub(super) fn validate_schedule(
    source: &Source,
    target: &str,
    raw: BTreeMap<Spanned<String>, RawSchedule>,
) -> Result<Vec<(String, Vec<String>)>> {
    let mut schedule = Vec::new();
    for (when, commands) in raw {
        let entry_key = key_for(target, &format!("schedule.\"{}\"", when.get_ref()));
        let spec = cron_fields(when.get_ref())
            .map_err(|why| source.error(when.span(), entry_key.clone(), why))?;
        let commands = match commands {
            RawSchedule::One(command) => vec![command],
            RawSchedule::Several(commands) => commands,
        };
        if commands.is_empty()
            || commands
                .iter()
                .any(|c| c.trim().is_empty() || c.chars().any(|c| c.is_control()))
        {
            return Err(source.error(
                when.span(),
                entry_key,
                "each command must be one non-empty line",
            ));
        }
        schedule.push((spec, commands));
    }
    Ok(schedule)
}

/// A cron schedule as five fields (minute, hour, day of month, month, day of week), each a
/// comma-separated list of `*`, `N` or `N-M`, optionally `/STEP`, months and days of the week
/// also by their English names' first three letters (`jan`, `mon-fri`); `@hourly`, `@daily`
/// (`@midnight`), `@weekly`, `@monthly` and `@yearly` (`@annually`) stand for theirs. Returns
/// the five fields, single-spaced, names as numbers.
pub(super) fn cron_fields(text: &str) -> std::result::Result<String, String> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    // `name` as its number (months from 1, days from 0), anything else as it is.
    let numbered = |field: &str, names: &[&str], first: usize| -> String {
        let mut out = String::new();
        let mut word = String::new();
        for c in field.chars().chain(std::iter::once(',')) {
            if c.is_ascii_alphabetic() {
                word.push(c);
                continue;
            }
            match names.iter().position(|n| n.eq_ignore_ascii_case(&word)) {
                Some(index) => out.push_str(&(index + first).to_string()),
                None => out.push_str(&word),
            }
            word.clear();
            out.push(c);
        }
        out.pop();
        out
    };
    let text = match text.trim() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        other => other,
    };
    let mut fields: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    if fields.len() == 5 {
        fields[3] = numbered(&fields[3], &MONTHS, 1);
        fields[4] = numbered(&fields[4], &DAYS, 0);
    }
    if fields.len() != 5 {
        return Err(format!(
            "`{text}` is not a schedule: five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, @monthly, @yearly"
        ));
    }
    let ranges = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
        ("day of week", 0, 7),
    ];
    for (field, (what, low, high)) in fields.iter().zip(ranges) {
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (part, None),
            };
            let number = |n: &str| -> std::result::Result<u32, String> {
                n.parse::<u32>()
                    .ok()
                    .filter(|n| (low..=high).contains(n))
                    .ok_or_else(|| format!("`{part}`: the {what} is a number from {low} to {high}"))
            };
            if let Some(step) = step {
                if step.parse::<u32>().map_or(true, |s| s == 0) {
                    return Err(format!("`{part}`: the step must be a number above 0"));
                }
            }
            if range != "*" {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                if number(a)? > number(b)? {
                    return Err(format!("`{part}`: the range runs backwards"));
                }
            }
        }
    }
    Ok(fields.join(" "))
}
