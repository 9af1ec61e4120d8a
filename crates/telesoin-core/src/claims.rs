//! Join-link claims and their checks.
//!
//! The server verifies the signature (Ed25519, `typ` `telesoin-join+jwt`, algorithm allowlist)
//! and hands the decoded claims here; [`check`] is the only way to get [`VerifiedClaims`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admission::RefusalCode;
use crate::ids::{ParticipantId, SessionId};
use crate::model::Role;

/// The JWT `typ` header of a join token; other token kinds get other types.
pub const JOIN_TOKEN_TYPE: &str = "telesoin-join+jwt";

/// The claims of a join token, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinClaims {
    pub iss: String,
    pub aud: String,
    /// The participant (seat) this link is for.
    pub sub: Uuid,
    /// The session.
    pub sid: Uuid,
    pub role: Role,
    pub jti: Uuid,
    pub nbf: i64,
    pub exp: i64,
    pub iat: i64,
}

/// Claims that passed [`check`]: the only way into a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    claims: JoinClaims,
}

impl VerifiedClaims {
    pub fn participant(&self) -> ParticipantId {
        ParticipantId(self.claims.sub)
    }

    pub fn session(&self) -> SessionId {
        SessionId(self.claims.sid)
    }

    pub fn role(&self) -> Role {
        self.claims.role
    }

    pub fn jti(&self) -> Uuid {
        self.claims.jti
    }

    pub fn issuer(&self) -> &str {
        &self.claims.iss
    }

    pub fn expires_at(&self) -> i64 {
        self.claims.exp
    }
}

/// What the checker expects of every token.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Clock skew tolerated on `nbf` and `exp`, in seconds.
    pub leeway_secs: i64,
}

/// Checks issuer, audience and validity period at `now`.
pub fn check(
    claims: JoinClaims,
    expect: &Expectations<'_>,
    now: DateTime<Utc>,
) -> Result<VerifiedClaims, RefusalCode> {
    if claims.iss != expect.issuer || claims.aud != expect.audience {
        return Err(RefusalCode::TokenInvalid);
    }
    if claims.nbf > claims.exp {
        return Err(RefusalCode::TokenInvalid);
    }
    let now = now.timestamp();
    if now + expect.leeway_secs < claims.nbf {
        return Err(RefusalCode::TokenNotYetValid);
    }
    if now - expect.leeway_secs >= claims.exp {
        return Err(RefusalCode::TokenExpired);
    }
    Ok(VerifiedClaims { claims })
}

/// The `nbf` of a join link issued at `issued_at` for a session whose window opens at
/// `window_start`. A patient's or companion's link opens with the window; the kiné's opens at
/// once, so that the kiné may open the room early (see `admission::room_open`).
pub fn link_not_before(
    role: Role,
    window_start: DateTime<Utc>,
    issued_at: DateTime<Utc>,
) -> DateTime<Utc> {
    if role == Role::Kine {
        window_start.min(issued_at)
    } else {
        window_start
    }
}

/// The seat a link was issued for, as the store knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedSeat {
    pub session: SessionId,
    pub participant: ParticipantId,
    pub role: Role,
    pub revoked: bool,
}

/// Checks verified claims against the seat recorded when the link was issued.
pub fn check_seat(claims: &VerifiedClaims, seat: &IssuedSeat) -> Result<(), RefusalCode> {
    if seat.revoked {
        return Err(RefusalCode::TokenRevoked);
    }
    if seat.session != claims.session() {
        return Err(RefusalCode::TokenWrongSession);
    }
    if seat.participant != claims.participant() || seat.role != claims.role() {
        return Err(RefusalCode::TokenWrongRole);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn claims() -> JoinClaims {
        JoinClaims {
            iss: "https://localhost".into(),
            aud: "telesoin-join".into(),
            sub: Uuid::from_u128(1),
            sid: Uuid::from_u128(2),
            role: Role::Patient,
            jti: Uuid::from_u128(3),
            nbf: 1_000,
            exp: 2_000,
            iat: 900,
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().expect("valid")
    }

    #[test]
    fn claims_table() {
        let e = Expectations {
            issuer: "https://localhost",
            audience: "telesoin-join",
            leeway_secs: 0,
        };
        let cases: Vec<(&str, JoinClaims, i64, Result<(), RefusalCode>)> = vec![
            ("valid", claims(), 1_500, Ok(())),
            ("at nbf", claims(), 1_000, Ok(())),
            (
                "before nbf",
                claims(),
                999,
                Err(RefusalCode::TokenNotYetValid),
            ),
            ("at exp", claims(), 2_000, Err(RefusalCode::TokenExpired)),
            (
                "other issuer",
                JoinClaims {
                    iss: "https://evil".into(),
                    ..claims()
                },
                1_500,
                Err(RefusalCode::TokenInvalid),
            ),
            (
                "other audience",
                JoinClaims {
                    aud: "api".into(),
                    ..claims()
                },
                1_500,
                Err(RefusalCode::TokenInvalid),
            ),
            (
                "nbf after exp",
                JoinClaims {
                    nbf: 3_000,
                    ..claims()
                },
                1_500,
                Err(RefusalCode::TokenInvalid),
            ),
        ];
        for (name, c, now, want) in cases {
            assert_eq!(check(c, &e, at(now)).map(|_| ()), want, "{name}");
        }
        let lenient = Expectations {
            leeway_secs: 5,
            ..e
        };
        assert!(check(claims(), &lenient, at(996)).is_ok());
    }

    #[test]
    fn link_not_before_table() {
        let cases = [
            ("kiné, early", Role::Kine, 1_000, 400, 400),
            ("kiné, in the window", Role::Kine, 1_000, 1_200, 1_000),
            ("patient, early", Role::Patient, 1_000, 400, 1_000),
            ("companion, early", Role::Companion, 1_000, 400, 1_000),
            ("patient, in the window", Role::Patient, 1_000, 1_200, 1_000),
        ];
        for (name, role, window, issued, want) in cases {
            assert_eq!(
                link_not_before(role, at(window), at(issued)),
                at(want),
                "{name}"
            );
        }
    }

    #[test]
    fn seat_table() {
        let e = Expectations {
            issuer: "https://localhost",
            audience: "telesoin-join",
            leeway_secs: 0,
        };
        let v = check(claims(), &e, at(1_500)).expect("valid");
        let seat = IssuedSeat {
            session: SessionId(Uuid::from_u128(2)),
            participant: ParticipantId(Uuid::from_u128(1)),
            role: Role::Patient,
            revoked: false,
        };
        assert_eq!(check_seat(&v, &seat), Ok(()));
        assert_eq!(
            check_seat(
                &v,
                &IssuedSeat {
                    revoked: true,
                    ..seat
                }
            ),
            Err(RefusalCode::TokenRevoked)
        );
        assert_eq!(
            check_seat(
                &v,
                &IssuedSeat {
                    session: SessionId(Uuid::from_u128(9)),
                    ..seat
                }
            ),
            Err(RefusalCode::TokenWrongSession)
        );
        assert_eq!(
            check_seat(
                &v,
                &IssuedSeat {
                    role: Role::Kine,
                    ..seat
                }
            ),
            Err(RefusalCode::TokenWrongRole)
        );
    }
}
