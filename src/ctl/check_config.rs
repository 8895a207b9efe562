//! `lookout check-config`: validate config.sh and every check file, print each problem with
//! file and line (like `monit -t`), without a daemon.

use std::io::Write;

use crate::config::check::BUILT_IN_SUBSYSTEMS;
use crate::config::layout::Layout;
use crate::config::settings::Settings;
use crate::config::store;

/// Checks everything and writes the report to `out`; `Ok(true)` if no error was found
/// (warnings do not count).
pub fn run(layout: &Layout, out: &mut impl Write) -> Result<bool, String> {
    let mut errors = 0usize;
    let mut warnings = 0usize;
    let config = layout.config_sh();
    let (_, problems) = Settings::load(&config);
    for p in &problems {
        let _ = writeln!(out, "{p}");
        if p.message.starts_with("unknown variable") {
            warnings += 1;
        } else {
            errors += 1;
        }
    }
    let entries = store::list(layout).map_err(|e| e.to_string())?;
    for e in &entries {
        if !e.is_available {
            let _ = writeln!(out, "{}: enabled, but {} does not exist", e.id, e.available.display());
            errors += 1;
            continue;
        }
        let loaded = store::load_entry(layout, e);
        for w in &loaded.warnings {
            let _ = writeln!(out, "{w} (warning)");
            warnings += 1;
        }
        if let Err(errs) = &loaded.def {
            for err in errs {
                let _ = writeln!(out, "{err}");
            }
            errors += errs.len();
        }
        if !BUILT_IN_SUBSYSTEMS.contains(&e.id.subsystem.as_str()) && e.is_enabled {
            let _ = writeln!(out, "{}: subsystem {:?} is not built in; lookout does not run it (warning)", e.id, e.id.subsystem);
            warnings += 1;
        }
    }
    let enabled = entries.iter().filter(|e| e.is_enabled).count();
    let _ = writeln!(
        out,
        "{}: {} checks ({enabled} enabled), {errors} errors, {warnings} warnings",
        if errors == 0 { "OK" } else { "FAILED" },
        entries.len()
    );
    Ok(errors == 0)
}
