//! Server URLs: which ones this build can post to, and how a path joins a server. Shared by the
//! command line, config.sh and the uplink.

/// Why this build cannot POST to `url`, if it cannot: only `http://`, and `https://` with the
/// `tls` feature (the Mender client's local proxy is plain HTTP; it does TLS for us). Checked
/// up front so that a wrong URL is an error naming the argument or setting, not a retry loop.
pub fn unusable_url(url: &str) -> Option<String> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http") => None,
        Some("https") if cfg!(feature = "tls") => None,
        Some("https") => {
            Some("https needs a build with `--features tls`; or use the Mender client's local proxy (http://127.0.0.1:...)".into())
        }
        _ => Some("not an http:// URL".into()),
    }
}

/// The URL for `path_or_url` on `server`: a path is joined to the server, a full URL is used as
/// is (`ALERT_URL`).
pub fn join(server: &str, path_or_url: &str) -> String {
    if path_or_url.contains("://") {
        path_or_url.to_string()
    } else {
        format!("{}/{}", server.trim_end_matches('/'), path_or_url.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_url_joins_or_replaces() {
        assert_eq!(
            join("http://127.0.0.1:8080/", "/api/devices/v1/devicemonitor/alert"),
            "http://127.0.0.1:8080/api/devices/v1/devicemonitor/alert"
        );
        assert_eq!(join("http://x", "https://other/alert"), "https://other/alert");
    }

    #[test]
    fn only_urls_this_build_can_post_to_are_usable() {
        assert_eq!(unusable_url("http://127.0.0.1:8080"), None);
        assert_eq!(unusable_url("HTTP://proxy"), None);
        assert_eq!(unusable_url("https://hosted.mender.io").is_none(), cfg!(feature = "tls"));
        assert_eq!(unusable_url("127.0.0.1:8080").as_deref(), Some("not an http:// URL"));
        assert_eq!(unusable_url("ftp://x").as_deref(), Some("not an http:// URL"));
    }
}
