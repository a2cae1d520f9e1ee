//! What the sign-in and Settings pages show of accounts: the ways in this
//! deployment offers, and a person's own access tokens.

use serde::{Deserialize, Serialize};

/// The ways in that the sign-in page offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInOptions {
    /// Email and password (`WICK_PASSWORD_AUTH`).
    pub password: bool,
    /// The sign-up form takes new accounts (`WICK_SIGNUP=open`).
    pub sign_up: bool,
    /// Nothing is reachable without signing in (`WICK_AUTH=required`).
    pub required: bool,
    /// The OpenID provider's name for its button, if one is configured.
    pub provider: Option<String>,
}

/// One of a person's access tokens, as their Settings page lists it (never
/// the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// `None`: never expires.
    pub expires_at: Option<i64>,
    /// It has expired (as the server's clock says).
    pub expired: bool,
}

/// A person's usage and the limits that hold for them, with how long their
/// conversations are kept, for their Settings page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageView {
    /// Prompt and completion tokens used today (UTC).
    pub tokens_today: i64,
    /// `None`: no daily limit.
    pub tokens_per_day: Option<i64>,
    /// `None`: no limit.
    pub requests_per_minute: Option<i64>,
    /// Replies running or waiting at once (the server's limit when the
    /// person and their groups have none).
    pub replies_at_once: i64,
    /// Conversations not updated for this many days are deleted; 0: kept.
    pub retention_days: u32,
}

/// `n` with its thousands separated by commas: 50000 → "50,000".
pub fn with_commas(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// A time (Unix milliseconds) as its UTC date, `2026-12-04`.
pub fn utc_date(ms: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm: no calendar crate in the
    // browser's build for one date format.
    let days = ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(super::utc_date(0), "1970-01-01");
        assert_eq!(super::utc_date(951_782_400_000), "2000-02-29");
        assert_eq!(super::utc_date(1_795_600_000_000), "2026-11-25");
        assert_eq!(super::utc_date(-1), "1969-12-31");
    }
}
