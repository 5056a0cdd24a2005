/// `url` without its password, fit for logs, error messages and anything else
/// people read: `postgres://u:secret@h/db` becomes `postgres://u:***@h/db`,
/// `redis://:secret@h` becomes `redis://:***@h`. The one place that hides
/// the password of a store or broker URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn only_the_password_is_hidden() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_url("postgres://postgres@h/db"),
            "postgres://postgres@h/db"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact_url("redis://:secret@h:6379"), "redis://:***@h:6379");
        assert_eq!(
            redact_url("rediss://default:s3cr@t@h:6379/0"),
            "rediss://default:***@h:6379/0"
        );
    }
}
