//! D-Bus server addresses (`unix:path=/run/dbus/system_bus_socket`), as the specification
//! writes them: `transport:key=value,...`, several separated by `;`, values `%`-escaped.

use std::path::PathBuf;

/// The system bus when `DBUS_SYSTEM_BUS_ADDRESS` is not set.
pub const DEFAULT_SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";

/// The first `unix:path=` socket in `address`.
pub fn unix_path(address: &str) -> Result<PathBuf, String> {
    for part in address.split(';').filter(|p| !p.is_empty()) {
        let Some(rest) = part.strip_prefix("unix:") else { continue };
        for kv in rest.split(',') {
            if let Some(v) = kv.strip_prefix("path=") {
                return unescape(v).map(PathBuf::from);
            }
        }
    }
    Err(format!("no unix:path= address in {address:?} (abstract and TCP addresses are not supported)"))
}

fn unescape(v: &str) -> Result<String, String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = v.get(i + 1..i + 3).ok_or_else(|| format!("bad %-escape in {v:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape in {v:?}"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("address {v:?} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_paths() {
        assert_eq!(unix_path(DEFAULT_SYSTEM_BUS).unwrap(), PathBuf::from("/run/dbus/system_bus_socket"));
        assert_eq!(unix_path("unix:abstract=x;unix:path=/tmp/a%20b,guid=1").unwrap(), PathBuf::from("/tmp/a b"));
        assert!(unix_path("tcp:host=localhost,port=1").is_err());
        assert!(unix_path("unix:path=/x%2").is_err());
    }
}
